// Reductions. sum walks the input with the output's strides zeroed on reduced axes, so one
// strided loop covers every combination of axes: rows that collapse to one output element are
// summed with SIMD lanes, rows that run along the output are accumulated with SIMD adds.
#include "tensor/reduce.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/elementwise.h"
#include "tensor/simd.h"
#include "tensor/strided_loop.h"

namespace seqgrad {

Axes normalize_axes(const Axes& axes, std::int64_t ndim, std::string_view op) {
  Axes out;
  if (axes.empty()) {
    for (std::int64_t i = 0; i < ndim; ++i) out.push_back(i);
    return out;
  }
  for (auto a : axes) out.push_back(normalize_axis(a, ndim, op));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Shape reduced_shape(const Shape& shape, const Axes& axes, bool keepdim) {
  Shape out;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const bool reduced =
        std::find(axes.begin(), axes.end(), static_cast<std::int64_t>(i)) != axes.end();
    if (!reduced) {
      out.push_back(shape[i]);
    } else if (keepdim) {
      out.push_back(1);
    }
  }
  return out;
}

namespace {

void check_defined(const Tensor& t, std::string_view op) {
  if (!t.defined()) throw ValueError(fmt::format("{}: input tensor is undefined", op));
}

// Output strides laid over the input's shape: zero on reduced axes.
Shape scatter_strides(const Shape& in_shape, const Axes& axes) {
  Shape kept = in_shape;
  for (auto a : axes) kept[a] = 1;
  Shape st = contiguous_strides(kept);
  for (auto a : axes) st[a] = 0;
  return st;
}

Tensor sum_impl(const Tensor& x, const Axes& ax, bool keepdim, std::string_view op) {
  return dispatch_floating(x.dtype(), op, [&]<class T>() {
    Tensor y = Tensor::zeros(reduced_shape(x.shape(), ax, true), x.dtype());
    const Shape yst = scatter_strides(x.shape(), ax);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for_each_row<2>(x.shape(), {&yst, &x.strides()},
                    [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                        const std::array<std::int64_t, 2>& inc) {
                      if (inc[0] == 0) {
                        py[off[0]] += simd::sum_row(px + off[1], inc[1], n);
                      } else {
                        simd::binary_row(py + off[0], 1, px + off[1], inc[1], py + off[0], n,
                                         [](auto a, auto b) { return a + b; });
                      }
                    });
    return keepdim ? y : y.reshape(reduced_shape(x.shape(), ax, false));
  });
}

}  // namespace

Tensor sum(const Tensor& x, const Axes& axes, bool keepdim) {
  check_defined(x, __func__);
  return sum_impl(x, normalize_axes(axes, x.dim(), __func__), keepdim, __func__);
}

Tensor mean(const Tensor& x, const Axes& axes, bool keepdim) {
  check_defined(x, __func__);
  const Axes ax = normalize_axes(axes, x.dim(), __func__);
  std::int64_t count = 1;
  for (auto a : ax) count *= x.shape()[a];
  if (count == 0) {
    throw ValueError(
        fmt::format("{}: mean over zero elements of {}", __func__, shape_str(x.shape())));
  }
  return affine(sum_impl(x, ax, keepdim, __func__), 1.0 / static_cast<double>(count), 0.0);
}

MaxResult max(const Tensor& x, std::int64_t axis, bool keepdim) {
  check_defined(x, __func__);
  const std::int64_t a = normalize_axis(axis, x.dim(), __func__);
  const std::int64_t n = x.shape()[a];
  if (n == 0) {
    throw ValueError(fmt::format("{}: axis {} of {} is empty", __func__, a, shape_str(x.shape())));
  }
  // Move the axis last and make rows dense.
  std::vector<std::int64_t> order;
  for (std::int64_t i = 0; i < x.dim(); ++i) {
    if (i != a) order.push_back(i);
  }
  order.push_back(a);
  const Tensor xr = x.permute(order).contiguous();
  const Shape out_shape = reduced_shape(x.shape(), {a}, keepdim);
  MaxResult r;
  r.values = Tensor::empty(out_shape, x.dtype());
  r.indices = Tensor::empty(out_shape, DType::i64);
  dispatch_floating(x.dtype(), __func__, [&]<class T>() {
    const T* px = xr.data<T>();
    T* pv = r.values.data<T>();
    auto* pi = r.indices.data<std::int64_t>();
    const std::int64_t rows = xr.numel() / n;
    for (std::int64_t row = 0; row < rows; ++row) {
      const T* p = px + row * n;
      std::int64_t best = 0;
      for (std::int64_t j = 1; j < n; ++j) {
        if (p[j] > p[best]) best = j;
      }
      pv[row] = p[best];
      pi[row] = best;
    }
  });
  return r;
}

Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdim) {
  return max(x, axis, keepdim).indices;
}

Tensor amax(const Tensor& x, const Axes& axes, bool keepdim) {
  check_defined(x, __func__);
  const Axes ax = normalize_axes(axes, x.dim(), __func__);
  // Checked here so a bad dtype is reported as amax, not as the max it delegates to (and so a
  // 0-d input, which reaches no max call, is checked too).
  dispatch_floating(x.dtype(), __func__, []<class T>() {});
  Tensor y = x;
  for (auto it = ax.rbegin(); it != ax.rend(); ++it) y = max(y, *it, true).values;
  return keepdim ? y : y.reshape(reduced_shape(x.shape(), ax, false));
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  check_defined(x, __func__);
  if (x.shape() == shape) return x;
  const Shape b = broadcast_shapes(x.shape(), shape, __func__);
  if (b != x.shape() || shape.size() > x.shape().size()) {
    throw ShapeError(fmt::format("{}: {} is not a broadcast of {}", __func__, shape_str(x.shape()),
                                 shape_str(shape)));
  }
  const std::size_t lead = x.shape().size() - shape.size();
  Axes axes;
  for (std::size_t i = 0; i < x.shape().size(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1)) {
      axes.push_back(static_cast<std::int64_t>(i));
    }
  }
  if (axes.empty()) return x.reshape(shape);
  return sum_impl(x, axes, true, __func__).reshape(shape);
}

NonFinite count_nonfinite(const Tensor& x) {
  check_defined(x, __func__);
  NonFinite r;
  if (x.dtype() != DType::f32 && x.dtype() != DType::f64) return r;
  const Tensor c = x.contiguous();
  dispatch_floating(c.dtype(), __func__, [&]<class T>() {
    const T* p = c.data<T>();
    for (std::int64_t i = 0; i < c.numel(); ++i) {
      if (std::isfinite(p[i])) continue;
      if (std::isnan(p[i]))
        ++r.nan;
      else if (p[i] > 0)
        ++r.pos_inf;
      else
        ++r.neg_inf;
    }
  });
  return r;
}

}  // namespace seqgrad
