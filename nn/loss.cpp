#include "nn/loss.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "tensor/elementwise.h"

namespace seqgrad {

Variable cross_entropy(const Variable& logits, const Tensor& targets,
                       const CrossEntropyOptions& options) {
  if (logits.dim() != 2 || !targets.defined() || targets.dim() != 1 ||
      targets.size(0) != logits.size(0)) {
    throw ShapeError(fmt::format("cross_entropy: logits {} must be [N,C] and targets {} [N]",
                                 shape_str(logits.shape()),
                                 targets.defined() ? shape_str(targets.shape()) : "undefined"));
  }
  if (targets.dtype() != DType::i64) {
    throw DTypeError(
        fmt::format("cross_entropy: targets must be int64, got {}", dtype_name(targets.dtype())));
  }
  if (!(options.label_smoothing >= 0 && options.label_smoothing <= 1)) {
    throw ValueError(fmt::format("cross_entropy: label_smoothing {} is outside [0, 1]",
                                 options.label_smoothing));
  }
  const std::int64_t C = logits.size(1);
  // Ignored targets are looked up at class 0 and then weighted by 0.
  const Tensor ignored =
      eq(targets, Tensor::scalar(static_cast<double>(options.ignore_index), DType::i64));
  for (auto t : where(ignored, Tensor::scalar(0, DType::i64), targets).to_vector<std::int64_t>()) {
    if (t < 0 || t >= C) {
      throw IndexError(fmt::format("cross_entropy: target {} is outside [0, {}) (ignore_index {})",
                                   t, C, options.ignore_index));
    }
  }
  const Tensor safe = where(ignored, Tensor::scalar(0, DType::i64), targets);
  const Tensor weight = logical_not(ignored).astype(logits.dtype());  // [N]

  const Variable logp = log_softmax(logits, 1);
  Variable per = -reshape(gather(logp, 1, safe.reshape({-1, 1})), {-1});  // [N]
  if (options.label_smoothing > 0) {
    const double eps = options.label_smoothing;
    per = per * (1.0 - eps) - mean(logp, {1}) * eps;
  }
  per = per * Variable(weight);
  switch (options.reduction) {
    case Reduction::none:
      return per;
    case Reduction::sum:
      return sum(per);
    case Reduction::mean:
      break;
  }
  const double count = sum(weight).item();
  // All targets ignored: PyTorch returns NaN; we return 0 with zero gradient, which keeps a
  // training loop finite on an all-padding batch.
  return sum(per) * (count > 0 ? 1.0 / count : 0.0);
}

}  // namespace seqgrad
