// PyTorch-convention boolean masks the Transformer tests build (true = not attended).
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace seqgrad::testing {

// bool [B,T], true at t >= lengths[b] (PyTorch's key padding convention)
inline Tensor padding_mask(const std::vector<std::int64_t>& lengths, std::int64_t T) {
  const auto B = static_cast<std::int64_t>(lengths.size());
  Tensor m = Tensor::zeros({B, T}, DType::boolean);
  auto* p = static_cast<std::uint8_t*>(m.raw_data());
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t t = 0; t < T; ++t) p[b * T + t] = t >= lengths[static_cast<std::size_t>(b)];
  }
  return m;
}

// bool [T,T], true above the diagonal (not allowed): PyTorch's square subsequent mask
inline Tensor causal_mask(std::int64_t T) {
  Tensor m = Tensor::zeros({T, T}, DType::boolean);
  auto* p = static_cast<std::uint8_t*>(m.raw_data());
  for (std::int64_t i = 0; i < T; ++i) {
    for (std::int64_t j = 0; j < T; ++j) p[i * T + j] = j > i;
  }
  return m;
}

}  // namespace seqgrad::testing
