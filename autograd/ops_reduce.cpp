// Reductions. Backward broadcasts dy back over the reduced axes: with keepdim=false those axes
// were dropped, so they are first re-inserted as size 1.
#include <fmt/format.h>

#include "autograd/ops.h"
#include "tensor/elementwise.h"

namespace seqgrad {

namespace {
// dy laid out with the reduced axes restored as size 1.
Tensor keepdim_view(const Tensor& dy, const Shape& in_shape, const Axes& axes) {
  return dy.reshape(reduced_shape(in_shape, axes, true));
}
}  // namespace

// y = sum over axes of x;  dx = dy broadcast over the summed axes
Variable sum(const Variable& x, const Axes& axes, bool keepdim) {
  const Axes ax = normalize_axes(axes, x.dim(), __func__);
  Tensor y = sum(x.data(), ax, keepdim);
  return make_result(std::move(y), Op::sum, {&x},
                     [shape = x.shape(), ax](const Tensor& dy, const GradSink& g) {
                       g.add(0, keepdim_view(dy, shape, ax).expand(shape));
                     });
}

Variable mean(const Variable& x, const Axes& axes, bool keepdim) {
  const Axes ax = normalize_axes(axes, x.dim(), __func__);
  std::int64_t count = 1;
  for (auto a : ax) count *= x.shape()[a];
  if (count == 0) {
    throw ValueError(
        fmt::format("{}: mean over zero elements of {}", __func__, shape_str(x.shape())));
  }
  return sum(x, ax, keepdim) * (1.0 / static_cast<double>(count));
}

// y = max over axes of x;  dx = dy / k at each of the k positions that attain the max
Variable amax(const Variable& x, const Axes& axes, bool keepdim) {
  const Axes ax = normalize_axes(axes, x.dim(), __func__);
  Tensor y = amax(x.data(), ax, keepdim);
  return make_result(y, Op::amax, {&x}, [t = x.data(), y, ax](const Tensor& dy, const GradSink& g) {
    const Tensor ykeep = keepdim_view(y, t.shape(), ax);
    const Tensor hit = eq(t, ykeep).astype(t.dtype());
    const Tensor count = sum(hit, ax, true);
    g.add(0, mul(hit, div(keepdim_view(dy, t.shape(), ax), count)));
  });
}

}  // namespace seqgrad
