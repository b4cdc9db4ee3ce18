// Linear: y = x W^T + b over the last axis, with PyTorch's layout (weight [out, in]) and
// default initialisation U(-1/sqrt(in), 1/sqrt(in)).
#pragma once

#include "nn/module.h"
#include "tensor/packed_matmul.h"
#include "tensor/random.h"

namespace seqgrad {

class Linear : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool with_bias = true,
         Generator& gen = default_generator(), DType dtype = DType::f32);
  // x [..., in] -> [..., out]
  Variable forward(const Variable& x) const;
  Variable operator()(const Variable& x) const { return forward(x); }
  // The weight packed for many products while it does not change (tensor/packed_matmul.h): W^T
  // for the forward and, under autograd, W for the backward. A decoder makes one per batch for
  // a layer it applies at every step, whose few rows then skip gemm's copy of the weight.
  struct Packed {
    PackedMatrix w_t, w;
  };
  Packed packed() const;
  // x [B, in] -> [B, out] through `packed` (made after the weight's last change): forward's
  // values, computed faster for a few rows.
  Variable forward(const Variable& x, const Packed& packed) const;

  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  Variable weight;  // [out, in]
  Variable bias;    // [out], undefined without bias

 private:
  std::int64_t in_, out_;
};

}  // namespace seqgrad
