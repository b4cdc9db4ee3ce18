// Elementwise functions of one input. Backwards reuse the forward output where the derivative
// is cheapest in terms of it (exp, tanh, sigmoid, sqrt).
#include "autograd/ops.h"
#include "tensor/elementwise.h"

namespace seqgrad {

// y = e^x;  dx = dy * y
Variable exp(const Variable& x) {
  Tensor y = exp(x.data());
  return make_result(y, Op::exp, {&x},
                     [y](const Tensor& dy, const GradSink& g) { g.add(0, mul(dy, y)); });
}

// y = ln x;  dx = dy / x
Variable log(const Variable& x) {
  Tensor y = log(x.data());
  return make_result(std::move(y), Op::log, {&x},
                     [t = x.data()](const Tensor& dy, const GradSink& g) { g.add(0, div(dy, t)); });
}

// y = tanh x;  dx = dy * (1 - y^2)
Variable tanh(const Variable& x) {
  Tensor y = tanh(x.data());
  return make_result(y, Op::tanh, {&x},
                     [y](const Tensor& dy, const GradSink& g) { g.add(0, tanh_backward(y, dy)); });
}

// y = 1 / (1 + e^-x);  dx = dy * y * (1 - y)
Variable sigmoid(const Variable& x) {
  Tensor y = sigmoid(x.data());
  return make_result(y, Op::sigmoid, {&x}, [y](const Tensor& dy, const GradSink& g) {
    g.add(0, sigmoid_backward(y, dy));
  });
}

// y = max(x, 0);  dx = dy where x > 0
// NOTE: at x = 0 the gradient is 0 (PyTorch's choice); gradcheck keeps inputs off the kink.
Variable relu(const Variable& x) {
  Tensor y = relu(x.data());
  return make_result(
      std::move(y), Op::relu, {&x},
      [t = x.data()](const Tensor& dy, const GradSink& g) { g.add(0, relu_backward(t, dy)); });
}

// y = x Phi(x) (exact) or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));  dx = dy * gelu'(x)
// (the derivative, per form, is written out in tensor/elementwise.cpp's GeluBackwardOp)
Variable gelu(const Variable& x, bool tanh_approximation) {
  Tensor y = gelu(x.data(), tanh_approximation);
  return make_result(std::move(y), Op::gelu, {&x},
                     [t = x.data(), tanh_approximation](const Tensor& dy, const GradSink& g) {
                       g.add(0, gelu_backward(t, dy, tanh_approximation));
                     });
}

// y = sqrt x;  dx = dy / (2 y)
Variable sqrt(const Variable& x) {
  Tensor y = sqrt(x.data());
  return make_result(y, Op::sqrt, {&x}, [y](const Tensor& dy, const GradSink& g) {
    g.add(0, div(dy, affine(y, 2.0, 0.0)));
  });
}

// y = x^p;  dx = dy * p * x^(p-1)
Variable pow(const Variable& x, double p) {
  Tensor y = pow(x.data(), p);
  return make_result(std::move(y), Op::pow, {&x},
                     [t = x.data(), p](const Tensor& dy, const GradSink& g) {
                       g.add(0, mul(dy, affine(pow(t, p - 1.0), p, 0.0)));
                     });
}

}  // namespace seqgrad
