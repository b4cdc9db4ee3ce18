// softmax and log_softmax: fused primitives, since composing them from exp/sum/div would lose
// the max-subtraction that keeps them finite and would cost several passes.
#include "autograd/ops.h"
#include "tensor/softmax.h"

namespace seqgrad {

// y_i = e^{x_i} / sum_j e^{x_j};  dx = y * (dy - sum_j dy_j y_j)
Variable softmax(const Variable& x, std::int64_t axis, const Tensor& mask) {
  Tensor y = softmax(x.data(), axis, mask);
  return make_result(y, Op::softmax, {&x}, [y, axis](const Tensor& dy, const GradSink& g) {
    g.add(0, softmax_backward(y, dy, axis));
  });
}

// y_i = x_i - log sum_j e^{x_j};  dx = dy - softmax(x) * sum_j dy_j
Variable log_softmax(const Variable& x, std::int64_t axis, const Tensor& mask) {
  Tensor y = log_softmax(x.data(), axis, mask);
  return make_result(y, Op::log_softmax, {&x},
                     [y, axis, mask](const Tensor& dy, const GradSink& g) {
                       g.add(0, log_softmax_backward(y, dy, axis, mask));
                     });
}

}  // namespace seqgrad
