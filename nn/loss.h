// Losses. cross_entropy takes logits [N,C] and int64 targets [N]: log-softmax and the negative
// log-likelihood in one function, with PyTorch's ignore_index, label_smoothing and reduction.
// It is the fused primitive of autograd/ops.h (ops_loss.cpp) behind PyTorch-style options.
#pragma once

#include "autograd/ops.h"

namespace seqgrad {

struct CrossEntropyOptions {
  std::int64_t ignore_index = -100;  // targets equal to this add nothing (padding)
  double label_smoothing = 0.0;      // in [0, 1]
  Reduction reduction = Reduction::mean;
};

// loss_n = (1 - eps) * (-log p_n[t_n]) + eps * mean_c(-log p_n[c]), 0 for ignored targets;
// mean divides the sum by the number of targets not ignored.
Variable cross_entropy(const Variable& logits, const Tensor& targets,
                       const CrossEntropyOptions& options = {});

}  // namespace seqgrad
