// Products with a right-hand matrix that stays the same over many calls: a recurrent layer
// multiplies its state by W_hh^T at every time step, and its backward multiplies by W_hh at
// every step again. OpenBLAS copies (packs) both operands of every sgemm call into its kernel's
// layout; for a batch of 32 rows and a 256 x 1024 weight that copy of the weight costs about
// 40% of the product (a profile of a batch-32 G2P step had 18% of its time in it). A
// PackedMatrix makes that copy once, and its products with a few rows run on our own SIMD
// kernel over the copy, skipping OpenBLAS's.
//
// Shapes: a [M,K] @ b [K,N] -> [M,N]. float32 only gets the packed copy (float64, the
// gradcheck's dtype, and products of many rows go to gemm through tensor/matmul.h), so every
// caller may use a PackedMatrix whatever the dtype and the batch.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace seqgrad {

class PackedMatrix {
 public:
  PackedMatrix() = default;
  // b: a 2-D float matrix [K,N], any strides (a transposed view is fine); kept as it is for
  // the products that go to gemm, and copied into column panels when float32. Holding a
  // PackedMatrix does not follow later writes into b: pack again after the values change.
  explicit PackedMatrix(const Tensor& b);

  bool defined() const { return b_.defined(); }
  const Tensor& matrix() const { return b_; }
  bool packed() const { return panels_.defined(); }
  // Products with at most this many rows use the packed kernel; more rows go to gemm, which
  // packs the left operand too and then runs faster than this kernel.
  static constexpr std::int64_t kMaxPackedRows = 96;

 private:
  friend void matmul_into(const Tensor& a, const PackedMatrix& b, Tensor& out, double beta);
  Tensor b_;
  Tensor panels_;  // float32 [N/NR rounded up, K, NR]: panel p holds columns [p*NR, p*NR + NR)
};

// out = a @ b + beta * out (beta 0: out is only written), with out dense [M,N] of a's dtype
// and a [M,K] of b's dtype. Errors name both shapes, as matmul's do.
void matmul_into(const Tensor& a, const PackedMatrix& b, Tensor& out, double beta);
// a @ b as a new tensor.
Tensor matmul(const Tensor& a, const PackedMatrix& b);

}  // namespace seqgrad
