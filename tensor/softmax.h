// softmax and log_softmax along one axis, numerically stable (the row maximum is subtracted
// before exp), with an optional boolean mask broadcastable to the input: true keeps a position,
// false removes it from the normalisation.
//
// Masked positions: softmax gives 0, log_softmax gives -inf. A fully masked row is defined, not
// NaN: softmax gives a row of zeros, log_softmax a row of -inf, and the gradient of either is 0.
#pragma once

#include "tensor/tensor.h"

namespace seqgrad {

// y_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j over kept j
Tensor softmax(const Tensor& x, std::int64_t axis, const Tensor& mask = {});
// y_i = x_i - m - log sum_j exp(x_j - m)
Tensor log_softmax(const Tensor& x, std::int64_t axis, const Tensor& mask = {});

// dx = y * (dy - sum_j dy_j y_j), from the forward output y.
Tensor softmax_backward(const Tensor& y, const Tensor& dy, std::int64_t axis);
// dx = dy - exp(y) * sum_j dy_j over kept j; 0 at masked positions.
Tensor log_softmax_backward(const Tensor& y, const Tensor& dy, std::int64_t axis,
                            const Tensor& mask = {});

}  // namespace seqgrad
