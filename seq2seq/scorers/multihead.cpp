// multihead: K heads of scaled dot product over learned projections (Vaswani et al. 2017):
// score_k(q, k_j) = (Wq q)_k . (Wk k_j)_k / sqrt(d), d = A / K. Each head gets its own softmax;
// the attention module concatenates the heads' contexts.
// Shape legend: B batch, S source length, Hq query size, Hk key size, A attention size, K heads.
#include <fmt/format.h>

#include <cmath>

#include "autograd/ops.h"
#include "nn/linear.h"
#include "seq2seq/scorers/scorers.h"

namespace seqgrad {

namespace {
class MultiheadScorer : public Scorer {
 public:
  MultiheadScorer(const ScorerConfig& c, std::int64_t size)
      : heads_(c.heads),
        d_(size / c.heads),
        wq_(c.query_size, size, false, scorer_generator(c), c.dtype),
        wk_(c.key_size, size, false, scorer_generator(c), c.dtype) {
    register_module("Wq", wq_);
    register_module("Wk", wk_);
  }
  // Wk k, split into heads: [B,S,A] -> [B*K,S,d]
  Variable prepare(const Variable& keys) const override {
    const std::int64_t B = keys.size(0), S = keys.size(1);
    const Variable k = reshape(wk_(keys), {B, S, heads_, d_});
    return reshape(permute(k, {0, 2, 1, 3}), {B * heads_, S, d_});
  }
  Variable score(const Variable& query, const Variable& k) const override {
    const std::int64_t B = query.size(0);
    const Variable q = reshape(wq_(query), {B * heads_, d_, 1});
    const Variable s = matmul(k, q);  // [B*K,S,1]
    return reshape(s, {B, heads_, -1}) * (1.0 / std::sqrt(static_cast<double>(d_)));
  }
  std::int64_t heads() const override { return heads_; }

 private:
  std::int64_t heads_, d_;
  Linear wq_, wk_;
};
}  // namespace

std::unique_ptr<Scorer> make_multihead_scorer(const ScorerConfig& config) {
  const std::int64_t size = config.attention_size > 0 ? config.attention_size : config.query_size;
  if (config.heads < 1 || size % config.heads != 0) {
    throw ValueError(
        fmt::format("multihead attention: size {} must split into {} heads", size, config.heads));
  }
  return std::make_unique<MultiheadScorer>(config, size);
}

}  // namespace seqgrad
