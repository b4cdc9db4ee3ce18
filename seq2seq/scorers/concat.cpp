// concat, additive attention (Bahdanau et al. 2015): score(q, k) = v . tanh(W q + U k).
// U k is query-independent and computed once per batch in prepare().
// Shape legend: B batch, S source length, Hq query size, Hk key size, A attention size.
#include "autograd/ops.h"
#include "nn/linear.h"
#include "seq2seq/scorers/scorers.h"

namespace seqgrad {

namespace {
class ConcatScorer : public Scorer {
 public:
  explicit ConcatScorer(const ScorerConfig& c)
      : w_(c.query_size, size(c), false, scorer_generator(c), c.dtype),
        u_(c.key_size, size(c), true, scorer_generator(c), c.dtype),
        v_(size(c), 1, false, scorer_generator(c), c.dtype) {
    register_module("W", w_);
    register_module("U", u_);
    register_module("v", v_);
  }
  Variable prepare(const Variable& keys) const override { return u_(keys); }  // [B,S,A]
  // One fused node: the [B,S,A] tanh is neither stored nor on the tape. v_ is Linear(A, 1)
  // (no bias) so that its weight, [1,A], keeps the parameter name v.weight.
  Variable score(const Variable& query, const Variable& uk) const override {
    return additive_scores(uk, w_(query), v_.weight);  // [B,S]
  }

 private:
  static std::int64_t size(const ScorerConfig& c) {
    return c.attention_size > 0 ? c.attention_size : c.query_size;
  }
  Linear w_, u_, v_;
};
}  // namespace

std::unique_ptr<Scorer> make_concat_scorer(const ScorerConfig& config) {
  return std::make_unique<ConcatScorer>(config);
}

}  // namespace seqgrad
