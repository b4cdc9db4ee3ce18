// Elementwise kernels with NumPy broadcasting. Dense inputs run through xsimd batches with a
// scalar tail; strided views take the same loop row by row (SIMD where a row is dense).
// Floating ops accept float32 and float64; both inputs of a binary op must share the dtype.
#pragma once

#include "tensor/tensor.h"

namespace seqgrad {

// y = f(x)
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor pow(const Tensor& x, double p);
// GELU (Hendrycks & Gimpel 2016) as PyTorch's gelu: exact y = x Phi(x) = 0.5 x (1 + erf(x / sqrt
// 2)) (approximate='none'), or with tanh_approximation (approximate='tanh') y = 0.5 x (1 +
// tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
Tensor gelu(const Tensor& x, bool tanh_approximation = false);

// y = a (op) b, broadcast
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
// y = x * s + t (one fused pass; add/mul by a plain number)
Tensor affine(const Tensor& x, double s, double t);

// Comparisons give boolean masks.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& mask);

// y = cond ? a : b, all three broadcast; cond is boolean.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// y = mask ? value : x, mask boolean and broadcastable to x.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// Backward kernels, on plain tensors: given the forward output y (or input x) and dy.
Tensor tanh_backward(const Tensor& y, const Tensor& dy);     // dy * (1 - y^2)
Tensor sigmoid_backward(const Tensor& y, const Tensor& dy);  // dy * y * (1 - y)
Tensor relu_backward(const Tensor& x, const Tensor& dy);     // dy * (x > 0)
// dy * gelu'(x), from the forward input x (the same form as the forward).
Tensor gelu_backward(const Tensor& x, const Tensor& dy, bool tanh_approximation = false);

// In place: a += b (b broadcast to a's shape). a may be any view but a broadcast one.
void add_(Tensor& a, const Tensor& b);
// In place: a += alpha * b, same shape, both dense (optimizer updates, gradient accumulation).
void axpy_(Tensor& a, double alpha, const Tensor& b);

}  // namespace seqgrad
