// Matrix product. The backward products are written with transposed views, which gemm reads
// as transpose flags, so no operand is copied. A 2-D operand that is itself a transposed view
// (x @ W^T, as Linear and the RNN cells compute it) gets its gradient in that same layout: gemm
// computes dW = dy^T @ x, dense, and the operand's gradient is its transposed view. The
// transpose's backward then hands W a dense gradient, which adds in place with SIMD instead of a
// strided walk over a [K,N] view of an [N,K] buffer.
#include "autograd/ops.h"
#include "tensor/matmul.h"

namespace seqgrad {

namespace {
// The last two axes swapped: a free view.
Tensor mT(const Tensor& t) {
  return t.transpose(-2, -1);
}

// A 2-D view whose columns are dense (strides [1, ld]): the transpose of a dense matrix.
bool column_major(const Tensor& t) {
  return t.dim() == 2 && t.strides()[0] == 1 && t.strides()[1] != 1 && t.size(0) > 1;
}
}  // namespace

// y = a @ b;  da = dy @ b^T, db = a^T @ dy
// NOTE: when one operand is 2-D and the other 3-D, the 2-D one was shared by every batch entry,
// so its gradient is the sum over the batch.
Variable matmul(const Variable& a, const Variable& b) {
  Tensor y = matmul(a.data(), b.data());
  return make_result(std::move(y), Op::matmul, {&a, &b},
                     [ta = a.data(), tb = b.data()](const Tensor& dy, const GradSink& g) {
                       if (g.needs(0)) {
                         if (ta.dim() == 2 && dy.dim() == 3) {
                           // b was 3-D: sum_b dy_b @ b_b^T = [dy_0 .. dy_B] @ [b_0^T; ..; b_B^T]
                           const Tensor dyc = dy.permute({1, 0, 2}).reshape({dy.size(1), -1});
                           const Tensor bc = mT(tb).reshape({-1, ta.size(1)});
                           g.add(0, matmul(dyc, bc));
                         } else if (column_major(ta) && dy.dim() == 2) {
                           g.add(0, mT(matmul(tb, mT(dy))));  // da^T = b @ dy^T
                         } else {
                           g.add(0, matmul(dy, mT(tb)));
                         }
                       }
                       if (g.needs(1)) {
                         if (tb.dim() == 2 && dy.dim() == 3) {
                           // sum_b a_b^T @ dy_b: fold the batch into the rows
                           const Tensor af = ta.reshape({-1, ta.size(-1)});
                           const Tensor dyf = dy.reshape({-1, dy.size(-1)});
                           g.add(1, column_major(tb) ? mT(matmul(mT(dyf), af))  // db^T = dy^T @ a
                                                     : matmul(mT(af), dyf));
                         } else if (column_major(tb) && ta.dim() == 2) {
                           g.add(1, mT(matmul(mT(dy), ta)));  // db^T = dy^T @ a
                         } else {
                           g.add(1, matmul(mT(ta), dy));
                         }
                       }
                     });
}

}  // namespace seqgrad
