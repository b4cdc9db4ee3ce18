// Fused cross-entropy kernels: log-softmax, the negative log-likelihood of the target and label
// smoothing in one pass per row, with no [N,V] log-probabilities kept. The backward recomputes
// softmax from the logits and the two numbers per row the forward saved (max and log-sum).
//
// Shape legend: N rows (tokens), V classes. eps is the label smoothing.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace seqgrad {

struct CrossEntropyRows {
  Tensor loss;             // [N]: loss of each row, 0 where the target is ignore_index
  Tensor max;              // [N]: m = max_j x_j (0 on ignored rows)
  Tensor logsum;           // [N]: log sum_j exp(x_j - m) (0 on ignored rows)
  std::int64_t count = 0;  // rows whose target is not ignore_index
};

// Per row, with log p_j = (x_j - m) - log sum_k exp(x_k - m) (the shift first, so the result is
// not rounded at the scale of the largest logit):
//   loss = (1 - eps) * (-log p_t) - eps * mean_j log p_j,   0 if t == ignore_index
// logits [N,V] floating, targets int64 [N] in [0, V) or ignore_index, eps in [0, 1]; the autograd
// op checks this and names itself in the errors. Any layout (dense inputs are used in place).
CrossEntropyRows cross_entropy_forward(const Tensor& logits, const Tensor& targets,
                                       std::int64_t ignore_index, double eps);

// dx[n,j] = scale * dloss[n] * (softmax_j - (1 - eps) [j == t_n] - eps / V), 0 on ignored rows,
// with softmax_j = exp((x_j - max) - logsum) from the forward's max and logsum. dloss is [N] (one
// gradient per row) or holds one element (the same for every row).
Tensor cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& max,
                              const Tensor& logsum, const Tensor& dloss, double scale,
                              std::int64_t ignore_index, double eps);

}  // namespace seqgrad
