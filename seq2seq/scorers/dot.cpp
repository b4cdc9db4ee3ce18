// dot (Luong et al. 2015): score(q, k) = q . k. Needs Hq == Hk. Also the helpers the
// dot-product family shares. Shape legend: B batch, S source length, H hidden.
#include <fmt/format.h>

#include "autograd/ops.h"
#include "seq2seq/scorers/scorers.h"

namespace seqgrad {

Variable dot_scores(const Variable& query, const Variable& keys) {
  // keys [B,S,H] @ query [B,H,1] -> [B,S,1]
  return squeeze(matmul(keys, unsqueeze(query, 2)), 2);
}

void require_equal_sizes(const ScorerConfig& config, const char* scorer) {
  if (config.query_size != config.key_size) {
    throw ValueError(
        fmt::format("{} attention needs equal query and key sizes, got {} and {} "
                    "(HINT: use 'general' or 'concat' for unequal sizes)",
                    scorer, config.query_size, config.key_size));
  }
}

Generator& scorer_generator(const ScorerConfig& config) {
  return config.gen != nullptr ? *config.gen : default_generator();
}

namespace {
class DotScorer : public Scorer {
 public:
  Variable score(const Variable& query, const Variable& keys) const override {
    return dot_scores(query, keys);
  }
};
}  // namespace

std::unique_ptr<Scorer> make_dot_scorer(const ScorerConfig& config) {
  require_equal_sizes(config, "dot");
  return std::make_unique<DotScorer>();
}

}  // namespace seqgrad
