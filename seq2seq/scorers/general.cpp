// general (Luong et al. 2015): score(q, k) = q^T W k. W k is the same for every decoder step,
// so prepare() projects the keys once per batch. Shape legend: B batch, S source length,
// Hq query size, Hk key size.
#include "autograd/ops.h"
#include "nn/linear.h"
#include "seq2seq/scorers/scorers.h"

namespace seqgrad {

namespace {
class GeneralScorer : public Scorer {
 public:
  explicit GeneralScorer(const ScorerConfig& c)
      : w_(c.key_size, c.query_size, false, scorer_generator(c), c.dtype) {
    register_module("W", w_);
  }
  Variable prepare(const Variable& keys) const override { return w_(keys); }  // [B,S,Hq]
  Variable score(const Variable& query, const Variable& wk) const override {
    return dot_scores(query, wk);
  }

 private:
  Linear w_;
};
}  // namespace

std::unique_ptr<Scorer> make_general_scorer(const ScorerConfig& config) {
  return std::make_unique<GeneralScorer>(config);
}

}  // namespace seqgrad
