// scaled_dot (Vaswani et al. 2017): score(q, k) = q . k / sqrt(H), which keeps the softmax out
// of saturation as H grows. Shape legend: B batch, S source length, H hidden.
#include <cmath>

#include "autograd/ops.h"
#include "seq2seq/scorers/scorers.h"

namespace seqgrad {

namespace {
class ScaledDotScorer : public Scorer {
 public:
  explicit ScaledDotScorer(std::int64_t size)
      : scale_(1.0 / std::sqrt(static_cast<double>(size))) {}
  Variable score(const Variable& query, const Variable& keys) const override {
    return dot_scores(query, keys) * scale_;
  }

 private:
  double scale_;
};
}  // namespace

std::unique_ptr<Scorer> make_scaled_dot_scorer(const ScorerConfig& config) {
  require_equal_sizes(config, "scaled_dot");
  return std::make_unique<ScaledDotScorer>(config.key_size);
}

}  // namespace seqgrad
