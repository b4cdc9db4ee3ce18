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
  Variable score(const Variable& query, const Variable& uk) const override {
    const Variable e = tanh(uk + unsqueeze(w_(query), 1));  // [B,S,A]
    return squeeze(v_(e), 2);                               // [B,S]
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
