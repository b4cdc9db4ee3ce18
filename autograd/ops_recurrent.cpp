// Fused recurrent ops with the backward of tensor/recurrent.h: one tape node per LSTM step
// (lstm_cell, the decoder's path) or per LSTM layer and direction over a whole sequence
// (lstm_layer, the encoder's path), and one per GRU step (gru_cell), instead of a dozen per step.
#include <limits>

#include "autograd/ops.h"
#include "tensor/recurrent.h"

namespace seqgrad {

// hc = [h | c], c = sigmoid(f) c_prev + sigmoid(i) tanh(g), h = sigmoid(o) tanh(c);
// dgates, dc_prev as lstm_cell_backward
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

// y = [h_t for each t | h_T | c_T] of the cell above run over x with h0, c0 (gates_t =
// x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh); dx, dh0, dc0, dW_ih, dW_hh, db_ih = db_hh by
// backpropagation through time (lstm_layer_backward)
Variable lstm_layer(const Variable& x, const Variable& h0, const Variable& c0, const Variable& w_ih,
                    const Variable& w_hh, const Variable& b_ih, const Variable& b_hh,
                    const std::vector<std::int64_t>& lengths, bool reverse) {
  LstmLayerOutput out =
      lstm_layer_forward(x.data(), h0.data(), c0.data(), w_ih.data(), w_hh.data(),
                         b_ih.defined() ? b_ih.data() : Tensor(),
                         b_hh.defined() ? b_hh.data() : Tensor(), lengths, reverse);
  // An absent bias is no input at all: the tape holds only defined values.
  constexpr std::size_t kAbsent = std::numeric_limits<std::size_t>::max();
  std::vector<Variable> inputs{x, h0, c0, w_ih, w_hh};
  std::size_t at_b_ih = kAbsent, at_b_hh = kAbsent;
  if (b_ih.defined()) at_b_ih = inputs.size(), inputs.push_back(b_ih);
  if (b_hh.defined()) at_b_hh = inputs.size(), inputs.push_back(b_hh);
  return make_result(
      std::move(out.y), Op::lstm_layer, inputs,
      [saved = std::move(out.saved), xd = x.data(), wih = w_ih.data(), whh = w_hh.data(), lengths,
       reverse, at_b_ih, at_b_hh](const Tensor& dy, const GradSink& g) {
        const bool need_b_ih = at_b_ih != kAbsent && g.needs(at_b_ih);
        const bool need_b_hh = at_b_hh != kAbsent && g.needs(at_b_hh);
        const LstmLayerGrads d = lstm_layer_backward(
            saved, xd, wih, whh, lengths, reverse, dy,
            {.x = g.needs(0), .w_ih = g.needs(3), .w_hh = g.needs(4), .b = need_b_ih || need_b_hh});
        if (g.needs(0)) g.add(0, d.x);
        if (g.needs(1)) g.add(1, d.h0);
        if (g.needs(2)) g.add(2, d.c0);
        if (g.needs(3)) g.add(3, d.w_ih);
        if (g.needs(4)) g.add(4, d.w_hh);
        if (need_b_ih) g.add(at_b_ih, d.b);
        if (need_b_hh) g.add(at_b_hh, d.b);
      });
}

// h = n + z (h_prev - n), r = sigmoid(xp_r + hp_r), z = sigmoid(xp_z + hp_z),
// n = tanh(xp_n + r hp_n); dxp, dhp, dh_prev as gru_cell_backward
Variable gru_cell(const Variable& xp, const Variable& hp, const Variable& h_prev) {
  GruCellOutput out = gru_cell(xp.data(), hp.data(), h_prev.data());
  return make_result(std::move(out.h), Op::gru_cell, {&xp, &hp, &h_prev},
                     [act = std::move(out.act), hpd = hp.data(), hd = h_prev.data()](
                         const Tensor& dh, const GradSink& g) {
                       GruCellGrads d = gru_cell_backward(act, hpd, hd, dh);
                       if (g.needs(0)) g.add(0, d.xp);
                       if (g.needs(1)) g.add(1, d.hp);
                       if (g.needs(2)) g.add(2, d.h_prev);
                     });
}

}  // namespace seqgrad
