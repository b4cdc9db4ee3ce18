// Fused attention scoring: one tape node per decoder step for additive scores, which keeps the
// [B,S,A] tanh off the tape (tensor/attention_kernels.h recomputes it in the backward).
// Shape legend: B batch, S source length, A attention size.
#include <fmt/format.h>

#include "autograd/ops.h"
#include "tensor/attention_kernels.h"

namespace seqgrad {

namespace {
// v as nn::Linear(A, 1) stores it ([1,A]), as a vector ([A]) or as a column ([A,1]).
bool is_vector_of(const Shape& v, std::int64_t A) {
  if (v.size() == 1) return v[0] == A;
  return v.size() == 2 && ((v[0] == 1 && v[1] == A) || (v[0] == A && v[1] == 1));
}

void check_additive(const Variable& uk, const Variable& wq, const Variable& v) {
  const std::string_view op = op_name(Op::additive_scores);
  const bool ranks = uk.dim() == 3 && wq.dim() == 2;
  if (!ranks || uk.size(0) != wq.size(0) || uk.size(2) != wq.size(1) ||
      !is_vector_of(v.shape(), uk.size(2))) {
    throw ShapeError(
        fmt::format("{}: uk {}, wq {}, v {} must be [B,S,A], [B,A] and [A] (or [1,A], [A,1]){}", op,
                    shape_str(uk.shape()), shape_str(wq.shape()), shape_str(v.shape()),
                    ranks ? fmt::format(" (HINT: B {} vs {}, A {} vs {})", uk.size(0), wq.size(0),
                                        uk.size(2), wq.size(1))
                          : ""));
  }
  if (uk.dtype() != wq.dtype() || uk.dtype() != v.dtype() || !is_floating(uk.dtype())) {
    throw DTypeError(fmt::format("{}: uk {}{}, wq {}{}, v {}{} must share one float dtype", op,
                                 dtype_name(uk.dtype()), shape_str(uk.shape()),
                                 dtype_name(wq.dtype()), shape_str(wq.shape()),
                                 dtype_name(v.dtype()), shape_str(v.shape())));
  }
}
}  // namespace

// score[b,s] = v . tanh(uk[b,s,:] + wq[b,:]);  with t = tanh(uk + wq):
// duk = dscore * v * (1 - t^2), dwq = sum_s duk, dv = sum_{b,s} dscore * t
Variable additive_scores(const Variable& uk, const Variable& wq, const Variable& v) {
  check_additive(uk, wq, v);
  // Dense once here; the backward reuses these (for dense inputs, the inputs themselves).
  Tensor tuk = uk.data().contiguous(), twq = wq.data().contiguous(), tv = v.data().contiguous();
  Tensor score = additive_scores_forward(tuk, twq, tv);
  return make_result(std::move(score), Op::additive_scores, {&uk, &wq, &v},
                     [tuk, twq, tv](const Tensor& dscore, const GradSink& g) {
                       AdditiveScoresGrads d = additive_scores_backward(
                           tuk, twq, tv, dscore, g.needs(0), g.needs(1), g.needs(2));
                       if (g.needs(0)) g.add(0, d.uk);
                       if (g.needs(1)) g.add(1, d.wq);
                       if (g.needs(2)) g.add(2, d.v);
                     });
}

}  // namespace seqgrad
