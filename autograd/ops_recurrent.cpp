// Fused recurrent cells: one tape node per step instead of a dozen, with the backward of
// tensor/recurrent.h.
#include "autograd/ops.h"
#include "tensor/recurrent.h"

namespace seqgrad {

Variable lstm_cell(const Variable& gates, const Variable& c_prev) {
  LstmCellOutput out = lstm_cell(gates.data(), c_prev.data());
  return make_result(std::move(out.hc), Op::lstm_cell, {&gates, &c_prev},
                     [act = std::move(out.act), tanh_c = std::move(out.tanh_c), cp = c_prev.data()](
                         const Tensor& dhc, const GradSink& g) {
                       LstmCellGrads d = lstm_cell_backward(act, tanh_c, cp, dhc);
                       if (g.needs(0)) g.add(0, d.gates);
                       if (g.needs(1)) g.add(1, d.c_prev);
                     });
}

}  // namespace seqgrad
