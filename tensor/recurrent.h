// Fused kernels for recurrent cells: one pass over the gate pre-activations instead of a dozen
// elementwise ops (and their temporaries) per time step.
//
// Shape legend: B batch, H hidden size. LSTM gates come in PyTorch's order, four blocks of H
// columns: input i, forget f, cell candidate g, output o.
#pragma once

#include "tensor/tensor.h"

namespace seqgrad {

struct LstmCellOutput {
  Tensor hc;      // [B,2H]: the new hidden state h in columns [0,H), the new cell c in [H,2H)
  Tensor act;     // [B,4H]: sigmoid(i), sigmoid(f), tanh(g), sigmoid(o), kept for the backward
  Tensor tanh_c;  // [B,H]: tanh(c), kept for the backward
};

// gates [B,4H] (pre-activations), c_prev [B,H]:
//   c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g);  h = sigmoid(o) * tanh(c)
// ShapeError names the op and both shapes when they do not fit.
LstmCellOutput lstm_cell(const Tensor& gates, const Tensor& c_prev);

struct LstmCellGrads {
  Tensor gates;   // [B,4H]
  Tensor c_prev;  // [B,H]
};

// From the forward's act, tanh_c and c_prev, and the upstream gradient dhc [B,2H] (dh, dc):
//   dc' = dc + dh * o * (1 - tanh(c)^2)
//   d_i = dc' * g * i(1-i), d_f = dc' * c_prev * f(1-f), d_g = dc' * i * (1-g^2),
//   d_o = dh * tanh(c) * o(1-o), d_c_prev = dc' * f
LstmCellGrads lstm_cell_backward(const Tensor& act, const Tensor& tanh_c, const Tensor& c_prev,
                                 const Tensor& dhc);

}  // namespace seqgrad
