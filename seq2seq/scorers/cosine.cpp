// cosine: score(q, k) = exp(tau) * cos(P q, k), with a learned log-temperature tau (init log 5,
// so the softmax starts neither flat nor one-hot) and a projection P of the query to the key
// size. The worked example of adding a scorer: this file and one line in registry.cpp.
// Shape legend: B batch, S source length, Hq query size, Hk key size.
#include <cmath>

#include "autograd/ops.h"
#include "nn/linear.h"
#include "seq2seq/scorers/scorers.h"

namespace seqgrad {

namespace {
class CosineScorer : public Scorer {
 public:
  explicit CosineScorer(const ScorerConfig& c)
      : p_(c.query_size, c.key_size, false, scorer_generator(c), c.dtype) {
    register_module("P", p_);
    log_temperature_ =
        register_parameter("log_temperature", Tensor::full({1}, std::log(5.0), c.dtype));
  }
  // Keys normalised once per batch: k / |k|
  Variable prepare(const Variable& keys) const override { return unit(keys, 2); }
  Variable score(const Variable& query, const Variable& unit_keys) const override {
    return dot_scores(unit(p_(query), 1), unit_keys) * exp(log_temperature_);
  }

 private:
  // x / sqrt(|x|^2 + eps) along axis: eps keeps a zero vector finite
  static Variable unit(const Variable& x, std::int64_t axis) {
    return x * pow(sum(x * x, {axis}, true) + 1e-8, -0.5);
  }
  Linear p_;
  Variable log_temperature_;
};
}  // namespace

std::unique_ptr<Scorer> make_cosine_scorer(const ScorerConfig& config) {
  return std::make_unique<CosineScorer>(config);
}

}  // namespace seqgrad
