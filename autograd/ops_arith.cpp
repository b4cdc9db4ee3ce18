// Broadcasting arithmetic. In every backward the forward broadcast a and b up to y's shape, so
// each input's gradient is dy (times the local derivative) summed back down to its own shape.
#include "autograd/ops.h"
#include "tensor/elementwise.h"

namespace seqgrad {

// y = a + b;  da = dy, db = dy
Variable add(const Variable& a, const Variable& b) {
  Tensor y = add(a.data(), b.data());
  return make_result(std::move(y), Op::add, {&a, &b},
                     [sa = a.shape(), sb = b.shape()](const Tensor& dy, const GradSink& g) {
                       g.add(0, sum_to_shape(dy, sa));
                       g.add(1, sum_to_shape(dy, sb));
                     });
}

// y = a - b;  da = dy, db = -dy
Variable sub(const Variable& a, const Variable& b) {
  Tensor y = sub(a.data(), b.data());
  return make_result(std::move(y), Op::sub, {&a, &b},
                     [sa = a.shape(), sb = b.shape()](const Tensor& dy, const GradSink& g) {
                       g.add(0, sum_to_shape(dy, sa));
                       if (g.needs(1)) g.add(1, sum_to_shape(neg(dy), sb));
                     });
}

// y = a * b;  da = dy * b, db = dy * a
Variable mul(const Variable& a, const Variable& b) {
  Tensor y = mul(a.data(), b.data());
  return make_result(std::move(y), Op::mul, {&a, &b},
                     [ta = a.data(), tb = b.data()](const Tensor& dy, const GradSink& g) {
                       if (g.needs(0)) g.add(0, sum_to_shape(mul(dy, tb), ta.shape()));
                       if (g.needs(1)) g.add(1, sum_to_shape(mul(dy, ta), tb.shape()));
                     });
}

// y = a / b;  da = dy / b, db = -dy * y / b
Variable div(const Variable& a, const Variable& b) {
  Tensor y = div(a.data(), b.data());
  return make_result(y, Op::div, {&a, &b},
                     [sa = a.shape(), tb = b.data(), y](const Tensor& dy, const GradSink& g) {
                       const Tensor dy_over_b = div(dy, tb);
                       g.add(0, sum_to_shape(dy_over_b, sa));
                       if (g.needs(1)) g.add(1, sum_to_shape(neg(mul(dy_over_b, y)), tb.shape()));
                     });
}

namespace {
// Shared backward of maximum/minimum: `a_wins` marks where the forward picked a.
void select_backward(const Tensor& a_wins, const Tensor& dy, const Shape& sa, const Shape& sb,
                     const GradSink& g) {
  const Tensor zero = Tensor::scalar(0, dy.dtype());
  if (g.needs(0)) g.add(0, sum_to_shape(where(a_wins, dy, zero), sa));
  if (g.needs(1)) g.add(1, sum_to_shape(where(a_wins, zero, dy), sb));
}
}  // namespace

// y = max(a, b);  da = dy where a >= b, db = dy elsewhere
// NOTE: at a tie the whole gradient goes to a (a subgradient), as the forward picked a.
Variable maximum(const Variable& a, const Variable& b) {
  Tensor y = maximum(a.data(), b.data());
  return make_result(std::move(y), Op::maximum, {&a, &b},
                     [ta = a.data(), tb = b.data()](const Tensor& dy, const GradSink& g) {
                       select_backward(ge(ta, tb), dy, ta.shape(), tb.shape(), g);
                     });
}

// y = min(a, b);  da = dy where a <= b, db = dy elsewhere
Variable minimum(const Variable& a, const Variable& b) {
  Tensor y = minimum(a.data(), b.data());
  return make_result(std::move(y), Op::minimum, {&a, &b},
                     [ta = a.data(), tb = b.data()](const Tensor& dy, const GradSink& g) {
                       select_backward(le(ta, tb), dy, ta.shape(), tb.shape(), g);
                     });
}

// y = s * x + t;  dx = s * dy
Variable affine(const Variable& x, double s, double t) {
  Tensor y = affine(x.data(), s, t);
  return make_result(std::move(y), Op::affine, {&x},
                     [s](const Tensor& dy, const GradSink& g) { g.add(0, affine(dy, s, 0.0)); });
}

Variable neg(const Variable& x) {
  return affine(x, -1.0, 0.0);
}

// y = cond ? a : b;  da = dy where cond, db = dy elsewhere
Variable where(const Tensor& cond, const Variable& a, const Variable& b) {
  Tensor y = where(cond, a.data(), b.data());
  return make_result(std::move(y), Op::where, {&a, &b},
                     [cond, sa = a.shape(), sb = b.shape()](const Tensor& dy, const GradSink& g) {
                       select_backward(cond, dy, sa, sb, g);
                     });
}

// y = mask ? value : x;  dx = dy where not mask
Variable masked_fill(const Variable& x, const Tensor& mask, double value) {
  Tensor y = masked_fill(x.data(), mask, value);
  return make_result(
      std::move(y), Op::masked_fill, {&x},
      [mask](const Tensor& dy, const GradSink& g) { g.add(0, masked_fill(dy, mask, 0.0)); });
}

Variable operator+(const Variable& a, const Variable& b) {
  return add(a, b);
}
Variable operator-(const Variable& a, const Variable& b) {
  return sub(a, b);
}
Variable operator*(const Variable& a, const Variable& b) {
  return mul(a, b);
}
Variable operator/(const Variable& a, const Variable& b) {
  return div(a, b);
}
Variable operator-(const Variable& x) {
  return neg(x);
}
Variable operator+(const Variable& x, double s) {
  return affine(x, 1.0, s);
}
Variable operator+(double s, const Variable& x) {
  return affine(x, 1.0, s);
}
Variable operator-(const Variable& x, double s) {
  return affine(x, 1.0, -s);
}
Variable operator-(double s, const Variable& x) {
  return affine(x, -1.0, s);
}
Variable operator*(const Variable& x, double s) {
  return affine(x, s, 0.0);
}
Variable operator*(double s, const Variable& x) {
  return affine(x, s, 0.0);
}
Variable operator/(const Variable& x, double s) {
  return affine(x, 1.0 / s, 0.0);
}

}  // namespace seqgrad
