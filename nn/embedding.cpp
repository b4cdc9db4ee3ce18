#include "nn/embedding.h"

#include <fmt/format.h>

#include "autograd/ops.h"

namespace seqgrad {

Embedding::Embedding(std::int64_t num_embeddings, std::int64_t dim, std::int64_t padding_idx,
                     Generator& gen, DType dtype)
    : padding_idx_(padding_idx) {
  if (num_embeddings <= 0 || dim <= 0) {
    throw ValueError(
        fmt::format("Embedding: sizes must be positive, got {} x {}", num_embeddings, dim));
  }
  if (padding_idx >= num_embeddings || padding_idx < -1) {
    throw IndexError(
        fmt::format("Embedding: padding index {} is outside [0, {})", padding_idx, num_embeddings));
  }
  Tensor w = normal({num_embeddings, dim}, 0.0, 1.0, dtype, gen);
  if (padding_idx >= 0) w.select(0, padding_idx).fill_(0.0);
  weight = register_parameter("weight", std::move(w));
}

Variable Embedding::forward(const Tensor& ids) const {
  return embedding(weight, ids, padding_idx_);
}

}  // namespace seqgrad
