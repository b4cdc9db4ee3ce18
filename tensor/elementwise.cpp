// Elementwise kernels. Every op is a functor usable on batches and scalars (tensor/simd.h);
// the broadcasting walk is for_each_row (tensor/strided_loop.h).
#include "tensor/elementwise.h"

#include <fmt/format.h>

#include <cmath>

#include "tensor/simd.h"
#include "tensor/strided_loop.h"

namespace seqgrad {

using simd::scalar_of;

namespace {

struct NegOp {
  template <class V>
  V operator()(V x) const {
    return -x;
  }
};
struct ExpOp {
  template <class V>
  V operator()(V x) const {
    return xsimd::exp(x);
  }
};
struct LogOp {
  template <class V>
  V operator()(V x) const {
    return xsimd::log(x);
  }
};
struct TanhOp {
  template <class V>
  V operator()(V x) const {
    return xsimd::tanh(x);
  }
};
struct SigmoidOp {
  template <class V>
  V operator()(V x) const {
    return simd::sigmoid(x);
  }
};
struct ReluOp {
  template <class V>
  V operator()(V x) const {
    if constexpr (std::is_arithmetic_v<V>) {
      return x > V(0) ? x : V(0);
    } else {
      return xsimd::max(x, V(0));
    }
  }
};
struct SqrtOp {
  template <class V>
  V operator()(V x) const {
    return xsimd::sqrt(x);
  }
};
struct PowOp {
  double p;
  template <class V>
  V operator()(V x) const {
    using T = scalar_of<V>;
    if (p == 2.0) return x * x;
    if (p == 1.0) return x;
    if (p == 0.5) return xsimd::sqrt(x);
    if (p == -1.0) return V(T(1)) / x;
    return xsimd::pow(x, V(static_cast<T>(p)));
  }
};
// GELU's constants: 1 / sqrt 2, sqrt(2 / pi), 1 / sqrt(2 pi) and the tanh form's cubic term.
constexpr double kSqrtHalf = 0.70710678118654752440;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kGeluCubic = 0.044715;

// Phi(x) = 0.5 (1 + erf(x / sqrt 2)) is computed as 0.5 erfc(-x / sqrt 2), the same value
// without the cancellation of 1 + erf for x << 0 (there Phi is tiny and erf near -1).
struct GeluOp {
  bool tanh_form;
  template <class V>
  V operator()(V x) const {
    using T = scalar_of<V>;
    const V half(T(0.5));
    if (tanh_form) {
      const V u = V(T(kSqrt2OverPi)) * (x + V(T(kGeluCubic)) * x * x * x);
      return half * x * (V(T(1)) + xsimd::tanh(u));
    }
    return half * x * xsimd::erfc(V(T(-kSqrtHalf)) * x);
  }
};
struct AffineOp {
  double s, t;
  template <class V>
  V operator()(V x) const {
    using T = scalar_of<V>;
    return x * V(static_cast<T>(s)) + V(static_cast<T>(t));
  }
};

struct AddOp {
  template <class V>
  V operator()(V a, V b) const {
    return a + b;
  }
};
struct SubOp {
  template <class V>
  V operator()(V a, V b) const {
    return a - b;
  }
};
struct MulOp {
  template <class V>
  V operator()(V a, V b) const {
    return a * b;
  }
};
struct DivOp {
  template <class V>
  V operator()(V a, V b) const {
    return a / b;
  }
};
struct MaxOp {
  template <class V>
  V operator()(V a, V b) const {
    if constexpr (std::is_arithmetic_v<V>) {
      return a >= b ? a : b;
    } else {
      return xsimd::select(a >= b, a, b);
    }
  }
};
struct MinOp {
  template <class V>
  V operator()(V a, V b) const {
    if constexpr (std::is_arithmetic_v<V>) {
      return a <= b ? a : b;
    } else {
      return xsimd::select(a <= b, a, b);
    }
  }
};
struct TanhBackwardOp {  // (y, dy) -> dy * (1 - y^2)
  template <class V>
  V operator()(V y, V dy) const {
    return dy * (V(1) - y * y);
  }
};
struct SigmoidBackwardOp {  // (y, dy) -> dy * y * (1 - y)
  template <class V>
  V operator()(V y, V dy) const {
    return dy * y * (V(1) - y);
  }
};
struct ReluBackwardOp {  // (x, dy) -> x > 0 ? dy : 0
  template <class V>
  V operator()(V x, V dy) const {
    if constexpr (std::is_arithmetic_v<V>) {
      return x > V(0) ? dy : V(0);
    } else {
      return xsimd::select(x > V(0), dy, V(0));
    }
  }
};

// (x, dy) -> dy * gelu'(x)
struct GeluBackwardOp {
  bool tanh_form;
  template <class V>
  V operator()(V x, V dy) const {
    using T = scalar_of<V>;
    const V half(T(0.5)), one(T(1));
    if (tanh_form) {
      // y = 0.5 x (1 + t), t = tanh(u), u = c (x + a x^3):
      // dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)
      const V x2 = x * x;
      const V c = V(T(kSqrt2OverPi)), a = V(T(kGeluCubic));
      const V t = xsimd::tanh(c * x * (one + a * x2));
      return dy * (half * (one + t) + half * x * (one - t * t) * c * (one + V(T(3)) * a * x2));
    }
    // y = x Phi(x): dy/dx = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    const V cdf = half * xsimd::erfc(V(T(-kSqrtHalf)) * x);
    const V pdf = V(T(kInvSqrt2Pi)) * xsimd::exp(-half * x * x);
    return dy * (cdf + x * pdf);
  }
};

void check_defined(const Tensor& t, std::string_view op) {
  if (!t.defined()) throw ValueError(fmt::format("{}: input tensor is undefined", op));
}

void check_same_dtype(const Tensor& a, const Tensor& b, std::string_view op) {
  check_defined(a, op);
  check_defined(b, op);
  if (a.dtype() != b.dtype()) {
    throw DTypeError(fmt::format("{}: dtypes differ ({}{} vs {}{})", op, dtype_name(a.dtype()),
                                 shape_str(a.shape()), dtype_name(b.dtype()),
                                 shape_str(b.shape())));
  }
}

template <class Op>
Tensor unary_op(const Tensor& x, std::string_view name, const Op& op) {
  check_defined(x, name);
  return dispatch_floating(x.dtype(), name, [&]<class T>() {
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for_each_row<2>(x.shape(), {&y.strides(), &x.strides()},
                    [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                        const std::array<std::int64_t, 2>& inc) {
                      simd::unary_row(px + off[1], inc[1], py + off[0], n, op);
                    });
    return y;
  });
}

template <class Op>
Tensor binary_op(const Tensor& a, const Tensor& b, std::string_view name, const Op& op) {
  check_same_dtype(a, b, name);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  return dispatch_floating(a.dtype(), name, [&]<class T>() {
    Tensor y = Tensor::empty(shape, a.dtype());
    const Tensor ae = a.expand(shape), be = b.expand(shape);
    const T* pa = ae.data<T>();
    const T* pb = be.data<T>();
    T* py = y.data<T>();
    for_each_row<3>(shape, {&y.strides(), &ae.strides(), &be.strides()},
                    [&](const std::array<std::int64_t, 3>& off, std::int64_t n,
                        const std::array<std::int64_t, 3>& inc) {
                      simd::binary_row(pa + off[1], inc[1], pb + off[2], inc[2], py + off[0], n,
                                       op);
                    });
    return y;
  });
}

template <class Cmp>
Tensor compare_op(const Tensor& a, const Tensor& b, std::string_view name, Cmp cmp) {
  check_same_dtype(a, b, name);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor y = Tensor::empty(shape, DType::boolean);
  dispatch_all(a.dtype(), [&]<class T>() {
    const Tensor ae = a.expand(shape), be = b.expand(shape);
    const T* pa = static_cast<const T*>(ae.raw_data());
    const T* pb = static_cast<const T*>(be.raw_data());
    auto* py = static_cast<std::uint8_t*>(y.raw_data());
    for_each_row<3>(shape, {&y.strides(), &ae.strides(), &be.strides()},
                    [&](const std::array<std::int64_t, 3>& off, std::int64_t n,
                        const std::array<std::int64_t, 3>& inc) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        py[off[0] + i] = cmp(pa[off[1] + i * inc[1]], pb[off[2] + i * inc[2]]);
                      }
                    });
  });
  return y;
}

void check_mask(const Tensor& mask, std::string_view op) {
  check_defined(mask, op);
  if (mask.dtype() != DType::boolean) {
    throw DTypeError(fmt::format("{}: the mask must be bool, got {}{}", op,
                                 dtype_name(mask.dtype()), shape_str(mask.shape())));
  }
}

}  // namespace

Tensor neg(const Tensor& x) {
  return unary_op(x, __func__, NegOp{});
}
Tensor exp(const Tensor& x) {
  return unary_op(x, __func__, ExpOp{});
}
Tensor log(const Tensor& x) {
  return unary_op(x, __func__, LogOp{});
}
Tensor tanh(const Tensor& x) {
  return unary_op(x, __func__, TanhOp{});
}
Tensor sigmoid(const Tensor& x) {
  return unary_op(x, __func__, SigmoidOp{});
}
Tensor relu(const Tensor& x) {
  return unary_op(x, __func__, ReluOp{});
}
Tensor sqrt(const Tensor& x) {
  return unary_op(x, __func__, SqrtOp{});
}
Tensor pow(const Tensor& x, double p) {
  return unary_op(x, __func__, PowOp{p});
}
Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return unary_op(x, __func__, GeluOp{tanh_approximation});
}
Tensor affine(const Tensor& x, double s, double t) {
  return unary_op(x, __func__, AffineOp{s, t});
}

Tensor add(const Tensor& a, const Tensor& b) {
  return binary_op(a, b, __func__, AddOp{});
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary_op(a, b, __func__, SubOp{});
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary_op(a, b, __func__, MulOp{});
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary_op(a, b, __func__, DivOp{});
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary_op(a, b, __func__, MaxOp{});
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary_op(a, b, __func__, MinOp{});
}

Tensor tanh_backward(const Tensor& y, const Tensor& dy) {
  return binary_op(y, dy, __func__, TanhBackwardOp{});
}
Tensor sigmoid_backward(const Tensor& y, const Tensor& dy) {
  return binary_op(y, dy, __func__, SigmoidBackwardOp{});
}
Tensor relu_backward(const Tensor& x, const Tensor& dy) {
  return binary_op(x, dy, __func__, ReluBackwardOp{});
}
Tensor gelu_backward(const Tensor& x, const Tensor& dy, bool tanh_approximation) {
  return binary_op(x, dy, __func__, GeluBackwardOp{tanh_approximation});
}

Tensor eq(const Tensor& a, const Tensor& b) {
  return compare_op(a, b, __func__, [](auto x, auto y) { return x == y; });
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return compare_op(a, b, __func__, [](auto x, auto y) { return x != y; });
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return compare_op(a, b, __func__, [](auto x, auto y) { return x < y; });
}
Tensor le(const Tensor& a, const Tensor& b) {
  return compare_op(a, b, __func__, [](auto x, auto y) { return x <= y; });
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return compare_op(a, b, __func__, [](auto x, auto y) { return x > y; });
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return compare_op(a, b, __func__, [](auto x, auto y) { return x >= y; });
}

Tensor logical_not(const Tensor& mask) {
  check_mask(mask, __func__);
  return eq(mask, Tensor::scalar(0, DType::boolean));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_mask(cond, __func__);
  check_same_dtype(a, b, __func__);
  const Shape shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), __func__), __func__);
  Tensor y = Tensor::empty(shape, a.dtype());
  const Tensor ce = cond.expand(shape), ae = a.expand(shape), be = b.expand(shape);
  dispatch_all(a.dtype(), [&]<class T>() {
    const auto* pc = static_cast<const std::uint8_t*>(ce.raw_data());
    const T* pa = static_cast<const T*>(ae.raw_data());
    const T* pb = static_cast<const T*>(be.raw_data());
    T* py = static_cast<T*>(y.raw_data());
    for_each_row<4>(shape, {&y.strides(), &ce.strides(), &ae.strides(), &be.strides()},
                    [&](const std::array<std::int64_t, 4>& off, std::int64_t n,
                        const std::array<std::int64_t, 4>& inc) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        py[off[0] + i] = pc[off[1] + i * inc[1]] ? pa[off[2] + i * inc[2]]
                                                                 : pb[off[3] + i * inc[3]];
                      }
                    });
  });
  return y;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_mask(mask, __func__);
  check_defined(x, __func__);
  const Shape shape = broadcast_shapes(x.shape(), mask.shape(), __func__);
  if (shape != x.shape()) {
    throw ShapeError(fmt::format("{}: mask {} does not broadcast to the input {}", __func__,
                                 shape_str(mask.shape()), shape_str(x.shape())));
  }
  return where(mask, Tensor::scalar(value, x.dtype()), x);
}

void add_(Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, __func__);
  for (std::int64_t d = 0; d < a.dim(); ++d) {
    if (a.shape()[d] > 1 && a.strides()[d] == 0) {
      throw ValueError(fmt::format("{}: the destination {} is a broadcast view", __func__,
                                   shape_str(a.shape())));
    }
  }
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), __func__);
  if (shape != a.shape()) {
    throw ShapeError(fmt::format("{}: {} does not broadcast to the destination {}", __func__,
                                 shape_str(b.shape()), shape_str(a.shape())));
  }
  dispatch_floating(a.dtype(), __func__, [&]<class T>() {
    const Tensor be = b.expand(shape);
    T* pa = a.data<T>();
    const T* pb = be.data<T>();
    for_each_row<2>(shape, {&a.strides(), &be.strides()},
                    [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                        const std::array<std::int64_t, 2>& inc) {
                      if (inc[0] == 1) {
                        simd::binary_row(pa + off[0], 1, pb + off[1], inc[1], pa + off[0], n,
                                         AddOp{});
                        return;
                      }
                      for (std::int64_t i = 0; i < n; ++i)
                        pa[off[0] + i * inc[0]] += pb[off[1] + i * inc[1]];
                    });
  });
}

void axpy_(Tensor& a, double alpha, const Tensor& b) {
  check_same_dtype(a, b, __func__);
  if (a.shape() != b.shape() || !a.is_contiguous() || !b.is_contiguous()) {
    throw ShapeError(fmt::format("{}: needs two dense tensors of one shape, got {} and {}",
                                 __func__, shape_str(a.shape()), shape_str(b.shape())));
  }
  dispatch_floating(a.dtype(), __func__, [&]<class T>() {
    T* pa = a.data<T>();
    const T* pb = b.data<T>();
    const T al = static_cast<T>(alpha);
    simd::binary_row(pa, 1, pb, 1, pa, a.numel(),
                     [al](auto x, auto y) { return x + decltype(x)(al) * y; });
  });
}

}  // namespace seqgrad
