// The tokens of a padded batch as rows: a batch [B,T,C] whose rows hold B sequences of different
// lengths keeps, of its B*T positions, only the N that hold tokens, in order ([N,C]). The
// position-wise layers of a Transformer (projections, feed-forward, norms, residuals) give each
// position's output from that position alone, so they can run on the N rows and skip the padding's
// products; attention, which mixes positions, unpacks to [B,T,C] around itself. This is what
// PyTorch's nested tensors do for TransformerEncoder's inference fast path; here it also holds in
// training, where a padding position's gradient is zero anyway.
// Shape legend: B batch, T length, N tokens (positions not padding), C features.
#pragma once

#include "autograd/ops.h"

namespace seqgrad {

class TokenPacking {
 public:
  TokenPacking() = default;
  // key_padding_mask: bool [B,T], true at padding (PyTorch's convention).
  static TokenPacking from_padding(const Tensor& key_padding_mask);

  std::int64_t batch() const { return batch_; }
  std::int64_t length() const { return length_; }
  std::int64_t tokens() const { return tokens_; }
  const Tensor& rows() const { return rows_; }  // int64 [N]: the flat position b*T + t of each row
  bool dense() const { return tokens_ == batch_ * length_; }  // no padding: pack is a reshape

  // [B,T,C] -> [N,C]
  Variable pack(const Variable& x) const;
  // [N,C] -> [B,T,C], zero at the padding
  Variable unpack(const Variable& x) const;

 private:
  std::int64_t batch_ = 0, length_ = 0, tokens_ = 0;
  Tensor rows_;
  Tensor slots_;  // int64 [B*T]: each position's row, or N (a zero row appended) at padding
};

}  // namespace seqgrad
