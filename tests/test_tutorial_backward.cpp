// docs/attention-backprop.md, checked (see tests/test_tutorial.cpp): the backward formulas of
// the attention step and the LSTM cell, each evaluated by hand on random float64 inputs and
// upstream gradients and compared with autograd's gradients.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tutorial_checks.h"

namespace seqgrad {
namespace {

using namespace tutorial;  // NOLINT(google-build-using-namespace): the checks' own helpers

// --- backward ---

TUTORIAL_CHECK(cross_entropy_backward) {
  // loss = -log p_y, p = softmax(logits);  dlogits = dloss (p - onehot(y))
  const std::size_t B = 3, V = 5;
  Generator gen(108);
  const Vec x = randn(gen, B * V), dloss = randn(gen, B);
  const std::vector<std::int64_t> y{4, 0, 2};
  const Variable logits = leaf(x, {B, V});
  const Variable loss =
      cross_entropy(logits, Tensor::from_vector(y, {B}), -1, 0.0, Reduction::none);
  loss.backward(tensor(dloss, {B}));
  Vec want_loss, want_d;
  for (std::size_t b = 0; b < B; ++b) {
    const Vec r = row(x, b, V);
    const double m = *std::max_element(r.begin(), r.end());
    double total = 0;
    for (double v : r) total += std::exp(v - m);
    want_loss.push_back(-(r[static_cast<std::size_t>(y[b])] - m - std::log(total)));
    for (std::size_t k = 0; k < V; ++k) {
      const double p = std::exp(r[k] - m) / total;
      want_d.push_back(dloss[b] * (p - (k == static_cast<std::size_t>(y[b]) ? 1.0 : 0.0)));
    }
  }
  check_close(values(loss), want_loss, "loss");
  check_close(values(logits.grad()), want_d, "dlogits");
}

TUTORIAL_CHECK(luong_output_backward) {
  // do = W_o^T dlogits;  dz = do (1 - o^2);  d[c_t; h_t] = W_c^T dz
  // dW_o = sum dlogits o^T, db_o = sum dlogits, dW_c = sum dz [c_t; h_t]^T, db_c = sum dz
  LuongStep s;
  using L = LuongStep;
  Generator gen(109);
  const Vec dlogits = randn(gen, L::B * L::V);
  Variable a = s.step.weights;
  a.retain_grad();
  s.logits.backward(tensor(dlogits, {L::B, L::V}));
  const Vec o = values(s.step.output), wo = s.param("project.weight"),
            wc = s.param("combine.weight");
  Vec dwo(L::V * L::H, 0.0), dbo(L::V, 0.0), dwc(L::H * (L::C + L::H), 0.0), dbc(L::H, 0.0), da;
  for (std::size_t b = 0; b < L::B; ++b) {
    const Vec dl = row(dlogits, b, L::V), ob = row(o, b, L::H), ch = s.context_and_h(b);
    const Vec d_o = affine_t(wo, dl, L::H);
    Vec dz(L::H);
    for (std::size_t k = 0; k < L::H; ++k) dz[k] = d_o[k] * (1 - ob[k] * ob[k]);
    for (std::size_t r = 0; r < L::V; ++r) {
      dbo[r] += dl[r];
      for (std::size_t k = 0; k < L::H; ++k) dwo[r * L::H + k] += dl[r] * ob[k];
    }
    for (std::size_t r = 0; r < L::H; ++r) {
      dbc[r] += dz[r];
      for (std::size_t k = 0; k < L::C + L::H; ++k) dwc[r * (L::C + L::H) + k] += dz[r] * ch[k];
    }
    // dc_t is the first C entries of W_c^T dz; dL/da_j = dc_t . h_j (context_backward)
    const Vec dch = affine_t(wc, dz, L::C + L::H);
    for (std::size_t j = 0; j < L::S; ++j) {
      double d = 0;
      for (std::size_t k = 0; k < L::C; ++k) d += dch[k] * s.states[(b * L::S + j) * L::C + k];
      da.push_back(d);
    }
  }
  check_close(values(s.decoder.parameter("project.weight").grad()), dwo, "dW_o");
  check_close(values(s.decoder.parameter("project.bias").grad()), dbo, "db_o");
  check_close(values(s.decoder.parameter("combine.weight").grad()), dwc, "dW_c");
  check_close(values(s.decoder.parameter("combine.bias").grad()), dbc, "db_c");
  check_close(values(a.grad()), da, "dL/da (through dc_t)");
}

TUTORIAL_CHECK(context_backward) {
  // dL/da_j = dL/dc . h_j;  dL/dh_j = a_j dL/dc
  const std::size_t B = 2, S = 4, H = 3;
  Generator gen(110);
  Attention attention(make_scorer("dot", scorer_config(H, H, 0, gen)));
  const Vec hs = randn(gen, B * S * H), dc = randn(gen, B * H);
  // The states the context sums are their own leaf here; the scorer reads a separate copy, so
  // the gradient reaching them is the context sum's alone.
  const Variable values_leaf = leaf(hs, {B, S, H});
  AttentionMemory m =
      attention.memory(Variable(tensor(randn(gen, B * S * H), {B, S, H})), length_mask({4, 3}, S));
  m.values = values_leaf;
  AttentionResult r = attention.attend(leaf(randn(gen, B * H), {B, H}), m);
  r.weights.retain_grad();
  r.context.backward(tensor(dc, {B, H}));
  const Vec a = values(r.weights);
  Vec da(B * S, 0.0), dh(B * S * H);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      for (std::size_t h = 0; h < H; ++h) {
        da[b * S + j] += dc[b * H + h] * hs[(b * S + j) * H + h];
        dh[(b * S + j) * H + h] = a[b * S + j] * dc[b * H + h];
      }
    }
  }
  check_close(values(r.weights.grad()), da, "dL/da");
  check_close(values(values_leaf.grad()), dh, "dL/dh");
}

TUTORIAL_CHECK(softmax_backward) {
  // dL/de_j = a_j (dL/da_j - sum_k a_k dL/da_k)
  const std::size_t B = 3, S = 5;
  Generator gen(111);
  const Vec e = randn(gen, B * S), da = randn(gen, B * S);
  const Variable scores = leaf(e, {B, S});
  const Variable a = softmax(scores, 1, length_mask({5, 4, 2}, S));
  a.backward(tensor(da, {B, S}));
  const Vec w = values(a);
  Vec want(B * S);
  for (std::size_t b = 0; b < B; ++b) {
    double dot = 0;
    for (std::size_t k = 0; k < S; ++k) dot += w[b * S + k] * da[b * S + k];
    for (std::size_t j = 0; j < S; ++j) want[b * S + j] = w[b * S + j] * (da[b * S + j] - dot);
  }
  check_close(values(scores.grad()), want, "dL/de");
}

TUTORIAL_CHECK(dot_backward) {
  // dq = sum_j de_j k_j;  dk_j = de_j q
  const std::size_t B = 2, S = 4, H = 3;
  Generator gen(112);
  const auto scorer = make_scorer("dot", scorer_config(H, H, 0, gen));
  const Vec q = randn(gen, B * H), k = randn(gen, B * S * H), de = randn(gen, B * S);
  const Variable vq = leaf(q, {B, H}), vk = leaf(k, {B, S, H});
  scorer->score(vq, scorer->prepare(vk)).backward(tensor(de, {B, S}));
  Vec dq(B * H, 0.0), dk(B * S * H);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      for (std::size_t h = 0; h < H; ++h) {
        dq[b * H + h] += de[b * S + j] * k[(b * S + j) * H + h];
        dk[(b * S + j) * H + h] = de[b * S + j] * q[b * H + h];
      }
    }
  }
  check_close(values(vq.grad()), dq, "dq");
  check_close(values(vk.grad()), dk, "dk");
}

TUTORIAL_CHECK(general_backward) {
  // dq = sum_j de_j W k_j;  dk_j = de_j W^T q;  dW = sum_j de_j q k_j^T
  const std::size_t B = 2, S = 4, Hq = 3, Hk = 5;
  Generator gen(113);
  const auto scorer = make_scorer("general", scorer_config(Hq, Hk, 0, gen));
  const Vec w = values(scorer->parameter("W.weight"));
  const Vec q = randn(gen, B * Hq), k = randn(gen, B * S * Hk), de = randn(gen, B * S);
  const Variable vq = leaf(q, {B, Hq}), vk = leaf(k, {B, S, Hk});
  scorer->score(vq, scorer->prepare(vk)).backward(tensor(de, {B, S}));
  Vec dq, dk, dw(Hq * Hk, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    Vec dqb(Hq, 0.0);
    const Vec qb = row(q, b, Hq);
    for (std::size_t j = 0; j < S; ++j) {
      const double d = de[b * S + j];
      const Vec kj = row(k, b * S + j, Hk);
      const Vec wk = affine(w, kj, {}, Hq), wtq = affine_t(w, qb, Hk);
      for (std::size_t r = 0; r < Hq; ++r) dqb[r] += d * wk[r];
      for (std::size_t c = 0; c < Hk; ++c) dk.push_back(d * wtq[c]);
      for (std::size_t r = 0; r < Hq; ++r) {
        for (std::size_t c = 0; c < Hk; ++c) dw[r * Hk + c] += d * qb[r] * kj[c];
      }
    }
    append(dq, dqb);
  }
  check_close(values(vq.grad()), dq, "dq");
  check_close(values(vk.grad()), dk, "dk");
  check_close(values(scorer->parameter("W.weight").grad()), dw, "dW");
}

TUTORIAL_CHECK(concat_backward) {
  // t_j = tanh(W q + U k_j + b);  dz_j = de_j v (1 - t_j^2)
  // dv = sum_j de_j t_j;  dq = W^T sum_j dz_j;  dk_j = U^T dz_j
  // dW = sum_j dz_j q^T;  dU = sum_j dz_j k_j^T;  db = sum_j dz_j
  const std::size_t B = 2, S = 4, Hq = 3, Hk = 5, A = 6;
  Generator gen(114);
  const auto scorer = make_scorer("concat", scorer_config(Hq, Hk, A, gen));
  const Concat p(*scorer);
  const Vec q = randn(gen, B * Hq), k = randn(gen, B * S * Hk), de = randn(gen, B * S);
  const Variable vq = leaf(q, {B, Hq}), vk = leaf(k, {B, S, Hk});
  scorer->score(vq, scorer->prepare(vk)).backward(tensor(de, {B, S}));
  Vec dq, dk, dv(A, 0.0), dw(A * Hq, 0.0), du(A * Hk, 0.0), db(A, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    const Vec qb = row(q, b, Hq);
    Vec dz_sum(A, 0.0);
    for (std::size_t j = 0; j < S; ++j) {
      const Vec kj = row(k, b * S + j, Hk), t = p.t(qb, kj);
      const double d = de[b * S + j];
      Vec dz(A);
      for (std::size_t a = 0; a < A; ++a) {
        dz[a] = d * p.v[a] * (1 - t[a] * t[a]);
        dv[a] += d * t[a];
        dz_sum[a] += dz[a];
        db[a] += dz[a];
        for (std::size_t c = 0; c < Hq; ++c) dw[a * Hq + c] += dz[a] * qb[c];
        for (std::size_t c = 0; c < Hk; ++c) du[a * Hk + c] += dz[a] * kj[c];
      }
      append(dk, affine_t(p.u, dz, Hk));
    }
    append(dq, affine_t(p.w, dz_sum, Hq));
  }
  check_close(values(vq.grad()), dq, "dq");
  check_close(values(vk.grad()), dk, "dk");
  check_close(values(scorer->parameter("v.weight").grad()), dv, "dv");
  check_close(values(scorer->parameter("W.weight").grad()), dw, "dW");
  check_close(values(scorer->parameter("U.weight").grad()), du, "dU");
  check_close(values(scorer->parameter("U.bias").grad()), db, "db");
}

// --- the LSTM cell ---

RNN make_lstm(std::int64_t in, std::int64_t hidden, Generator& gen) {
  return RNN({.cell = CellType::lstm, .input_size = in, .hidden_size = hidden, .dtype = DType::f64},
             gen);
}

TUTORIAL_CHECK(lstm_cell_forward) {
  // z = W_ih x + b_ih + W_hh h + b_hh = [z_i; z_f; z_g; z_o]   (PyTorch's order)
  // i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g), o = sigmoid(z_o)
  // c' = f c + i g;  h' = o tanh(c')
  const std::size_t B = 2, I = 3, H = 4;
  Generator gen(115);
  const RNN rnn = make_lstm(I, H, gen);
  const Vec x = randn(gen, B * I), h = randn(gen, B * H), c = randn(gen, B * H);
  const RNNOutput r = rnn.step(Variable(tensor(x, {B, I})),
                               {Variable(tensor(h, {1, B, H})), Variable(tensor(c, {1, B, H}))});
  Vec want_h, want_c;
  for (std::size_t b = 0; b < B; ++b) {
    const LstmByHand s = lstm_step(rnn, "", row(x, b, I), row(h, b, H), row(c, b, H));
    append(want_h, s.h);
    append(want_c, s.c);
  }
  check_close(values(r.output), want_h, "h'");
  check_close(values(r.state.c), want_c, "c'");
}

// The cell's backward by hand, from the activations: given dh' and dc' (upstream), dz [4H]
// and dc (to c_prev).
struct CellGrads {
  Vec dz, dc_prev;
};
CellGrads lstm_cell_backward_by_hand(const Vec& z, const Vec& c_prev, const Vec& dh,
                                     const Vec& dc_next) {
  const std::size_t H = c_prev.size();
  CellGrads d{Vec(4 * H), Vec(H)};
  for (std::size_t k = 0; k < H; ++k) {
    const double i = sigmoid(z[k]), f = sigmoid(z[H + k]), g = std::tanh(z[2 * H + k]),
                 o = sigmoid(z[3 * H + k]);
    const double t = std::tanh(f * c_prev[k] + i * g);
    const double dc = dc_next[k] + dh[k] * o * (1 - t * t);
    d.dz[k] = dc * g * i * (1 - i);
    d.dz[H + k] = dc * c_prev[k] * f * (1 - f);
    d.dz[2 * H + k] = dc * i * (1 - g * g);
    d.dz[3 * H + k] = dh[k] * t * o * (1 - o);
    d.dc_prev[k] = dc * f;
  }
  return d;
}

TUTORIAL_CHECK(lstm_cell_backward) {
  // dc = dc' + dh' o (1 - tanh^2 c')              (everything that reaches c')
  // dz_i = dc g i (1 - i);  dz_f = dc c f (1 - f);  dz_g = dc i (1 - g^2)
  // dz_o = dh' tanh(c') o (1 - o);  dL/dc = dc f
  const std::size_t B = 3, H = 4;
  Generator gen(116);
  const Vec z = randn(gen, B * 4 * H), cp = randn(gen, B * H), dhc = randn(gen, B * 2 * H);
  const Variable gates = leaf(z, {B, 4 * H}), c_prev = leaf(cp, {B, H});
  lstm_cell(gates, c_prev).backward(tensor(dhc, {B, 2 * H}));  // [dh' | dc'] per row
  Vec dz, dcp;
  for (std::size_t b = 0; b < B; ++b) {
    const Vec d = row(dhc, b, 2 * H);
    const CellGrads g =
        lstm_cell_backward_by_hand(row(z, b, 4 * H), row(cp, b, H), Vec(d.begin(), d.begin() + H),
                                   Vec(d.begin() + H, d.end()));
    append(dz, g.dz);
    append(dcp, g.dc_prev);
  }
  check_close(values(gates.grad()), dz, "dz");
  check_close(values(c_prev.grad()), dcp, "dc_prev");
}

TUTORIAL_CHECK(lstm_input_backward) {
  // dx = W_ih^T dz;  dh = W_hh^T dz
  // dW_ih = sum dz x^T;  dW_hh = sum dz h^T;  db_ih = db_hh = sum dz
  const std::size_t B = 2, I = 3, H = 4;
  Generator gen(117);
  const RNN rnn = make_lstm(I, H, gen);
  const Vec x = randn(gen, B * I), h = randn(gen, B * H), c = randn(gen, B * H);
  const Vec dh_next = randn(gen, B * H), dc_next = randn(gen, B * H);
  const Variable vx = leaf(x, {B, I}), vh = leaf(h, {1, B, H}), vc = leaf(c, {1, B, H});
  const RNNOutput r = rnn.step(vx, {vh, vc});
  // A loss whose gradient is dh_next at h' and dc_next at c'.
  const Variable loss = sum(r.output * Variable(tensor(dh_next, {B, H}))) +
                        sum(r.state.c * Variable(tensor(dc_next, {1, B, H})));
  loss.backward();
  const Vec wih = values(rnn.parameter("weight_ih_l0")),
            whh = values(rnn.parameter("weight_hh_l0"));
  const Vec bih = values(rnn.parameter("bias_ih_l0")), bhh = values(rnn.parameter("bias_hh_l0"));
  Vec dx, dh, dc, dwih(4 * H * I, 0.0), dwhh(4 * H * H, 0.0), db(4 * H, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    const Vec xb = row(x, b, I), hb = row(h, b, H);
    Vec z = affine(wih, xb, bih, 4 * H);
    const Vec zh = affine(whh, hb, bhh, 4 * H);
    for (std::size_t k = 0; k < 4 * H; ++k) z[k] += zh[k];
    const CellGrads g =
        lstm_cell_backward_by_hand(z, row(c, b, H), row(dh_next, b, H), row(dc_next, b, H));
    append(dx, affine_t(wih, g.dz, I));
    append(dh, affine_t(whh, g.dz, H));
    append(dc, g.dc_prev);
    for (std::size_t q = 0; q < 4 * H; ++q) {
      db[q] += g.dz[q];
      for (std::size_t k = 0; k < I; ++k) dwih[q * I + k] += g.dz[q] * xb[k];
      for (std::size_t k = 0; k < H; ++k) dwhh[q * H + k] += g.dz[q] * hb[k];
    }
  }
  check_close(values(vx.grad()), dx, "dx");
  check_close(values(vh.grad()), dh, "dh");
  check_close(values(vc.grad()), dc, "dc");
  check_close(values(rnn.parameter("weight_ih_l0").grad()), dwih, "dW_ih");
  check_close(values(rnn.parameter("weight_hh_l0").grad()), dwhh, "dW_hh");
  check_close(values(rnn.parameter("bias_ih_l0").grad()), db, "db_ih");
  check_close(values(rnn.parameter("bias_hh_l0").grad()), db, "db_hh");
}

}  // namespace
}  // namespace seqgrad
