// Fused recurrent kernels: each row of the batch is walked once, on xsimd batches with a scalar
// tail, by the same templated body: for one LSTM step (lstm_cell) or every step of an LSTM layer
// (lstm_layer, whose GEMMs go through tensor/matmul.h), and for one GRU step (gru_cell).
#include "tensor/recurrent.h"

#include <fmt/format.h>

#include <algorithm>

#include "tensor/matmul.h"
#include "tensor/packed_matmul.h"
#include "tensor/reduce.h"
#include "tensor/simd.h"

namespace seqgrad {

namespace {

using simd::for_each_column;
using simd::get;
using simd::put;

void check_cell(const Tensor& gates, const Tensor& c_prev) {
  const bool ok = gates.dim() == 2 && c_prev.dim() == 2 && gates.size(0) == c_prev.size(0) &&
                  gates.size(1) == 4 * c_prev.size(1) && gates.dtype() == c_prev.dtype();
  if (!ok) {
    throw ShapeError(
        fmt::format("lstm_cell: gates {} and c_prev {} must be [B,4H] and [B,H] of "
                    "one dtype",
                    shape_str(gates.shape()), shape_str(c_prev.shape())));
  }
}

// One row of the cell: gates a [4H] (pre-activations) and c_prev cp [H] give act [4H], h, c and
// tanh(c) [H]. act may be a itself: every lane is read before it is written.
template <class T>
void lstm_cell_row(const T* a, const T* cp, T* act, T* h, T* c, T* tc, std::int64_t H) {
  for_each_column<T>(H, [&]<class V>(std::int64_t j) {
    const V i = simd::sigmoid(get<V>(a + j));
    const V f = simd::sigmoid(get<V>(a + H + j));
    const V g = xsimd::tanh(get<V>(a + 2 * H + j));
    const V o = simd::sigmoid(get<V>(a + 3 * H + j));
    const V cn = f * get<V>(cp + j) + i * g;
    const V t = xsimd::tanh(cn);
    put(act + j, i);
    put(act + H + j, f);
    put(act + 2 * H + j, g);
    put(act + 3 * H + j, o);
    put(tc + j, t);
    put(h + j, V(o * t));
    put(c + j, cn);
  });
}

// The row's backward, from upstream dh and dc [H]: dgates dg [4H] and dc_prev dcp [H]. dcp may
// be dc itself (read before written, lane by lane).
template <class T>
void lstm_cell_row_backward(const T* ac, const T* tc, const T* cp, const T* dh, const T* dc, T* dg,
                            T* dcp, std::int64_t H) {
  for_each_column<T>(H, [&]<class V>(std::int64_t j) {
    const V i = get<V>(ac + j), f = get<V>(ac + H + j);
    const V g = get<V>(ac + 2 * H + j), o = get<V>(ac + 3 * H + j);
    const V t = get<V>(tc + j), dhj = get<V>(dh + j);
    const V one(1);
    const V dcj = get<V>(dc + j) + dhj * o * (one - t * t);
    put(dg + j, V(dcj * g * i * (one - i)));
    put(dg + H + j, V(dcj * get<V>(cp + j) * f * (one - f)));
    put(dg + 2 * H + j, V(dcj * i * (one - g * g)));
    put(dg + 3 * H + j, V(dhj * t * o * (one - o)));
    put(dcp + j, V(dcj * f));
  });
}

}  // namespace

LstmCellOutput lstm_cell(const Tensor& gates_in, const Tensor& c_prev_in) {
  check_cell(gates_in, c_prev_in);
  const Tensor gates = gates_in.contiguous(), c_prev = c_prev_in.contiguous();
  const std::int64_t B = c_prev.size(0), H = c_prev.size(1);
  LstmCellOutput out{Tensor::empty({B, 2 * H}, gates.dtype()),
                     Tensor::empty({B, 4 * H}, gates.dtype()),
                     Tensor::empty({B, H}, gates.dtype())};
  dispatch_floating(gates.dtype(), "lstm_cell", [&]<class T>() {
    for (std::int64_t b = 0; b < B; ++b) {
      const T* a = gates.data<T>() + b * 4 * H;
      const T* cp = c_prev.data<T>() + b * H;
      T* act = out.act.data<T>() + b * 4 * H;
      T* hc = out.hc.data<T>() + b * 2 * H;
      T* tc = out.tanh_c.data<T>() + b * H;
      lstm_cell_row(a, cp, act, hc, hc + H, tc, H);
    }
  });
  return out;
}

LstmCellGrads lstm_cell_backward(const Tensor& act_in, const Tensor& tanh_c_in,
                                 const Tensor& c_prev_in, const Tensor& dhc_in) {
  check_cell(act_in, c_prev_in);
  const std::int64_t B = c_prev_in.size(0), H = c_prev_in.size(1);
  if (tanh_c_in.shape() != c_prev_in.shape() || dhc_in.shape() != Shape{B, 2 * H}) {
    throw ShapeError(
        fmt::format("lstm_cell_backward: tanh_c {} and dhc {} must be [{},{}] and "
                    "[{},{}]",
                    shape_str(tanh_c_in.shape()), shape_str(dhc_in.shape()), B, H, B, 2 * H));
  }
  const Tensor act = act_in.contiguous(), tanh_c = tanh_c_in.contiguous();
  const Tensor c_prev = c_prev_in.contiguous(), dhc = dhc_in.contiguous();
  LstmCellGrads grads{Tensor::empty({B, 4 * H}, act.dtype()), Tensor::empty({B, H}, act.dtype())};
  dispatch_floating(act.dtype(), "lstm_cell_backward", [&]<class T>() {
    for (std::int64_t b = 0; b < B; ++b) {
      const T* ac = act.data<T>() + b * 4 * H;
      const T* tc = tanh_c.data<T>() + b * H;
      const T* cp = c_prev.data<T>() + b * H;
      const T* d = dhc.data<T>() + b * 2 * H;
      T* dg = grads.gates.data<T>() + b * 4 * H;
      T* dcp = grads.c_prev.data<T>() + b * H;
      lstm_cell_row_backward(ac, tc, cp, d, d + H, dg, dcp, H);
    }
  });
  return grads;
}

namespace {

std::string shape_or_none(const Tensor& t) {
  return t.defined() ? shape_str(t.shape()) : std::string("none");
}

void check_layer(const char* op, const Tensor& x, const Tensor& h0, const Tensor& c0,
                 const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                 const std::vector<std::int64_t>& lengths) {
  const std::string shapes =
      fmt::format("x {}, h0 {}, c0 {}, w_ih {}, w_hh {}, b_ih {}, b_hh {}", shape_or_none(x),
                  shape_or_none(h0), shape_or_none(c0), shape_or_none(w_ih), shape_or_none(w_hh),
                  shape_or_none(b_ih), shape_or_none(b_hh));
  if (!x.defined() || !h0.defined() || !c0.defined() || !w_ih.defined() || !w_hh.defined()) {
    throw ValueError(fmt::format("{}: {}: x, h0, c0, w_ih and w_hh must be defined", op, shapes));
  }
  bool ok = x.dim() == 3 && h0.dim() == 2 && w_ih.dim() == 2 && x.size(1) > 0;
  if (ok) {
    const std::int64_t B = x.size(0), I = x.size(2), H = h0.size(1);
    const Shape bias{4 * H};
    ok = h0.shape() == Shape{B, H} && c0.shape() == Shape{B, H} &&
         w_ih.shape() == Shape{4 * H, I} && w_hh.shape() == Shape{4 * H, H} &&
         (!b_ih.defined() || b_ih.shape() == bias) && (!b_hh.defined() || b_hh.shape() == bias);
  }
  if (!ok) {
    throw ShapeError(
        fmt::format("{}: {}: expected x [B,T,I] with T > 0, h0 and c0 [B,H], w_ih [4H,I], "
                    "w_hh [4H,H] and biases [4H]",
                    op, shapes));
  }
  if (!is_floating(x.dtype())) {
    throw DTypeError(fmt::format("{}: {}: x is {}, expected float32 or float64", op, shapes,
                                 dtype_name(x.dtype())));
  }
  for (const Tensor* t : {&h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh}) {
    if (t->defined() && t->dtype() != x.dtype()) {
      throw DTypeError(fmt::format("{}: {}: every input must be {} like x, one is {}", op, shapes,
                                   dtype_name(x.dtype()), dtype_name(t->dtype())));
    }
  }
  const std::int64_t B = x.size(0), T = x.size(1);
  if (!lengths.empty() && static_cast<std::int64_t>(lengths.size()) != B) {
    throw ShapeError(
        fmt::format("{}: {}: {} lengths for a batch of {}", op, shapes, lengths.size(), B));
  }
  for (const std::int64_t len : lengths) {
    if (len < 0 || len > T) {
      throw ValueError(fmt::format("{}: length {} is outside [0, {}]", op, len, T));
    }
  }
}

}  // namespace

// Per time t: gates_t = xp_t + h_{t-1} W_hh^T (xp from one GEMM over all times, the recurrent
// product accumulated into the same slab), then the cell, in place over the gates, for the
// active rows; inactive rows copy their state forward and output zeros.
LstmLayerOutput lstm_layer_forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                   const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                   const Tensor& b_hh, const std::vector<std::int64_t>& lengths,
                                   bool reverse) {
  check_layer(__func__, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths);
  const std::int64_t B = x.size(0), T = x.size(1), I = x.size(2), H = h0.size(1), G = 4 * H;
  const DType dt = x.dtype();
  LstmLayerOutput out{Tensor::empty({B, T + 2, H}, dt),
                      {Tensor::empty({T, B, G}, dt), Tensor::empty({T + 1, B, H}, dt),
                       Tensor::empty({T + 1, B, H}, dt), Tensor::empty({T, B, H}, dt)}};
  LstmLayerSaved& s = out.saved;
  s.h.select(0, reverse ? T : 0).copy_from(h0);
  s.c.select(0, reverse ? T : 0).copy_from(c0);
  dispatch_floating(dt, __func__, [&]<class Real>() {
    // xp = x W_ih^T + b_ih + b_hh, time-major: every row starts as the bias sum and one GEMM
    // over all T*B rows adds onto it.
    const bool has_bias = b_ih.defined() || b_hh.defined();
    Real* gates = s.act.data<Real>();
    if (has_bias) {
      std::vector<Real> bias(static_cast<std::size_t>(G), Real(0));
      for (const Tensor* b : {&b_ih, &b_hh}) {
        if (!b->defined()) continue;
        const Tensor bd = b->contiguous();
        const Real* pb = bd.data<Real>();
        for (std::int64_t j = 0; j < G; ++j) bias[j] += pb[j];
      }
      for (std::int64_t r = 0; r < T * B; ++r) std::copy(bias.begin(), bias.end(), gates + r * G);
    }
    Tensor gates2d = s.act.reshape({T * B, G});
    matmul_into(x.transpose(0, 1).contiguous().reshape({T * B, I}), w_ih.transpose(0, 1), gates2d,
                1.0, has_bias ? 1.0 : 0.0);
    // W_hh^T packed once for all T steps (tensor/packed_matmul.h): each step's product with a
    // small batch then skips gemm's copy of the weight.
    const PackedMatrix w_hh_t(w_hh.transpose(0, 1));
    Real* ph = s.h.data<Real>();
    Real* pc = s.c.data<Real>();
    Real* ptc = s.tanh_c.data<Real>();
    Real* py = out.y.data<Real>();
    for (std::int64_t k = 0; k < T; ++k) {
      const std::int64_t t = reverse ? T - 1 - k : k;
      const std::int64_t before = reverse ? t + 1 : t, after = reverse ? t : t + 1;
      Tensor gates_t = s.act.select(0, t);
      matmul_into(s.h.select(0, before), w_hh_t, gates_t, 1.0);
      for (std::int64_t b = 0; b < B; ++b) {
        const Real* h_prev = ph + (before * B + b) * H;
        const Real* c_prev = pc + (before * B + b) * H;
        Real* h = ph + (after * B + b) * H;
        Real* c = pc + (after * B + b) * H;
        Real* y = py + (b * (T + 2) + t) * H;
        if (lengths.empty() || t < lengths[b]) {
          Real* a = gates + (t * B + b) * G;
          lstm_cell_row(a, c_prev, a, h, c, ptc + (t * B + b) * H, H);
          std::copy(h, h + H, y);
        } else {  // past this sequence's end: keep the state, emit zeros
          std::copy(h_prev, h_prev + H, h);
          std::copy(c_prev, c_prev + H, c);
          std::fill(y, y + H, Real(0));
        }
      }
    }
    const std::int64_t last = reverse ? 0 : T;
    for (std::int64_t b = 0; b < B; ++b) {
      const Real* h = ph + (last * B + b) * H;
      const Real* c = pc + (last * B + b) * H;
      std::copy(h, h + H, py + (b * (T + 2) + T) * H);
      std::copy(c, c + H, py + (b * (T + 2) + T + 1) * H);
    }
  });
  return out;
}

// In the forward, step t turned h_{t-1}, c_{t-1} (slot `before`) and x_t into h_t, c_t, which
// went to the output row t and to step t+1; so now dh_t = dy_t + (dgates_{t+1} W_hh), dc_t
// comes from step t+1's cell, and the cell backward gives dgates_t and dc_{t-1}. The matrix
// gradients wait for the end, when all T*B rows of dgates form one dense matrix.
// NOTE: rows past a sequence's end had dh, dc handed straight back (their state was copied) and
// get dgates = 0, so they add nothing to the GEMMs.
LstmLayerGrads lstm_layer_backward(const LstmLayerSaved& saved, const Tensor& x, const Tensor& w_ih,
                                   const Tensor& w_hh, const std::vector<std::int64_t>& lengths,
                                   bool reverse, const Tensor& dy_in, const LstmLayerNeeds& needs) {
  const std::int64_t T = saved.act.size(0), B = saved.act.size(1), G = saved.act.size(2);
  const std::int64_t H = G / 4, I = x.size(2);
  if (dy_in.shape() != Shape{B, T + 2, H} || dy_in.dtype() != saved.act.dtype()) {
    throw ShapeError(fmt::format("{}: dy {}{} must be {}[{},{},{}]", __func__,
                                 dtype_name(dy_in.dtype()), shape_str(dy_in.shape()),
                                 dtype_name(saved.act.dtype()), B, T + 2, H));
  }
  const Tensor dy = dy_in.contiguous();
  const DType dt = dy.dtype();
  LstmLayerGrads d;
  d.h0 = Tensor::empty({B, H}, dt);  // dh and dc of the running step, ending as dh0, dc0
  d.c0 = Tensor::empty({B, H}, dt);
  d.h0.copy_from(dy.select(1, T));
  d.c0.copy_from(dy.select(1, T + 1));
  Tensor dgates = Tensor::empty({T, B, G}, dt);
  const PackedMatrix w_hh_packed(w_hh);  // for every step's dgates_t W_hh, as in the forward
  dispatch_floating(dt, __func__, [&]<class Real>() {
    const Real* pa = saved.act.data<Real>();
    const Real* pc = saved.c.data<Real>();
    const Real* ptc = saved.tanh_c.data<Real>();
    const Real* pdy = dy.data<Real>();
    Real* pdg = dgates.data<Real>();
    Real* pdh = d.h0.data<Real>();
    Real* pdc = d.c0.data<Real>();
    for (std::int64_t k = T - 1; k >= 0; --k) {
      const std::int64_t t = reverse ? T - 1 - k : k;
      const std::int64_t before = reverse ? t + 1 : t;
      for (std::int64_t b = 0; b < B; ++b) {
        Real* dg = pdg + (t * B + b) * G;
        if (!lengths.empty() && t >= lengths[b]) {
          std::fill(dg, dg + G, Real(0));
          continue;
        }
        Real* dh = pdh + b * H;
        Real* dc = pdc + b * H;
        const Real* dyt = pdy + (b * (T + 2) + t) * H;
        for (std::int64_t j = 0; j < H; ++j) dh[j] += dyt[j];
        lstm_cell_row_backward(pa + (t * B + b) * G, ptc + (t * B + b) * H,
                               pc + (before * B + b) * H, dh, dc, dg, dc, H);
        std::fill(dh, dh + H, Real(0));  // refilled below with dgates_t W_hh
      }
      Tensor dgates_t = dgates.select(0, t);
      matmul_into(dgates_t, w_hh_packed, d.h0, 1.0);
    }
  });
  const Tensor dg = dgates.reshape({T * B, G});
  if (needs.w_hh) {
    d.w_hh = matmul(dg.transpose(0, 1), saved.h.narrow(0, reverse ? 1 : 0, T).reshape({T * B, H}));
  }
  if (needs.w_ih) {
    d.w_ih = matmul(dg.transpose(0, 1), x.transpose(0, 1).contiguous().reshape({T * B, I}));
  }
  if (needs.x) d.x = matmul(dg, w_ih).reshape({T, B, I}).transpose(0, 1);
  if (needs.b) d.b = sum(dg, {0});
  return d;
}

// --- GRU cell ---
namespace {

void check_gru(const char* op, const Tensor& xp, const Tensor& hp, const Tensor& h_prev) {
  const bool ok = xp.dim() == 2 && h_prev.dim() == 2 && xp.size(0) == h_prev.size(0) &&
                  xp.size(1) == 3 * h_prev.size(1) && hp.shape() == xp.shape();
  if (!ok) {
    throw ShapeError(fmt::format("{}: xp {}, hp {} and h_prev {} must be [B,3H], [B,3H], [B,H]", op,
                                 shape_str(xp.shape()), shape_str(hp.shape()),
                                 shape_str(h_prev.shape())));
  }
  if (xp.dtype() != hp.dtype() || xp.dtype() != h_prev.dtype()) {
    throw DTypeError(fmt::format("{}: xp {}{}, hp {}{} and h_prev {}{} must share one dtype", op,
                                 dtype_name(xp.dtype()), shape_str(xp.shape()),
                                 dtype_name(hp.dtype()), shape_str(hp.shape()),
                                 dtype_name(h_prev.dtype()), shape_str(h_prev.shape())));
  }
}

}  // namespace

GruCellOutput gru_cell(const Tensor& xp_in, const Tensor& hp_in, const Tensor& h_prev_in) {
  check_gru(__func__, xp_in, hp_in, h_prev_in);
  const Tensor xp = xp_in.contiguous(), hp = hp_in.contiguous(), h_prev = h_prev_in.contiguous();
  const std::int64_t B = h_prev.size(0), H = h_prev.size(1);
  GruCellOutput out{Tensor::empty({B, H}, xp.dtype()), Tensor::empty({B, 3 * H}, xp.dtype())};
  dispatch_floating(xp.dtype(), __func__, [&]<class T>() {
    for (std::int64_t b = 0; b < B; ++b) {
      const T* x = xp.data<T>() + b * 3 * H;
      const T* p = hp.data<T>() + b * 3 * H;
      const T* hprev = h_prev.data<T>() + b * H;
      T* act = out.act.data<T>() + b * 3 * H;
      T* h = out.h.data<T>() + b * H;
      for_each_column<T>(H, [&]<class V>(std::int64_t j) {
        const V r = simd::sigmoid(V(get<V>(x + j) + get<V>(p + j)));
        const V z = simd::sigmoid(V(get<V>(x + H + j) + get<V>(p + H + j)));
        const V n = xsimd::tanh(V(get<V>(x + 2 * H + j) + r * get<V>(p + 2 * H + j)));
        put(act + j, r);
        put(act + H + j, z);
        put(act + 2 * H + j, n);
        put(h + j, V(n + z * (get<V>(hprev + j) - n)));
      });
    }
  });
  return out;
}

GruCellGrads gru_cell_backward(const Tensor& act_in, const Tensor& hp_in, const Tensor& h_prev_in,
                               const Tensor& dh_in) {
  check_gru(__func__, act_in, hp_in, h_prev_in);
  if (dh_in.shape() != h_prev_in.shape() || dh_in.dtype() != h_prev_in.dtype()) {
    throw ShapeError(fmt::format("{}: dh {}{} must be {}{}", __func__, dtype_name(dh_in.dtype()),
                                 shape_str(dh_in.shape()), dtype_name(h_prev_in.dtype()),
                                 shape_str(h_prev_in.shape())));
  }
  const Tensor act = act_in.contiguous(), hp = hp_in.contiguous();
  const Tensor h_prev = h_prev_in.contiguous(), dh = dh_in.contiguous();
  const std::int64_t B = h_prev.size(0), H = h_prev.size(1);
  const DType dt = act.dtype();
  GruCellGrads grads{Tensor::empty({B, 3 * H}, dt), Tensor::empty({B, 3 * H}, dt),
                     Tensor::empty({B, H}, dt)};
  dispatch_floating(dt, __func__, [&]<class T>() {
    for (std::int64_t b = 0; b < B; ++b) {
      const T* ac = act.data<T>() + b * 3 * H;
      const T* p = hp.data<T>() + b * 3 * H;
      const T* hprev = h_prev.data<T>() + b * H;
      const T* d = dh.data<T>() + b * H;
      T* dx = grads.xp.data<T>() + b * 3 * H;
      T* dp = grads.hp.data<T>() + b * 3 * H;
      T* dhp = grads.h_prev.data<T>() + b * H;
      for_each_column<T>(H, [&]<class V>(std::int64_t j) {
        const V r = get<V>(ac + j), z = get<V>(ac + H + j), n = get<V>(ac + 2 * H + j);
        const V dhj = get<V>(d + j), one(1);
        // in the forward, h = n + z (h_prev - n) and n = tanh(xp_n + r hp_n)
        const V dan = dhj * (one - z) * (one - n * n);
        const V dar = dan * get<V>(p + 2 * H + j) * r * (one - r);
        const V daz = dhj * (get<V>(hprev + j) - n) * z * (one - z);
        put(dx + j, dar);
        put(dp + j, dar);
        put(dx + H + j, daz);
        put(dp + H + j, daz);
        put(dx + 2 * H + j, dan);
        put(dp + 2 * H + j, V(dan * r));
        put(dhp + j, V(dhj * z));
      });
    }
  });
  return grads;
}

}  // namespace seqgrad
