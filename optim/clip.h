// Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_): all gradients are treated as one
// long vector, so clipping keeps the update's direction and only shortens it.
#pragma once

#include <vector>

#include "autograd/variable.h"

namespace seqgrad {

// norm = sqrt(sum over parameters with a grad of sum(g^2)), accumulated in double. `threads`
// split the parameters (tensor/parallel_for.h); the norm is the same at every count.
double grad_norm(const std::vector<Variable>& params, int threads = 1);

// Scales every defined grad in place by max_norm / (norm + 1e-6) when that factor is below 1
// (PyTorch's formula; the 1e-6 keeps a zero norm finite) and returns the norm before clipping.
// Parameters without a grad are skipped. With error_if_nonfinite a NaN or infinite norm throws
// RuntimeError instead of scaling every grad to NaN.
double clip_grad_norm(const std::vector<Variable>& params, double max_norm,
                      bool error_if_nonfinite = false, int threads = 1);

}  // namespace seqgrad
