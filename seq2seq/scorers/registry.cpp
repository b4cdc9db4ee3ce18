// The explicit registry of attention scorers: name, one-line description, factory. An explicit
// list (not self-registering statics, which a static library can silently drop).
#include "seq2seq/scorers/scorers.h"

namespace seqgrad {

const std::vector<ScorerEntry>& scorer_registry() {
  static const std::vector<ScorerEntry> registry = {
      {"dot", "Luong dot: q . k", make_dot_scorer},
      {"scaled_dot", "q . k / sqrt(H)", make_scaled_dot_scorer},
      {"general", "Luong general (bilinear): q W k", make_general_scorer},
      {"concat", "Bahdanau additive: v . tanh(W q + U k)", make_concat_scorer},
      {"multihead", "K heads of scaled dot over projections", make_multihead_scorer},
      {"cosine", "cosine similarity times a learned temperature", make_cosine_scorer},
  };
  return registry;
}

}  // namespace seqgrad
