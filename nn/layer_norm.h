// LayerNorm over the last axis (Ba et al. 2016): y = (x - mean) / sqrt(var + eps) * gamma + beta,
// with the biased variance, as PyTorch. Parameters "weight" (ones) and "bias" (zeros), [H].
#pragma once

#include "nn/module.h"

namespace seqgrad {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(std::int64_t size, double eps = 1e-5, bool affine = true,
                     DType dtype = DType::f32);
  Variable forward(const Variable& x) const;
  Variable operator()(const Variable& x) const { return forward(x); }

  Variable weight, bias;

 private:
  std::int64_t size_;
  double eps_;
};

}  // namespace seqgrad
