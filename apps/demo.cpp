// seqgrad_demo: the smallest end-to-end use of the autograd. A two-layer MLP learns to tell
// apart three interleaved spirals (300 points in the plane), trained with plain gradient
// descent written out by hand; it prints the loss falling and the final accuracy.
// (Shape legend: N points, D=2 inputs, H hidden units, C=3 classes.)
#include <fmt/format.h>

#include <cmath>
#include <numbers>

#include "autograd/autograd.h"

using namespace seqgrad;

namespace {

constexpr std::int64_t kPerClass = 100, kClasses = 3, kHidden = 64;

// Three spiral arms with a little noise: x [N,2] float32, labels [N] int64.
std::pair<Tensor, Tensor> spirals(Generator& gen) {
  const std::int64_t n = kPerClass * kClasses;
  Tensor x = Tensor::empty({n, 2}, DType::f32);
  Tensor y = Tensor::empty({n}, DType::i64);
  float* px = x.data<float>();
  auto* py = y.data<std::int64_t>();
  for (std::int64_t c = 0; c < kClasses; ++c) {
    for (std::int64_t i = 0; i < kPerClass; ++i) {
      const double r = static_cast<double>(i) / kPerClass;
      const double t = 4.0 * c + 4.0 * r + 0.2 * gen.next_normal();
      const std::int64_t row = c * kPerClass + i;
      px[2 * row] = static_cast<float>(r * std::sin(t));
      px[2 * row + 1] = static_cast<float>(r * std::cos(t));
      py[row] = c;
    }
  }
  return {x, y};
}

}  // namespace

int main() {
  Generator gen(7);
  auto [x_data, labels] = spirals(gen);
  const Variable x(x_data);
  // Parameters, initialised like PyTorch's Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  auto init = [&](Shape s, std::int64_t fan_in) {
    const double b = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return Variable(uniform(s, -b, b, DType::f32, gen), true);
  };
  std::vector<Variable> params = {init({2, kHidden}, 2), init({kHidden}, 2),
                                  init({kHidden, kClasses}, kHidden), init({kClasses}, kHidden)};
  const Tensor targets = labels.reshape({-1, 1});
  const double lr = 1.0;
  fmt::print(
      "seqgrad demo: 2-layer MLP (2 -> {} -> 3, tanh) on 3 spirals, {} points, gradient "
      "descent lr {}\n",
      kHidden, x_data.size(0), lr);
  double loss_value = 0;
  for (int step = 0; step <= 2000; ++step) {
    const Variable h = tanh(matmul(x, params[0]) + params[1]);
    const Variable logits = matmul(h, params[2]) + params[3];
    // cross-entropy: mean over points of -log p(label)
    const Variable loss = -mean(gather(log_softmax(logits, 1), 1, targets));
    for (auto& p : params) p.zero_grad();
    loss.backward();
    {
      NoGradGuard no_grad;
      for (auto& p : params) axpy_(p.data(), -lr, p.grad());
    }
    loss_value = loss.item();
    if (step % 200 == 0) {
      const Tensor pred = argmax(logits.data(), 1);
      const double acc =
          sum(eq(pred, labels).astype(DType::f32)).item() / static_cast<double>(pred.numel());
      fmt::print("step {:5d}  loss {:.4f}  accuracy {:5.1f}%\n", step, loss_value, 100 * acc);
    }
  }
  return loss_value < 0.5 ? 0 : 1;
}
