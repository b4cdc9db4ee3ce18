// Fused kernels for recurrent cells: one pass over the gate pre-activations instead of a dozen
// elementwise ops (and their temporaries) per time step.
//
// Shape legend: B batch, T time, I input size, H hidden size. LSTM gates come in PyTorch's order,
// four blocks of H columns: input i, forget f, cell candidate g, output o. GRU gates likewise,
// three blocks: reset r, update z, candidate n.
#pragma once

#include <vector>

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

// --- a whole LSTM layer in one direction (the encoder's path) ---
// What the backward needs, all time-major so that every time step is one dense [B,*] slab and
// all T*B rows together are one dense matrix for the weight-gradient GEMMs.
struct LstmLayerSaved {
  Tensor act;     // [T,B,4H]: sigmoid(i), sigmoid(f), tanh(g), sigmoid(o) at time t (stale
                  // pre-activations in rows past a sequence's length)
  Tensor h;       // [T+1,B,H]: the states h; see lstm_layer_forward for the slot order
  Tensor c;       // [T+1,B,H]: the states c, same slots
  Tensor tanh_c;  // [T,B,H]: tanh(c) after time t
};

struct LstmLayerOutput {
  Tensor y;  // [B,T+2,H]: outputs at rows 0..T-1 (zero past each length), final h, final c
  LstmLayerSaved saved;
};

// x [B,T,I], h0 and c0 [B,H], w_ih [4H,I], w_hh [4H,H], b_ih and b_hh [4H] or undefined;
// lengths: B values in [0,T], or empty for all T. Time runs 0..T-1, or T-1..0 when reverse;
// row b is active at time t iff t < lengths[b], and an inactive row keeps its state:
//   gates_t = x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T, then the cell of lstm_cell.
// Slots of saved.h / saved.c: going forward, slot t holds the state before time t and slot t+1
// the state after it; in reverse, slot t+1 before and slot t after. Slot 0 (forward) or T
// (reverse) holds h0 / c0, so the T states before each time are slots [0,T) or [1,T+1).
// ShapeError / DTypeError name the op and every shape.
LstmLayerOutput lstm_layer_forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                   const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                   const Tensor& b_hh, const std::vector<std::int64_t>& lengths,
                                   bool reverse);

struct LstmLayerNeeds {
  bool x = true, w_ih = true, w_hh = true, b = true;
};
struct LstmLayerGrads {
  Tensor x;     // [B,T,I] (a transposed view of time-major rows), if needs.x
  Tensor h0;    // [B,H]
  Tensor c0;    // [B,H]
  Tensor w_ih;  // [4H,I], if needs.w_ih
  Tensor w_hh;  // [4H,H], if needs.w_hh
  Tensor b;     // [4H]: the gradient of b_ih and of b_hh alike, if needs.b
};

// Backpropagation through time from dy [B,T+2,H] (the gradient of lstm_layer_forward's y):
//   dgates_t from the cell backward, dh_{t-1} = dgates_t W_hh; then over all T*B rows at once
//   dW_hh = dgates^T h_prev, dW_ih = dgates^T x, dx = dgates W_ih, db = column sums of dgates.
LstmLayerGrads lstm_layer_backward(const LstmLayerSaved& saved, const Tensor& x, const Tensor& w_ih,
                                   const Tensor& w_hh, const std::vector<std::int64_t>& lengths,
                                   bool reverse, const Tensor& dy, const LstmLayerNeeds& needs);

// --- GRU cell ---
struct GruCellOutput {
  Tensor h;    // [B,H]: the new hidden state
  Tensor act;  // [B,3H]: r, z, n, kept for the backward
};

// xp [B,3H] (x W_ih^T + b_ih), hp [B,3H] (h_prev W_hh^T + b_hh), h_prev [B,H]:
//   r = sigmoid(xp_r + hp_r), z = sigmoid(xp_z + hp_z), n = tanh(xp_n + r * hp_n),
//   h = n + z * (h_prev - n)
// The hidden projection stays apart from xp because r multiplies its n block only.
// ShapeError names the op and every shape when they do not fit.
GruCellOutput gru_cell(const Tensor& xp, const Tensor& hp, const Tensor& h_prev);

struct GruCellGrads {
  Tensor xp;      // [B,3H]
  Tensor hp;      // [B,3H]: equal to xp's in the r and z blocks
  Tensor h_prev;  // [B,H]
};

// From the forward's act, hp and h_prev, and the upstream gradient dh [B,H]:
//   dn = dh (1 - z), dz = dh (h_prev - n), dh_prev = dh z,
//   d_n = dn (1 - n^2): dxp_n = d_n, dhp_n = d_n r;  dr = d_n hp_n,
//   dxp_r = dhp_r = dr r(1-r),  dxp_z = dhp_z = dz z(1-z)
GruCellGrads gru_cell_backward(const Tensor& act, const Tensor& hp, const Tensor& h_prev,
                               const Tensor& dh);

}  // namespace seqgrad
