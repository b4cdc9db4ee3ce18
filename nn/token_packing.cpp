#include "nn/token_packing.h"

#include <fmt/format.h>

#include <vector>

namespace seqgrad {

TokenPacking TokenPacking::from_padding(const Tensor& key_padding_mask) {
  const Tensor& m = key_padding_mask;
  if (!m.defined() || m.dim() != 2 || m.dtype() != DType::boolean) {
    throw ShapeError(fmt::format("TokenPacking: the padding mask {} must be bool [B,T]",
                                 m.defined() ? shape_str(m.shape()) : "(undefined)"));
  }
  TokenPacking p;
  p.batch_ = m.size(0);
  p.length_ = m.size(1);
  const Tensor dense = m.contiguous();
  const auto* pad = static_cast<const std::uint8_t*>(dense.raw_data());
  const std::int64_t positions = p.batch_ * p.length_;
  std::vector<std::int64_t> rows, slots(static_cast<std::size_t>(positions));
  for (std::int64_t i = 0; i < positions; ++i) {
    if (pad[i] == 0) rows.push_back(i);
  }
  p.tokens_ = static_cast<std::int64_t>(rows.size());
  std::int64_t row = 0;
  for (std::int64_t i = 0; i < positions; ++i) {
    slots[static_cast<std::size_t>(i)] = pad[i] == 0 ? row++ : p.tokens_;
  }
  p.rows_ = Tensor::from_vector(rows, {p.tokens_});
  p.slots_ = Tensor::from_vector(slots, {positions});
  return p;
}

Variable TokenPacking::pack(const Variable& x) const {
  if (x.dim() != 3 || x.size(0) != batch_ || x.size(1) != length_) {
    throw ShapeError(fmt::format("TokenPacking::pack: input {} must be [B,T,C] with B = {}, T = {}",
                                 shape_str(x.shape()), batch_, length_));
  }
  const Variable flat = reshape(x, {batch_ * length_, x.size(2)});
  return dense() ? flat : index_select(flat, 0, rows_);
}

Variable TokenPacking::unpack(const Variable& x) const {
  if (x.dim() != 2 || x.size(0) != tokens_) {
    throw ShapeError(fmt::format("TokenPacking::unpack: input {} must be [N,C] with N = {} tokens",
                                 shape_str(x.shape()), tokens_));
  }
  const std::int64_t C = x.size(1);
  if (dense()) return reshape(x, {batch_, length_, C});
  // The padding's slots read an appended zero row, whose gradient goes nowhere.
  const Variable with_zero = concat({x, Variable(Tensor::zeros({1, C}, x.dtype()))}, 0);
  return reshape(index_select(with_zero, 0, slots_), {batch_, length_, C});
}

}  // namespace seqgrad
