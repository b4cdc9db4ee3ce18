// The one loop every kernel uses to walk strided operands that share a shape. It drops size-1
// axes, merges axes that are contiguous for every operand, then calls a row function on the
// innermost run so the row function can pick a SIMD path when its inner strides allow.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tensor/shape.h"

namespace seqgrad {

// row(offsets, n, inner_strides): operand k's row starts at element offsets[k] (relative to the
// operand's own base pointer) and advances by inner_strides[k] for n elements.
template <std::size_t N, class Row>
void for_each_row(const Shape& shape, const std::array<const Shape*, N>& strides, Row&& row) {
  if (shape_numel(shape) == 0) return;
  Shape sizes;
  std::array<Shape, N> st;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sizes.empty();
    for (std::size_t k = 0; k < N && merge; ++k) {
      merge = st[k].back() == (*strides[k])[d] * shape[d];
    }
    if (merge) {
      sizes.back() *= shape[d];
      for (std::size_t k = 0; k < N; ++k) st[k].back() = (*strides[k])[d];
      continue;
    }
    sizes.push_back(shape[d]);
    for (std::size_t k = 0; k < N; ++k) st[k].push_back((*strides[k])[d]);
  }
  if (sizes.empty()) {  // a one-element tensor
    sizes.push_back(1);
    for (std::size_t k = 0; k < N; ++k) st[k].push_back(0);
  }
  const std::size_t nd = sizes.size();
  const std::int64_t n = sizes.back();
  std::array<std::int64_t, N> inner{};
  for (std::size_t k = 0; k < N; ++k) inner[k] = st[k].back();
  std::array<std::int64_t, N> off{};
  std::vector<std::int64_t> idx(nd, 0);
  const std::int64_t rows = shape_numel(sizes) / n;
  for (std::int64_t r = 0; r < rows; ++r) {
    row(off, n, inner);
    for (std::size_t d = nd - 1; d-- > 0;) {
      ++idx[d];
      for (std::size_t k = 0; k < N; ++k) off[k] += st[k][d];
      if (idx[d] < sizes[d]) break;
      for (std::size_t k = 0; k < N; ++k) off[k] -= st[k][d] * sizes[d];
      idx[d] = 0;
    }
  }
}

}  // namespace seqgrad
