// Reductions over one or more axes, with keepdim, and sum_to_shape (the backward of
// broadcasting). An empty axis list means every axis.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace seqgrad {

using Axes = std::vector<std::int64_t>;

// y = sum over axes of x
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// y = sum(x) / (number of summed elements)
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// y = max over axes of x (values only)
Tensor amax(const Tensor& x, const Axes& axes = {}, bool keepdim = false);

struct MaxResult {
  Tensor values;
  Tensor indices;  // int64: position of the first maximum along the axis
};
// Max along one axis with the argmax.
MaxResult max(const Tensor& x, std::int64_t axis, bool keepdim = false);
Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdim = false);

// Sums x down to `shape`, the inverse of broadcasting `shape` up to x.shape(): leading axes are
// summed away, axes where `shape` has 1 are summed with keepdim.
Tensor sum_to_shape(const Tensor& x, const Shape& shape);

// How many elements are NaN, +inf and -inf (all zero for integer dtypes). Anomaly mode
// (autograd/anomaly.h) asks this of every op's output and gradient.
struct NonFinite {
  std::int64_t nan = 0, pos_inf = 0, neg_inf = 0;
  bool any() const { return nan + pos_inf + neg_inf > 0; }
};
NonFinite count_nonfinite(const Tensor& x);

// Normalised, sorted, de-duplicated axes; empty input means all axes.
Axes normalize_axes(const Axes& axes, std::int64_t ndim, std::string_view op);
// The shape left after reducing `axes` (kept as size 1 when keepdim).
Shape reduced_shape(const Shape& shape, const Axes& axes, bool keepdim);

}  // namespace seqgrad
