// The TUTORIAL_CHECK registry and the by-hand helpers shared by the tutorial's checks
// (tests/test_tutorial.cpp: the forward formulas and the document's agreement with the checks;
// tests/test_tutorial_backward.cpp: the backward formulas and the LSTM cell). Every case works in
// float64 on plain vectors of doubles. Shape legend: B batch, S source length, H hidden, A
// attention size, V vocabulary.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/rnn.h"
#include "seq2seq/attention.h"
#include "seq2seq/decoder.h"

namespace seqgrad::tutorial {

using Vec = std::vector<double>;

// --- the list of checked names, filled by TUTORIAL_CHECK beside each case ---

// --- the list of checked names, filled by TUTORIAL_CHECK beside each case ---

inline std::set<std::string>& checked_names() {
  static std::set<std::string> names;
  return names;
}

struct Checked {
  explicit Checked(const char* name) { checked_names().insert(name); }
};

#define TUTORIAL_CONCAT_(a, b) a##b
#define TUTORIAL_CONCAT(a, b) TUTORIAL_CONCAT_(a, b)
// Registers NAME in checked_names() and opens the case "tutorial: NAME".
#define TUTORIAL_CHECK(name)                            \
  const Checked TUTORIAL_CONCAT(checked_, name){#name}; \
  TEST_CASE("tutorial: " #name)

// --- helpers ---

constexpr double kTolerance = 1e-10;

inline Vec randn(Generator& gen, std::size_t n) {
  Vec v(n);
  for (double& x : v) x = gen.next_normal();
  return v;
}

inline Tensor tensor(const Vec& v, const Shape& shape) {
  return Tensor::from_vector(v, shape);
}

inline Vec values(const Tensor& t) {
  return t.to_vector<double>();
}
inline Vec values(const Variable& v) {
  return values(v.data());
}

// max |got - want| / max(|want|, |got|): the relative error over the whole tensor.
inline void check_close(const Vec& got, const Vec& want, const char* what) {
  CAPTURE(what);
  REQUIRE(got.size() == want.size());
  double diff = 0, scale = 1e-300;
  for (std::size_t i = 0; i < got.size(); ++i) {
    diff = std::max(diff, std::abs(got[i] - want[i]));
    scale = std::max({scale, std::abs(got[i]), std::abs(want[i])});
  }
  CAPTURE(diff / scale);
  CHECK(diff / scale < kTolerance);
}

inline double sigmoid(double x) {
  return 1 / (1 + std::exp(-x));
}

// y = W x + b for W [out,in] (row-major), x [in], b [out] or empty.
inline Vec affine(const Vec& w, const Vec& x, const Vec& b, std::size_t out) {
  const std::size_t in = x.size();
  Vec y(out);
  for (std::size_t r = 0; r < out; ++r) {
    double s = b.empty() ? 0.0 : b[r];
    for (std::size_t k = 0; k < in; ++k) s += w[r * in + k] * x[k];
    y[r] = s;
  }
  return y;
}

// x = W^T y for W [out,in], y [out].
inline Vec affine_t(const Vec& w, const Vec& y, std::size_t in) {
  Vec x(in, 0.0);
  for (std::size_t r = 0; r < y.size(); ++r) {
    for (std::size_t k = 0; k < in; ++k) x[k] += w[r * in + k] * y[r];
  }
  return x;
}

// Row b of a [B,N] buffer.
inline Vec row(const Vec& m, std::size_t b, std::size_t n) {
  return {m.begin() + static_cast<std::ptrdiff_t>(b * n),
          m.begin() + static_cast<std::ptrdiff_t>((b + 1) * n)};
}

inline void append(Vec& to, const Vec& v) {
  to.insert(to.end(), v.begin(), v.end());
}

inline Variable leaf(const Vec& v, const Shape& shape) {
  return Variable(tensor(v, shape), true);
}

inline ScorerConfig scorer_config(std::int64_t hq, std::int64_t hk, std::int64_t a,
                                  Generator& gen) {
  return {.query_size = hq, .key_size = hk, .attention_size = a, .dtype = DType::f64, .gen = &gen};
}

// The LSTM step as the tutorial writes it (lstm_cell_forward), with the weights of `rnn`'s
// layer 0 (their names after `prefix`, e.g. "rnn." inside a decoder):
// z = W_ih x + b_ih + W_hh h + b_hh, i,f,g,o its four H-blocks;
// c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh(c').
struct LstmByHand {
  Vec h, c;
};
inline LstmByHand lstm_step(const Module& rnn, const std::string& prefix, const Vec& x,
                            const Vec& h, const Vec& c) {
  const auto p = [&](const char* name) { return values(rnn.parameter(prefix + name)); };
  const std::size_t H = h.size();
  const Vec z_ih = affine(p("weight_ih_l0"), x, p("bias_ih_l0"), 4 * H);
  const Vec z_hh = affine(p("weight_hh_l0"), h, p("bias_hh_l0"), 4 * H);
  LstmByHand out{Vec(H), Vec(H)};
  for (std::size_t k = 0; k < H; ++k) {
    const double i = sigmoid(z_ih[k] + z_hh[k]);
    const double f = sigmoid(z_ih[H + k] + z_hh[H + k]);
    const double g = std::tanh(z_ih[2 * H + k] + z_hh[2 * H + k]);
    const double o = sigmoid(z_ih[3 * H + k] + z_hh[3 * H + k]);
    out.c[k] = f * c[k] + i * g;
    out.h[k] = o * std::tanh(out.c[k]);
  }
  return out;
}

// A decoder over random encoder states, for the decoder-update checks.
inline DecoderConfig decoder_config(const std::string& attention) {
  return {.vocab = 7,
          .embed = 3,
          .hidden = 4,
          .layers = 1,
          .cell = CellType::lstm,
          .dropout = 0.0,
          .style = AttentionStyle::luong,
          .attention = attention,
          .key_size = 6,
          .dtype = DType::f64};
}

// The concat scorer's parameters and its score by hand, shared by the forward and the backward.
struct Concat {
  Vec w, u, bias, v;  // W [A,Hq], U [A,Hk], b [A], v [A]
  explicit Concat(const Module& s)
      : w(values(s.parameter("W.weight"))),
        u(values(s.parameter("U.weight"))),
        bias(values(s.parameter("U.bias"))),
        v(values(s.parameter("v.weight"))) {}
  // t_j = tanh(W q + U k_j + b)
  Vec t(const Vec& q, const Vec& kj) const {
    const std::size_t A = v.size();
    const Vec wq = affine(w, q, {}, A), uk = affine(u, kj, bias, A);
    Vec out(A);
    for (std::size_t a = 0; a < A; ++a) out[a] = std::tanh(wq[a] + uk[a]);
    return out;
  }
};

// One Luong decoder step over random encoder states, and the pieces the checks read.
struct LuongStep {
  Generator gen{107};
  Decoder decoder{decoder_config("concat"), gen};
  static constexpr std::size_t B = 2, S = 4, H = 4, E = 3, C = 6, V = 7;
  Vec states = randn(gen, B*S*C), h0 = randn(gen, B*H), c0 = randn(gen, B*H);
  Vec feed = randn(gen, B* H);  // o_{t-1}
  std::vector<std::int64_t> y_prev{3, 5};
  DecoderMemory memory;
  DecoderStep step;
  Variable logits;
  LuongStep() {
    decoder.eval();
    EncoderOutput enc;
    enc.states = Variable(tensor(states, {B, S, C}));
    enc.lengths = {4, 3};
    enc.mask = length_mask(enc.lengths, S);
    memory = decoder.memory(enc);
    DecoderState state;
    state.rnn = {Variable(tensor(h0, {1, B, H})), Variable(tensor(c0, {1, B, H}))};
    state.feed = Variable(tensor(feed, {B, H}));
    step = decoder.step(Tensor::from_vector(y_prev, {2}), state, memory);
    logits = decoder.logits(step.output);
  }
  Vec param(const char* name) const { return values(decoder.parameter(name)); }
  // c_t = sum_j a_j h_j from the step's weights; [c_t; h_t] per row.
  Vec context(std::size_t b) const {
    const Vec a = values(step.weights);
    Vec c(C, 0.0);
    for (std::size_t j = 0; j < S; ++j) {
      for (std::size_t k = 0; k < C; ++k) c[k] += a[b * S + j] * states[(b * S + j) * C + k];
    }
    return c;
  }
  Vec context_and_h(std::size_t b) const {
    Vec ch = context(b);
    append(ch, row(values(step.state.rnn.h), b, H));
    return ch;
  }
};

}  // namespace seqgrad::tutorial
