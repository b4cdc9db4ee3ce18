// docs/attention-backprop.md, checked: every formula block in the tutorial carries a marker
// `<!-- check: NAME -->` on the line above it, and this file has one case per NAME that
// evaluates exactly that formula by hand (plain loops over doubles) on random float64 inputs
// and random upstream gradients, and compares it with what the library and autograd compute.
// Two last cases read the tutorial: its set of markers must equal the set of checks here (and
// every ```text block must carry a marker), and every `dir/file:function` it points to must
// exist.
//
// To add a formula to the tutorial: put `<!-- check: NAME -->` right above its ```text block,
// then write `TUTORIAL_CHECK(NAME) { ... }` below, which both registers NAME and defines the
// case. Shape legend: B batch, S source length, H hidden, A attention size, V vocabulary.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
// GCC 12 reports a false -Wmaybe-uninitialized inside <regex>'s automaton (std::function moved
// into a state) under the sanitizer build's flags; the warning is about the library's code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>
#pragma GCC diagnostic pop
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/rnn.h"
#include "seq2seq/attention.h"
#include "seq2seq/decoder.h"

namespace seqgrad {
namespace {

using Vec = std::vector<double>;

// --- the list of checked names, filled by TUTORIAL_CHECK beside each case ---

std::set<std::string>& checked_names() {
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

Vec randn(Generator& gen, std::size_t n) {
  Vec v(n);
  for (double& x : v) x = gen.next_normal();
  return v;
}

Tensor tensor(const Vec& v, const Shape& shape) {
  return Tensor::from_vector(v, shape);
}

Vec values(const Tensor& t) {
  return t.to_vector<double>();
}
Vec values(const Variable& v) {
  return values(v.data());
}

// max |got - want| / max(|want|, |got|): the relative error over the whole tensor.
void check_close(const Vec& got, const Vec& want, const char* what) {
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

double sigmoid(double x) {
  return 1 / (1 + std::exp(-x));
}

// y = W x + b for W [out,in] (row-major), x [in], b [out] or empty.
Vec affine(const Vec& w, const Vec& x, const Vec& b, std::size_t out) {
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
Vec affine_t(const Vec& w, const Vec& y, std::size_t in) {
  Vec x(in, 0.0);
  for (std::size_t r = 0; r < y.size(); ++r) {
    for (std::size_t k = 0; k < in; ++k) x[k] += w[r * in + k] * y[r];
  }
  return x;
}

// Row b of a [B,N] buffer.
Vec row(const Vec& m, std::size_t b, std::size_t n) {
  return {m.begin() + static_cast<std::ptrdiff_t>(b * n),
          m.begin() + static_cast<std::ptrdiff_t>((b + 1) * n)};
}

void append(Vec& to, const Vec& v) {
  to.insert(to.end(), v.begin(), v.end());
}

Variable leaf(const Vec& v, const Shape& shape) {
  return Variable(tensor(v, shape), true);
}

ScorerConfig scorer_config(std::int64_t hq, std::int64_t hk, std::int64_t a, Generator& gen) {
  return {.query_size = hq, .key_size = hk, .attention_size = a, .dtype = DType::f64, .gen = &gen};
}

// The LSTM step as the tutorial writes it (lstm_cell_forward), with the weights of `rnn`'s
// layer 0 (their names after `prefix`, e.g. "rnn." inside a decoder):
// z = W_ih x + b_ih + W_hh h + b_hh, i,f,g,o its four H-blocks;
// c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh(c').
struct LstmByHand {
  Vec h, c;
};
LstmByHand lstm_step(const Module& rnn, const std::string& prefix, const Vec& x, const Vec& h,
                     const Vec& c) {
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

// --- forward: scores, weights, context ---

TUTORIAL_CHECK(dot_score) {
  // e_j = q . k_j
  const std::size_t B = 2, S = 4, H = 3;
  Generator gen(101);
  const Vec q = randn(gen, B * H), k = randn(gen, B * S * H);
  const auto scorer = make_scorer("dot", scorer_config(H, H, 0, gen));
  const Variable keys(tensor(k, {B, S, H}));
  const Variable e = scorer->score(Variable(tensor(q, {B, H})), scorer->prepare(keys));
  Vec want(B * S, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      for (std::size_t h = 0; h < H; ++h) want[b * S + j] += q[b * H + h] * k[(b * S + j) * H + h];
    }
  }
  check_close(values(e), want, "e");
}

TUTORIAL_CHECK(general_score) {
  // e_j = q^T W k_j, W [Hq,Hk]
  const std::size_t B = 2, S = 4, Hq = 3, Hk = 5;
  Generator gen(102);
  const Vec q = randn(gen, B * Hq), k = randn(gen, B * S * Hk);
  const auto scorer = make_scorer("general", scorer_config(Hq, Hk, 0, gen));
  const Vec w = values(scorer->parameter("W.weight"));
  REQUIRE(w.size() == Hq * Hk);
  const Variable e =
      scorer->score(Variable(tensor(q, {B, Hq})), scorer->prepare(Variable(tensor(k, {B, S, Hk}))));
  Vec want(B * S, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      for (std::size_t r = 0; r < Hq; ++r) {
        for (std::size_t c = 0; c < Hk; ++c) {
          want[b * S + j] += q[b * Hq + r] * w[r * Hk + c] * k[(b * S + j) * Hk + c];
        }
      }
    }
  }
  check_close(values(e), want, "e");
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

TUTORIAL_CHECK(concat_score) {
  // e_j = v . tanh(W q + U k_j + b)
  const std::size_t B = 2, S = 4, Hq = 3, Hk = 5, A = 6;
  Generator gen(103);
  const Vec q = randn(gen, B * Hq), k = randn(gen, B * S * Hk);
  const auto scorer = make_scorer("concat", scorer_config(Hq, Hk, A, gen));
  const Concat p(*scorer);
  REQUIRE(p.v.size() == A);
  const Variable e =
      scorer->score(Variable(tensor(q, {B, Hq})), scorer->prepare(Variable(tensor(k, {B, S, Hk}))));
  Vec want;
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      const Vec t = p.t(row(q, b, Hq), row(k, b * S + j, Hk));
      double s = 0;
      for (std::size_t a = 0; a < A; ++a) s += p.v[a] * t[a];
      want.push_back(s);
    }
  }
  check_close(values(e), want, "e");
}

TUTORIAL_CHECK(softmax_weights) {
  // a_j = exp(e_j - m) / sum_k exp(e_k - m) over real positions, 0 at padding
  const std::size_t B = 2, S = 4, H = 3;
  const std::vector<std::int64_t> lengths{4, 2};
  Generator gen(104);
  const Vec q = randn(gen, B * H), k = randn(gen, B * S * H);
  Attention attention(make_scorer("dot", scorer_config(H, H, 0, gen)));
  const AttentionResult r =
      attention.attend(Variable(tensor(q, {B, H})),
                       attention.memory(Variable(tensor(k, {B, S, H})), length_mask(lengths, S)));
  const Vec e = values(r.scores);
  Vec want(B * S, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    const auto n = static_cast<std::size_t>(lengths[b]);
    double m = e[b * S];
    for (std::size_t j = 0; j < n; ++j) m = std::max(m, e[b * S + j]);
    double total = 0;
    for (std::size_t j = 0; j < n; ++j) total += std::exp(e[b * S + j] - m);
    for (std::size_t j = 0; j < n; ++j) want[b * S + j] = std::exp(e[b * S + j] - m) / total;
  }
  check_close(values(r.weights), want, "a");
}

TUTORIAL_CHECK(context_sum) {
  // c = sum_j a_j h_j
  const std::size_t B = 2, S = 4, Hq = 3, Hk = 5;
  Generator gen(105);
  const Vec q = randn(gen, B * Hq), hs = randn(gen, B * S * Hk);
  Attention attention(make_scorer("general", scorer_config(Hq, Hk, 0, gen)));
  const AttentionResult r =
      attention.attend(Variable(tensor(q, {B, Hq})),
                       attention.memory(Variable(tensor(hs, {B, S, Hk})), length_mask({4, 3}, S)));
  const Vec a = values(r.weights);
  Vec want(B * Hk, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      for (std::size_t h = 0; h < Hk; ++h) {
        want[b * Hk + h] += a[b * S + j] * hs[(b * S + j) * Hk + h];
      }
    }
  }
  check_close(values(r.context), want, "c");
}

// A decoder over random encoder states, for the decoder-update checks.
DecoderConfig decoder_config(const std::string& attention) {
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

TUTORIAL_CHECK(fixed_context) {
  // c = [fwd h_S ; bwd h_1] at every step; h_t = LSTM([E y_{t-1}; c], s_{t-1});
  // o_t = tanh(W_c [c; h_t] + b_c)
  const std::size_t B = 2, S = 3, He = 3, H = 4, E = 3, C = 2 * He;
  Generator gen(106);
  Decoder decoder(decoder_config("none"), gen);
  decoder.eval();
  EncoderOutput enc;
  enc.states = Variable(tensor(randn(gen, B * S * C), {B, S, C}));
  enc.lengths = {3, 3};
  enc.mask = length_mask(enc.lengths, S);
  const Vec final_h = randn(gen, 2 * B * He);  // [L*D=2, B, He]: forward, then backward
  enc.final.h = Variable(tensor(final_h, {2, B, He}));
  enc.final.c = Variable(tensor(randn(gen, 2 * B * He), {2, B, He}));
  const DecoderMemory m = decoder.memory(enc);
  Vec h = randn(gen, B * H), c = randn(gen, B * H);
  DecoderState state =
      decoder.initial({Variable(tensor(h, {1, B, H})), Variable(tensor(c, {1, B, H}))},
                      static_cast<std::int64_t>(B));
  const Vec emb = values(decoder.parameter("embedding.weight"));
  const Vec wc = values(decoder.parameter("combine.weight")),
            bc = values(decoder.parameter("combine.bias"));
  const std::vector<std::vector<std::int64_t>> inputs{{1, 5}, {6, 2}};  // y_{t-1} for t = 1, 2
  for (const auto& y : inputs) {
    const DecoderStep step = decoder.step(Tensor::from_vector(y, {2}), state, m);
    Vec want_c, want_h, want_cell, want_o;
    for (std::size_t b = 0; b < B; ++b) {
      Vec ctx = row(final_h, b, He);         // forward direction, layer 0: after step S
      append(ctx, row(final_h, B + b, He));  // backward direction: after position 1
      Vec x = row(emb, static_cast<std::size_t>(y[b]), E);
      append(x, ctx);
      const LstmByHand s = lstm_step(decoder, "rnn.", x, row(h, b, H), row(c, b, H));
      Vec ch = ctx;
      append(ch, s.h);
      const Vec z = affine(wc, ch, bc, H);
      for (double v : z) want_o.push_back(std::tanh(v));
      append(want_c, ctx);
      append(want_h, s.h);
      append(want_cell, s.c);
    }
    check_close(values(m.fixed_context), want_c, "c");
    check_close(values(step.state.rnn.h), want_h, "h_t");
    check_close(values(step.state.rnn.c), want_cell, "cell c_t");
    check_close(values(step.output), want_o, "o_t");
    h = want_h;
    c = want_cell;
    state = step.state;
  }
}

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

TUTORIAL_CHECK(luong_output) {
  // h_t = LSTM([E y_{t-1}; o_{t-1}], s_{t-1});  c_t = attend(h_t);
  // o_t = tanh(W_c [c_t; h_t] + b_c);  logits_t = W_o o_t + b_o
  LuongStep s;
  using L = LuongStep;
  const Vec emb = s.param("embedding.weight");
  Vec want_h, want_o, want_logits;
  for (std::size_t b = 0; b < L::B; ++b) {
    Vec x = row(emb, static_cast<std::size_t>(s.y_prev[b]), L::E);
    append(x, row(s.feed, b, L::H));
    append(want_h, lstm_step(s.decoder, "rnn.", x, row(s.h0, b, L::H), row(s.c0, b, L::H)).h);
    Vec o = affine(s.param("combine.weight"), s.context_and_h(b), s.param("combine.bias"), L::H);
    for (double& v : o) v = std::tanh(v);
    append(want_logits, affine(s.param("project.weight"), o, s.param("project.bias"), L::V));
    append(want_o, o);
  }
  check_close(values(s.step.state.rnn.h), want_h, "h_t");
  check_close(values(s.step.output), want_o, "o_t");
  check_close(values(s.logits), want_logits, "logits_t");
}

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

// --- the document and the checks agree ---

const std::string kTutorial = std::string(SEQGRAD_SOURCE_DIR) + "/docs/attention-backprop.md";

std::vector<std::string> tutorial_lines() {
  std::ifstream in(kTutorial);
  REQUIRE_MESSAGE(in.good(), "cannot read ", kTutorial);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string joined(const std::set<std::string>& names) {
  return fmt::format("{}", fmt::join(names, ", "));
}

TEST_CASE("tutorial: the document's formula markers are exactly the checks in this file") {
  const std::vector<std::string> lines = tutorial_lines();
  const std::regex marker(R"(^<!-- check: ([a-z0-9_]+) -->$)");
  std::set<std::string> in_text;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    CAPTURE(i + 1);
    CAPTURE(lines[i]);
    std::smatch m;
    if (std::regex_match(lines[i], m, marker)) {
      CHECK_MESSAGE(in_text.insert(m[1]).second, "a marker used twice");
      // The marker sits right above its formula block.
      CHECK_MESSAGE((i + 1 < lines.size() && lines[i + 1] == "```text"),
                    "a marker must be followed by a ```text formula block");
    } else if (lines[i].starts_with("<!--") && lines[i].find("check") != std::string::npos) {
      FAIL_CHECK("a malformed marker (write <!-- check: name --> alone on its line)");
    }
    // Every formula block is checked: a ```text block has a marker right above it.
    if (lines[i] == "```text") {
      CHECK_MESSAGE((i > 0 && std::regex_match(lines[i - 1], marker)),
                    "a ```text formula block with no <!-- check: name --> above it");
    }
  }
  std::set<std::string> unchecked, unused;
  std::ranges::set_difference(in_text, checked_names(), std::inserter(unchecked, unchecked.end()));
  std::ranges::set_difference(checked_names(), in_text, std::inserter(unused, unused.end()));
  CHECK_MESSAGE(unchecked.empty(), "formulas in the text with no check here: ", joined(unchecked));
  CHECK_MESSAGE(unused.empty(), "checks here with no formula in the text: ", joined(unused));
  CHECK(checked_names().size() >= 15);
}

TEST_CASE("tutorial: every file:function the document points to exists") {
  const std::vector<std::string> lines = tutorial_lines();
  // `dir/file.cpp` or `dir/file.h` (a path from the root), optionally `:name` or `:Class::name`
  const std::regex ref(R"(`([a-z0-9_]+(?:/[a-z0-9_]+)+\.(?:cpp|h))(?::([A-Za-z0-9_:]+))?`)");
  std::size_t functions = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    for (auto it = std::sregex_iterator(lines[i].begin(), lines[i].end(), ref);
         it != std::sregex_iterator(); ++it) {
      const std::string path = (*it)[1], name = (*it)[2];
      CAPTURE(i + 1);
      CAPTURE(path);
      CAPTURE(name);
      std::ifstream in(std::string(SEQGRAD_SOURCE_DIR) + "/" + path);
      REQUIRE_MESSAGE(in.good(), "the tutorial names a file that does not exist");
      if (name.empty()) continue;
      std::stringstream text;
      text << in.rdbuf();
      // The last part of the name, as it appears where it is defined or declared: `name(`.
      const std::size_t colon = name.rfind(':');
      const std::string last = colon == std::string::npos ? name : name.substr(colon + 1);
      CHECK_MESSAGE(text.str().find(last + "(") != std::string::npos,
                    "the tutorial names a function its file does not have");
      ++functions;
    }
  }
  CHECK(functions >= 15);
}

}  // namespace
}  // namespace seqgrad
