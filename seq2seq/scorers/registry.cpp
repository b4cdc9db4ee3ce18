// The explicit registry of attention scorers. Adding a scorer is two edits: its file
// seq2seq/scorers/<name>.cpp, which defines make_<name>_scorer (CMake picks the file up), and
// one line below. The line declares the factory and lists it, so nothing else needs touching;
// tests/test_attention.cpp gradchecks every entry. An explicit list, not self-registering
// statics, which a static library can silently drop.
#include <fmt/format.h>

#include "seq2seq/scorers/scorers.h"

namespace seqgrad {

// clang-format off
//        name         description
#define SEQGRAD_SCORERS(X)                                                   \
  X(dot,        "Luong dot: q . k")                                          \
  X(scaled_dot, "q . k / sqrt(H)")                                           \
  X(general,    "Luong general (bilinear): q W k")                           \
  X(concat,     "Bahdanau additive: v . tanh(W q + U k)")                    \
  X(multihead,  "K heads of scaled dot over projections")                    \
  X(cosine,     "cosine similarity times a learned temperature")
// clang-format on

#define SEQGRAD_DECLARE_SCORER(name, description) \
  std::unique_ptr<Scorer> make_##name##_scorer(const ScorerConfig& config);
SEQGRAD_SCORERS(SEQGRAD_DECLARE_SCORER)
#undef SEQGRAD_DECLARE_SCORER

namespace {
// Built-ins first, in the order above; register_scorer appends.
std::vector<ScorerEntry>& registry() {
#define SEQGRAD_SCORER_ENTRY(name, description) {#name, description, make_##name##_scorer},
  static std::vector<ScorerEntry> entries = {SEQGRAD_SCORERS(SEQGRAD_SCORER_ENTRY)};
#undef SEQGRAD_SCORER_ENTRY
  return entries;
}
}  // namespace

const std::vector<ScorerEntry>& scorer_registry() {
  return registry();
}

void register_scorer(ScorerEntry entry) {
  if (entry.name.empty() || entry.name == "none" || !entry.make) {
    throw ValueError(
        fmt::format("register_scorer: '{}' needs a name other than '' and 'none' (which means no "
                    "attention) and a factory",
                    entry.name));
  }
  for (const auto& e : registry()) {
    if (e.name == entry.name) {
      throw ValueError(fmt::format("register_scorer: '{}' is already registered ({})", entry.name,
                                   e.description));
    }
  }
  registry().push_back(std::move(entry));
}

}  // namespace seqgrad
