// Embedding: a lookup table [V, E] (PyTorch layout, initialised N(0, 1)). With a padding index,
// that row starts at zero and never receives gradient, as in PyTorch.
#pragma once

#include "nn/module.h"
#include "tensor/random.h"

namespace seqgrad {

class Embedding : public Module {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t dim, std::int64_t padding_idx = -1,
            Generator& gen = default_generator(), DType dtype = DType::f32);
  // ids int64 of any shape -> ids.shape + [E]
  Variable forward(const Tensor& ids) const;
  Variable operator()(const Tensor& ids) const { return forward(ids); }

  std::int64_t padding_idx() const { return padding_idx_; }
  Variable weight;  // [V, E]

 private:
  std::int64_t padding_idx_;
};

}  // namespace seqgrad
