// Row kernels for softmax and log_softmax. The axis is moved last and made dense, each row is
// processed with SIMD exp and sums, and the result is permuted back (a view, not a copy).
#include "tensor/softmax.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "tensor/simd.h"

namespace seqgrad {

namespace {

struct Rows {
  std::vector<std::int64_t> order;  // permutation that moved the axis last
  std::vector<std::int64_t> inverse;
  std::int64_t n = 0;  // row length
};

Rows rows_for(const Tensor& x, std::int64_t axis, std::string_view op) {
  if (!x.defined()) throw ValueError(fmt::format("{}: input tensor is undefined", op));
  Rows r;
  const std::int64_t a = normalize_axis(axis, x.dim(), op);
  for (std::int64_t i = 0; i < x.dim(); ++i) {
    if (i != a) r.order.push_back(i);
  }
  r.order.push_back(a);
  r.inverse.resize(r.order.size());
  for (std::size_t i = 0; i < r.order.size(); ++i)
    r.inverse[r.order[i]] = static_cast<std::int64_t>(i);
  r.n = x.shape()[a];
  return r;
}

// The mask as dense bytes laid out like the permuted input, or empty when there is no mask.
Tensor dense_mask(const Tensor& mask, const Tensor& x, const Rows& r, std::string_view op) {
  if (!mask.defined()) return {};
  if (mask.dtype() != DType::boolean) {
    throw DTypeError(fmt::format("{}: the mask must be bool, got {}{}", op,
                                 dtype_name(mask.dtype()), shape_str(mask.shape())));
  }
  if (broadcast_shapes(x.shape(), mask.shape(), op) != x.shape()) {
    throw ShapeError(fmt::format("{}: mask {} does not broadcast to the input {}", op,
                                 shape_str(mask.shape()), shape_str(x.shape())));
  }
  return mask.expand(x.shape()).permute(r.order).contiguous();
}

template <class T>
void softmax_row(const T* x, const std::uint8_t* keep, T* y, std::int64_t n, bool log_out) {
  using B = simd::Batch<T>;
  constexpr std::int64_t W = B::size;
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  T m = kNegInf;
  for (std::int64_t j = 0; j < n; ++j) {
    if ((keep == nullptr || keep[j]) && x[j] > m) m = x[j];
  }
  if (m == kNegInf) {  // fully masked row (or a row of -inf): defined as all-zero probability
    for (std::int64_t j = 0; j < n; ++j) y[j] = log_out ? kNegInf : T(0);
    return;
  }
  // y = exp(x - m), masked entries 0
  std::int64_t j = 0;
  if (keep == nullptr) {
    const B vm(m);
    for (; j + W <= n; j += W) xsimd::exp(B::load_unaligned(x + j) - vm).store_unaligned(y + j);
  }
  for (; j < n; ++j) y[j] = (keep == nullptr || keep[j]) ? std::exp(x[j] - m) : T(0);
  const T s = simd::sum_row(y, 1, n);
  if (log_out) {
    // NOTE: (x - m) - log s, not x - (m + log s): the latter rounds at the scale of the largest
    // logit, the former at the scale of each shifted value (as PyTorch computes it).
    const T log_s = std::log(s);
    for (std::int64_t k = 0; k < n; ++k) {
      y[k] = (keep == nullptr || keep[k]) ? (x[k] - m) - log_s : kNegInf;
    }
  } else {
    const T inv = T(1) / s;
    simd::unary_row(y, 1, y, n, [inv](auto v) { return v * decltype(v)(inv); });
  }
}

Tensor softmax_impl(const Tensor& x, std::int64_t axis, const Tensor& mask, bool log_out,
                    std::string_view op) {
  const Rows r = rows_for(x, axis, op);
  const Tensor keep = dense_mask(mask, x, r, op);
  return dispatch_floating(x.dtype(), op, [&]<class T>() {
    const Tensor xr = x.permute(r.order).contiguous();
    Tensor yr = Tensor::empty(xr.shape(), x.dtype());
    if (r.n == 0) return yr.permute(r.inverse);
    const T* px = xr.data<T>();
    T* py = yr.data<T>();
    const auto* pk = keep.defined() ? static_cast<const std::uint8_t*>(keep.raw_data()) : nullptr;
    const std::int64_t rows = xr.numel() / r.n;
    for (std::int64_t i = 0; i < rows; ++i) {
      softmax_row(px + i * r.n, pk ? pk + i * r.n : nullptr, py + i * r.n, r.n, log_out);
    }
    return yr.permute(r.inverse);
  });
}

void check_same(const Tensor& y, const Tensor& dy, std::string_view op) {
  if (!y.defined() || !dy.defined() || y.shape() != dy.shape()) {
    throw ShapeError(fmt::format("{}: output {} and its gradient {} must match", op,
                                 y.defined() ? shape_str(y.shape()) : "undefined",
                                 dy.defined() ? shape_str(dy.shape()) : "undefined"));
  }
  if (y.dtype() != dy.dtype()) {
    throw DTypeError(fmt::format("{}: dtypes differ (output {}{} vs gradient {}{})", op,
                                 dtype_name(y.dtype()), shape_str(y.shape()),
                                 dtype_name(dy.dtype()), shape_str(dy.shape())));
  }
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t axis, const Tensor& mask) {
  return softmax_impl(x, axis, mask, false, __func__);
}

Tensor log_softmax(const Tensor& x, std::int64_t axis, const Tensor& mask) {
  return softmax_impl(x, axis, mask, true, __func__);
}

Tensor softmax_backward(const Tensor& y, const Tensor& dy, std::int64_t axis) {
  check_same(y, dy, __func__);
  const Rows r = rows_for(y, axis, __func__);
  return dispatch_floating(y.dtype(), __func__, [&]<class T>() {
    const Tensor yr = y.permute(r.order).contiguous();
    const Tensor dyr = dy.permute(r.order).contiguous();
    Tensor dxr = Tensor::empty(yr.shape(), y.dtype());
    if (r.n == 0) return dxr.permute(r.inverse);
    const T* py = yr.data<T>();
    const T* pdy = dyr.data<T>();
    T* pdx = dxr.data<T>();
    const std::int64_t rows = yr.numel() / r.n;
    for (std::int64_t i = 0; i < rows; ++i) {
      const T* yi = py + i * r.n;
      const T* dyi = pdy + i * r.n;
      T dot = 0;
      for (std::int64_t j = 0; j < r.n; ++j) dot += yi[j] * dyi[j];
      // In the forward pass y = softmax(x), so dx_j = y_j (dy_j - <y, dy>); masked y_j = 0.
      T* dxi = pdx + i * r.n;
      for (std::int64_t j = 0; j < r.n; ++j) dxi[j] = yi[j] * (dyi[j] - dot);
    }
    return dxr.permute(r.inverse);
  });
}

Tensor log_softmax_backward(const Tensor& y, const Tensor& dy, std::int64_t axis,
                            const Tensor& mask) {
  check_same(y, dy, __func__);
  const Rows r = rows_for(y, axis, __func__);
  const Tensor keep = dense_mask(mask, y, r, __func__);
  return dispatch_floating(y.dtype(), __func__, [&]<class T>() {
    const Tensor yr = y.permute(r.order).contiguous();
    const Tensor dyr = dy.permute(r.order).contiguous();
    Tensor dxr = Tensor::empty(yr.shape(), y.dtype());
    if (r.n == 0) return dxr.permute(r.inverse);
    const T* py = yr.data<T>();
    const T* pdy = dyr.data<T>();
    const auto* pk = keep.defined() ? static_cast<const std::uint8_t*>(keep.raw_data()) : nullptr;
    T* pdx = dxr.data<T>();
    const std::int64_t rows = yr.numel() / r.n;
    for (std::int64_t i = 0; i < rows; ++i) {
      const T* yi = py + i * r.n;
      const T* dyi = pdy + i * r.n;
      const std::uint8_t* ki = pk ? pk + i * r.n : nullptr;
      T* dxi = pdx + i * r.n;
      // In the forward pass y = x - logsumexp(x) over kept positions; masked outputs are the
      // constant -inf, so they neither receive nor pass gradient.
      // NOTE: a masked dy must not enter the sum, and exp(-inf) = 0 keeps masked dx at 0 only
      // if we also zero dy there.
      T total = 0;
      for (std::int64_t j = 0; j < r.n; ++j) {
        if (ki == nullptr || ki[j]) total += dyi[j];
      }
      for (std::int64_t j = 0; j < r.n; ++j) {
        const bool kept = (ki == nullptr || ki[j]) && yi[j] != -std::numeric_limits<T>::infinity();
        dxi[j] = kept ? dyi[j] - std::exp(yi[j]) * total : T(0);
      }
    }
    return dxr.permute(r.inverse);
  });
}

}  // namespace seqgrad
