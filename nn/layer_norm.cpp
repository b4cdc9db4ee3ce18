#include "nn/layer_norm.h"

#include <fmt/format.h>

#include "autograd/ops.h"

namespace seqgrad {

LayerNorm::LayerNorm(std::int64_t size, double eps, bool affine, DType dtype)
    : size_(size), eps_(eps) {
  if (size <= 0) throw ValueError(fmt::format("LayerNorm: size must be positive, got {}", size));
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({size}, dtype));
    bias = register_parameter("bias", Tensor::zeros({size}, dtype));
  }
}

// Composite: the backward comes from the primitives (gradchecked as a layer in the tests).
Variable LayerNorm::forward(const Variable& x) const {
  if (x.dim() < 1 || x.size(-1) != size_) {
    throw ShapeError(fmt::format("LayerNorm: input {} must end in the normalised size {}",
                                 shape_str(x.shape()), size_));
  }
  const Variable centered = x - mean(x, {-1}, true);
  const Variable var = mean(centered * centered, {-1}, true);
  Variable y = centered * pow(var + eps_, -0.5);
  if (weight.defined()) y = y * weight + bias;
  return y;
}

}  // namespace seqgrad
