// Cross-entropy as one fused primitive: composed from log_softmax, gather, mean and products it
// kept several [N,V] tensors on the tape; this node keeps the logits (already there, as their
// producer's output) and two numbers per row, and the backward recomputes softmax from them.
// Shape legend: N rows (tokens), V classes.
#include <fmt/format.h>

#include "autograd/ops.h"
#include "tensor/cross_entropy.h"
#include "tensor/elementwise.h"

namespace seqgrad {

namespace {
void check_cross_entropy(const Variable& logits, const Tensor& targets, std::int64_t ignore_index,
                         double label_smoothing) {
  const std::string_view op = op_name(Op::cross_entropy);
  if (logits.dim() != 2 || !targets.defined() || targets.dim() != 1 ||
      targets.size(0) != logits.size(0)) {
    throw ShapeError(fmt::format("{}: logits {} must be [N,C] and targets {} [N]", op,
                                 shape_str(logits.shape()),
                                 targets.defined() ? shape_str(targets.shape()) : "undefined"));
  }
  if (!is_floating(logits.dtype())) {
    throw DTypeError(fmt::format("{}: logits must be float32 or float64, got {}{}", op,
                                 dtype_name(logits.dtype()), shape_str(logits.shape())));
  }
  if (targets.dtype() != DType::i64) {
    throw DTypeError(
        fmt::format("{}: targets must be int64, got {}", op, dtype_name(targets.dtype())));
  }
  if (!(label_smoothing >= 0 && label_smoothing <= 1)) {
    throw ValueError(fmt::format("{}: label_smoothing {} is outside [0, 1]", op, label_smoothing));
  }
  const std::int64_t C = logits.size(1);
  for (const std::int64_t t : targets.to_vector<std::int64_t>()) {
    if (t != ignore_index && (t < 0 || t >= C)) {
      throw IndexError(fmt::format("{}: target {} is outside [0, {}) (ignore_index {})", op, t, C,
                                   ignore_index));
    }
  }
}
}  // namespace

// clang-format off
// loss_n = w_n [(1 - eps)(-log p_n[t_n]) - eps mean_j log p_n[j]], w_n = [t_n != ignore_index]
// y = loss (none), sum_n loss_n (sum) or sum_n loss_n / sum_n w_n (mean; 0 if every w_n is 0)
// dx[n,j] = dy_n * scale * w_n (softmax_n[j] - (1 - eps)[j == t_n] - eps / V), scale 1 or 1/sum w
// clang-format on
Variable cross_entropy(const Variable& logits, const Tensor& targets, std::int64_t ignore_index,
                       double label_smoothing, Reduction reduction) {
  check_cross_entropy(logits, targets, ignore_index, label_smoothing);
  Tensor x = logits.data().contiguous(), t = targets.contiguous();
  CrossEntropyRows rows = cross_entropy_forward(x, t, ignore_index, label_smoothing);
  double scale = 1.0;
  Tensor y;
  switch (reduction) {
    case Reduction::none:
      y = rows.loss;
      break;
    case Reduction::sum:
      y = sum(rows.loss);
      break;
    case Reduction::mean:
      // All targets ignored: PyTorch returns NaN; we return 0 with zero gradient, which keeps a
      // training loop finite on an all-padding batch.
      scale = rows.count > 0 ? 1.0 / static_cast<double>(rows.count) : 0.0;
      y = affine(sum(rows.loss), scale, 0.0);
      break;
  }
  return make_result(std::move(y), Op::cross_entropy, {&logits},
                     [x, t, max = std::move(rows.max), logsum = std::move(rows.logsum), scale,
                      ignore_index, label_smoothing](const Tensor& dy, const GradSink& g) {
                       g.add(0, cross_entropy_backward(x, t, max, logsum, dy, scale, ignore_index,
                                                       label_smoothing));
                     });
}

}  // namespace seqgrad
