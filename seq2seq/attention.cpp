// The scorer-independent half of attention. Shape legend: B batch, S source length,
// Hk key size, K heads.
#include "seq2seq/attention.h"

#include <fmt/format.h>

#include "autograd/ops.h"

namespace seqgrad {

std::vector<std::string> scorer_names() {
  std::vector<std::string> names;
  for (const auto& e : scorer_registry()) names.push_back(e.name);
  return names;
}

std::unique_ptr<Scorer> make_scorer(const std::string& name, const ScorerConfig& config) {
  for (const auto& e : scorer_registry()) {
    if (e.name == name) return e.make(config);
  }
  throw ValueError(fmt::format("unknown attention scorer '{}' (known: {})", name,
                               fmt::join(scorer_names(), ", ")));
}

Tensor length_mask(const std::vector<std::int64_t>& lengths, std::int64_t max_len) {
  const auto B = static_cast<std::int64_t>(lengths.size());
  Tensor mask = Tensor::empty({B, max_len}, DType::boolean);
  auto* p = static_cast<std::uint8_t*>(mask.raw_data());
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t s = 0; s < max_len; ++s) p[b * max_len + s] = s < lengths[b];
  }
  return mask;
}

Attention::Attention(std::unique_ptr<Scorer> scorer) : scorer_(std::move(scorer)) {
  register_module("scorer", *scorer_);
}

AttentionMemory Attention::memory(const Variable& keys, const Tensor& mask) const {
  if (keys.dim() != 3 || !mask.defined() || mask.shape() != Shape{keys.size(0), keys.size(1)}) {
    throw ShapeError(fmt::format("Attention: keys {} must be [B,S,Hk] and the mask {} [B,S]",
                                 shape_str(keys.shape()),
                                 mask.defined() ? shape_str(mask.shape()) : "undefined"));
  }
  return {keys, scorer_->prepare(keys), mask};
}

AttentionResult Attention::attend(const Variable& query, const AttentionMemory& m) const {
  const Variable scores = scorer_->score(query, m.prepared);
  const std::int64_t B = m.values.size(0), S = m.values.size(1), K = scorer_->heads();
  const Shape want = K == 1 ? Shape{B, S} : Shape{B, K, S};
  if (scores.shape() != want) {
    throw ShapeError(fmt::format("Attention: the scorer returned {} scores, expected {}",
                                 shape_str(scores.shape()), shape_str(want)));
  }
  AttentionResult r;
  r.scores = scores;
  if (K == 1) {
    // a = softmax(scores) over real positions; c = sum_j a_j h_j = a [B,1,S] @ h [B,S,Hk]
    r.weights = softmax(scores, 1, m.mask);
    r.context = squeeze(matmul(unsqueeze(r.weights, 1), m.values), 1);
  } else {
    // One distribution per head; each head's context is its own weighted sum of the states,
    // and the heads' contexts are concatenated.
    const Variable a = softmax(scores, 2, m.mask.unsqueeze(1));  // [B,K,S]
    r.context = reshape(matmul(a, m.values), {B, -1});           // [B,K*Hk]
    r.head_weights = a;
    r.weights = mean(a, {1});
  }
  return r;
}

}  // namespace seqgrad
