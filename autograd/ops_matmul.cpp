// Matrix product. The backward products are written with transposed views, which gemm reads
// as transpose flags, so no operand is copied. A 2-D operand that is itself a transposed view
// (x @ W^T, as Linear and the RNN cells compute it) gets its gradient in that same layout: gemm
// computes dW = dy^T @ x, dense, and the operand's gradient is its transposed view. The
// transpose's backward then hands W a dense gradient, which adds in place with SIMD instead of a
// strided walk over a [K,N] view of an [N,K] buffer. A gradient that already holds a share (a
// weight view used at every step of a sequence) takes the next one as a gemm accumulating into
// it (GradSink::add_matmul).
#include <fmt/format.h>

#include "autograd/ops.h"
#include "tensor/matmul.h"
#include "tensor/packed_matmul.h"

namespace seqgrad {

namespace {
// The last two axes swapped: a free view.
Tensor mT(const Tensor& t) {
  return t.transpose(-2, -1);
}
}  // namespace

// y = a @ b;  da = dy @ b^T, db = a^T @ dy
// NOTE: when one operand is 2-D and the other 3-D, the 2-D one was shared by every batch entry,
// so its gradient is the sum over the batch.
Variable matmul(const Variable& a, const Variable& b) {
  Tensor y = matmul(a.data(), b.data());
  return make_result(
      std::move(y), Op::matmul, {&a, &b},
      [ta = a.data(), tb = b.data()](const Tensor& dy, const GradSink& g) {
        if (g.needs(0)) {
          if (ta.dim() == 2 && dy.dim() == 3) {
            // b was 3-D: sum_b dy_b @ b_b^T = [dy_0 .. dy_B] @ [b_0^T; ..; b_B^T]
            const Tensor dyc = dy.permute({1, 0, 2}).reshape({dy.size(1), -1});
            g.add_matmul(0, dyc, mT(tb).reshape({-1, ta.size(1)}));
          } else {
            g.add_matmul(0, dy, mT(tb));
          }
        }
        if (g.needs(1)) {
          if (tb.dim() == 2 && dy.dim() == 3) {
            // sum_b a_b^T @ dy_b: fold the batch into the rows
            g.add_matmul(1, mT(ta.reshape({-1, ta.size(-1)})), dy.reshape({-1, dy.size(-1)}));
          } else {
            g.add_matmul(1, mT(ta), dy);
          }
        }
      });
}

// y = x @ w^T (from w_t);  dx = dy @ w, dw = dy^T @ x
Variable matmul_transposed(const Variable& x, const Variable& w, const PackedMatrix& w_t,
                           const PackedMatrix& w_packed) {
  const bool fits = x.dim() == 2 && w.dim() == 2 && w_t.defined() && x.size(1) == w.size(1) &&
                    w_t.matrix().shape() == Shape{w.size(1), w.size(0)} &&
                    (!w_packed.defined() || w_packed.matrix().shape() == w.shape());
  if (!fits) {
    throw ShapeError(fmt::format(
        "matmul_transposed: x {} @ w {}^T needs x [M,K], w [N,K], w_t [K,N] and w_packed "
        "[N,K] or none; w_t is {}, w_packed {}",
        shape_str(x.shape()), shape_str(w.shape()),
        w_t.defined() ? shape_str(w_t.matrix().shape()) : "undefined",
        w_packed.defined() ? shape_str(w_packed.matrix().shape()) : "none"));
  }
  const DType dt = w.dtype();
  if (x.dtype() != dt || w_t.matrix().dtype() != dt ||
      (w_packed.defined() && w_packed.matrix().dtype() != dt)) {
    throw DTypeError(
        fmt::format("matmul_transposed: x {}, w {}, w_t {} and w_packed {} must share one dtype",
                    dtype_name(x.dtype()), dtype_name(dt), dtype_name(w_t.matrix().dtype()),
                    w_packed.defined() ? dtype_name(w_packed.matrix().dtype()) : "none"));
  }
  Tensor y = matmul(x.data(), w_t);
  return make_result(std::move(y), Op::matmul_transposed, {&x, &w},
                     [tx = x.data(), tw = w.data(), w_packed](const Tensor& dy, const GradSink& g) {
                       if (g.needs(0)) {
                         if (w_packed.defined()) {
                           g.add(0, matmul(dy, w_packed));
                         } else {
                           g.add_matmul(0, dy, tw);
                         }
                       }
                       if (g.needs(1)) g.add_matmul(1, mT(dy), tx);
                     });
}

}  // namespace seqgrad
