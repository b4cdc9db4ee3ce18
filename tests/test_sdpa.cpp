// The fused scaled dot-product attention (autograd/ops_sdpa.cpp, tensor/sdpa.h) and GELU: the
// fused op against the composite it replaced (kept below as the reference), its defined edge
// cases (fully masked rows, causal alignment, dropout, the returned weights), its errors, and
// PyTorch's scaled dot-product attention and gelu on the same inputs (tests/python/
// sdpa_parity.py). Gradients of both ops are gradchecked in tests/test_gradcheck.cpp.
//
// To add a comparison case: append a Config to configs() below; it runs against the composite
// in both dtypes. A PyTorch case is one more entry in parity_cases().
// Shape legend: B batch, H heads, Tq queries, Tk keys, D head size, Dv value size.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>

#include "autograd/autograd.h"
#include "python_runner.h"

namespace seqgrad {
namespace {

// --- the composite reference: matmul + masked softmax + dropout mul + matmul -----------------

Tensor reference_keep_mask(const Shape& scores, const SdpaOptions& o) {
  if (!o.causal) return o.mask;
  const std::int64_t Tq = scores[scores.size() - 2], Tk = scores.back();
  Tensor causal = Tensor::zeros({Tq, Tk}, DType::boolean);
  auto* c = static_cast<std::uint8_t*>(causal.raw_data());
  for (std::int64_t i = 0; i < Tq; ++i) {
    for (std::int64_t j = 0; j < Tk; ++j) c[i * Tk + j] = j <= i + (Tk - Tq);
  }
  if (!o.mask.defined()) return causal;
  const Shape shape = broadcast_shapes(o.mask.shape(), scores, "reference");
  Tensor both = o.mask.expand(shape).contiguous();
  const Tensor cb = causal.expand(shape).contiguous();
  auto* b = static_cast<std::uint8_t*>(both.raw_data());
  const auto* cc = static_cast<const std::uint8_t*>(cb.raw_data());
  for (std::int64_t i = 0; i < both.numel(); ++i) b[i] = b[i] && cc[i];
  return both;
}

Variable reference_bmm(const Variable& a, const Variable& b) {
  if (a.dim() == 3) return matmul(a, b);
  const std::int64_t B = a.size(0), H = a.size(1);
  const Variable y =
      matmul(reshape(a, {B * H, a.size(2), a.size(3)}), reshape(b, {B * H, b.size(2), b.size(3)}));
  return reshape(y, {B, H, y.size(1), y.size(2)});
}

// The composite the fused op replaced; draws the same dropout mask from the same generator.
SdpaResult sdpa_reference(const Variable& q, const Variable& k, const Variable& v,
                          const SdpaOptions& o) {
  const double scale = o.scale > 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const Variable scores = reference_bmm(q, transpose(k, -2, -1)) * scale;
  Variable w = softmax(scores, -1, reference_keep_mask(scores.shape(), o));
  SdpaResult r;
  if (o.need_weights) r.weights = w.data();
  if (o.dropout > 0) {
    const Tensor keep =
        bernoulli(w.shape(), 1.0 - o.dropout, o.gen != nullptr ? *o.gen : default_generator());
    w = mul(w, Variable(keep.astype(w.dtype()))) * (1.0 / (1.0 - o.dropout));
  }
  r.out = reference_bmm(w, v);
  return r;
}

// --- helpers ----------------------------------------------------------------------------------

// Largest |a - b| / max(1, |b|).
double max_error(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    worst = std::max(worst, std::abs(x[i] - y[i]) / std::max(1.0, std::abs(y[i])));
  }
  return worst;
}

Tensor boolean(const std::vector<int>& values, const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::boolean);
  auto* p = static_cast<std::uint8_t*>(t.raw_data());
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i] != 0;
  REQUIRE(static_cast<std::int64_t>(values.size()) == t.numel());
  return t;
}

// A random keep-mask of `shape` in which every row along the last axis keeps at least one key.
Tensor random_keep(const Shape& shape, Generator& gen) {
  Tensor m = bernoulli(shape, 0.6, gen);
  auto* p = static_cast<std::uint8_t*>(m.raw_data());
  const std::int64_t n = shape.back();
  for (std::int64_t r = 0; r < m.numel() / n; ++r) p[r * n + gen.next_u64() % n] = 1;
  return m;
}

// One comparison case: shapes, how q, k, v are laid out, and the options.
struct Config {
  std::string what;
  Shape q, k, v;            // logical shapes [.., T, D]
  bool permuted = false;    // 4-D inputs built [B,T,H,D] and permuted to [B,H,T,D] (head split)
  bool transposed = false;  // inputs stored with the last two axes swapped and viewed back
  bool self = false;        // q, k and v are one tensor
  int mask = 0;  // 0 none, 1 key padding [B,1,1,Tk] ([N,1,Tk] for 3-D), 2 full, 3 [Tq,Tk]
  bool causal = false;
  double scale = 0;
  double dropout = 0;
};

std::vector<Config> configs() {
  // clang-format off
  return {
      {.what = "3-D, no mask", .q = {3, 4, 5}, .k = {3, 6, 5}, .v = {3, 6, 3}},
      {.what = "3-D, transposed views, key padding, causal Tq 2 < Tk 9, scale 0.3",
       .q = {2, 2, 7}, .k = {2, 9, 7}, .v = {2, 9, 4}, .transposed = true, .mask = 1,
       .causal = true, .scale = 0.3},
      {.what = "4-D head split by permute, key padding, causal Tq 5 > Tk 3",
       .q = {2, 3, 5, 8}, .k = {2, 3, 3, 8}, .v = {2, 3, 3, 8}, .permuted = true, .mask = 1,
       .causal = true},
      {.what = "4-D, full [B,H,Tq,Tk] mask",
       .q = {2, 2, 4, 6}, .k = {2, 2, 5, 6}, .v = {2, 2, 5, 3}, .mask = 2},
      {.what = "4-D self-attention (x, x, x), [Tq,Tk] mask, causal",
       .q = {2, 2, 6, 4}, .k = {2, 2, 6, 4}, .v = {2, 2, 6, 4}, .self = true, .mask = 3,
       .causal = true},
      {.what = "4-D Transformer-like, key padding, dropout 0.2",
       .q = {3, 4, 7, 16}, .k = {3, 4, 9, 16}, .v = {3, 4, 9, 16}, .permuted = true, .mask = 1,
       .dropout = 0.2},
      {.what = "3-D Tq 1 (one decoding step), causal",
       .q = {4, 1, 8}, .k = {4, 7, 8}, .v = {4, 7, 8}, .causal = true},
  };
  // clang-format on
}

Tensor make_input(const Shape& s, const Config& c, DType dtype, Generator& gen) {
  if (c.permuted && s.size() == 4) {
    return normal({s[0], s[2], s[1], s[3]}, 0, 1, dtype, gen).permute({0, 2, 1, 3});
  }
  if (c.transposed) {
    Shape t = s;
    std::swap(t[t.size() - 1], t[t.size() - 2]);
    return normal(t, 0, 1, dtype, gen).transpose(-2, -1);
  }
  return normal(s, 0, 1, dtype, gen);
}

Tensor make_mask(const Config& c, Generator& gen) {
  const std::int64_t Tq = c.q[c.q.size() - 2], Tk = c.k[c.k.size() - 2];
  const bool four = c.q.size() == 4;
  switch (c.mask) {
    case 1: {  // key padding: entry b keeps its first Tk - (b % 3) keys
      const std::int64_t B = c.q[0];
      Tensor m = four ? Tensor::zeros({B, 1, 1, Tk}, DType::boolean)
                      : Tensor::zeros({B, 1, Tk}, DType::boolean);
      auto* p = static_cast<std::uint8_t*>(m.raw_data());
      for (std::int64_t b = 0; b < B; ++b) {
        for (std::int64_t j = 0; j < Tk - b % 3; ++j) p[b * Tk + j] = 1;
      }
      return m;
    }
    case 2: {
      Shape s = c.q;
      s.back() = Tk;
      return random_keep(s, gen);
    }
    case 3:
      return random_keep({Tq, Tk}, gen);
    default:
      return {};
  }
}

struct Run {
  Tensor out, weights, dq, dk, dv;
};

// The op (fused or reference) on fresh leaves, backward with the upstream gradient `up`.
template <class F>
Run run(const F& op, const Tensor& tq, const Tensor& tk, const Tensor& tv, const Tensor& up,
        const Config& c, SdpaOptions o) {
  const Variable q(tq, true);
  const Variable k = c.self ? q : Variable(tk, true);
  const Variable v = c.self ? q : Variable(tv, true);
  o.need_weights = true;
  const SdpaResult r = op(q, k, v, o);
  sum(r.out * Variable(up)).backward();
  Run out{r.out.data(), r.weights, q.grad(), {}, {}};
  if (!c.self) {
    out.dk = k.grad();
    out.dv = v.grad();
  }
  return out;
}

void compare_with_reference(DType dtype, double tolerance) {
  for (const Config& c : configs()) {
    CAPTURE(c.what);
    Generator gen(11);
    const Tensor tq = make_input(c.q, c, dtype, gen);
    const Tensor tk = make_input(c.k, c, dtype, gen);
    const Tensor tv = make_input(c.v, c, dtype, gen);
    SdpaOptions o;
    o.mask = make_mask(c, gen);
    o.causal = c.causal;
    o.scale = c.scale;
    o.dropout = c.dropout;
    Shape out_shape = c.q;
    out_shape.back() = c.v.back();
    const Tensor up = normal(out_shape, 0, 1, dtype, gen);
    Generator g1(99), g2(99);  // the same dropout draws on both sides
    o.gen = &g1;
    const Run fused = run(scaled_dot_product_attention, tq, tk, tv, up, c, o);
    o.gen = &g2;
    const Run ref = run(sdpa_reference, tq, tk, tv, up, c, o);
    CHECK(max_error(fused.out, ref.out) < tolerance);
    CHECK(max_error(fused.weights, ref.weights) < tolerance);
    CHECK(max_error(fused.dq, ref.dq) < tolerance);
    if (!c.self) {
      CHECK(max_error(fused.dk, ref.dk) < tolerance);
      CHECK(max_error(fused.dv, ref.dv) < tolerance);
    }
  }
}

TEST_CASE("sdpa: fused forward and backward equal the composite in float64 (1e-12)") {
  compare_with_reference(DType::f64, 1e-12);
}

TEST_CASE("sdpa: fused forward and backward equal the composite in float32 (1e-5)") {
  compare_with_reference(DType::f32, 1e-5);
}

// The traced path (SdpaOptions::trace) is built from other ops: it must give the fused op's
// numbers, and keep scores and weights whose gradients satisfy the softmax backward.
TEST_CASE("sdpa: a traced call equals the fused op and keeps scores and weights in the graph") {
  for (const Config& c : configs()) {
    if (c.dropout > 0) continue;  // a traced call takes none
    CAPTURE(c.what);
    Generator gen(11);
    const Tensor tq = make_input(c.q, c, DType::f64, gen);
    const Tensor tk = make_input(c.k, c, DType::f64, gen);
    const Tensor tv = make_input(c.v, c, DType::f64, gen);
    SdpaOptions o;
    o.mask = make_mask(c, gen);
    o.causal = c.causal;
    o.scale = c.scale;
    Shape out_shape = c.q;
    out_shape.back() = c.v.back();
    const Tensor up = normal(out_shape, 0, 1, DType::f64, gen);
    const Run fused = run(scaled_dot_product_attention, tq, tk, tv, up, c, o);
    SdpaTrace trace;
    auto traced = [&trace](const Variable& q, const Variable& k, const Variable& v,
                           SdpaOptions options) {
      options.trace = &trace;
      SdpaResult r = scaled_dot_product_attention(q, k, v, options);
      CHECK(r.out.op() != Op::scaled_dot_product_attention);  // built from other ops
      trace.scores.retain_grad();
      trace.weights.retain_grad();
      return r;
    };
    const Run t = run(traced, tq, tk, tv, up, c, o);
    CHECK(max_error(t.out, fused.out) < 1e-12);
    CHECK(max_error(t.weights, fused.weights) < 1e-12);
    CHECK(max_error(trace.weights.data(), fused.weights) < 1e-12);
    CHECK(max_error(t.dq, fused.dq) < 1e-12);
    if (!c.self) {
      CHECK(max_error(t.dk, fused.dk) < 1e-12);
      CHECK(max_error(t.dv, fused.dv) < 1e-12);
    }
    // dS = P (dP - rowsum(dP P)), from the kept weights and their gradient
    const Tensor P = trace.weights.data(), dP = trace.weights.grad();
    const Tensor dS = mul(P, sub(dP, sum(mul(dP, P), {-1}, true)));
    CHECK(max_error(trace.scores.grad(), dS) < 1e-12);
  }
  SdpaTrace trace;
  SdpaOptions with_dropout;
  with_dropout.trace = &trace;
  with_dropout.dropout = 0.1;
  Generator gen(3);
  const Variable x(normal({1, 2, 4}, 0, 1, DType::f64, gen));
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(x, x, x, with_dropout),
                       doctest::Contains("a traced call takes no dropout"), ValueError);
}

TEST_CASE("sdpa: one tape node per call, holding q, k and v") {
  Generator gen(1);
  const Variable q(normal({2, 3, 4}, 0, 1, DType::f64, gen), true);
  const Variable k(normal({2, 5, 4}, 0, 1, DType::f64, gen), true);
  const Variable v(normal({2, 5, 3}, 0, 1, DType::f64, gen), true);
  const Variable y = scaled_dot_product_attention(q, k, v).out;
  CHECK(y.op() == Op::scaled_dot_product_attention);
  REQUIRE(y.impl()->inputs.size() == 3);
  CHECK(y.impl()->inputs[0] == q.impl());
  CHECK(y.impl()->inputs[1] == k.impl());
  CHECK(y.impl()->inputs[2] == v.impl());
}

TEST_CASE_TEMPLATE("sdpa: fully masked rows give exact zeros, in the output and the gradients", T,
                   float, double) {
  const DType dtype = std::is_same_v<T, float> ? DType::f32 : DType::f64;
  Generator gen(5);
  // 4-D [2,2,3,4] queries over 5 keys; batch 1 keeps no key at all, and in batch 0 query 2 of
  // head 1 is masked out by a full mask.
  const Variable q(normal({2, 2, 3, 4}, 0, 1, dtype, gen), true);
  const Variable k(normal({2, 2, 5, 4}, 0, 1, dtype, gen), true);
  const Variable v(normal({2, 2, 5, 3}, 0, 1, dtype, gen), true);
  Tensor keep = Tensor::ones({2, 2, 3, 5}, DType::boolean);
  auto* p = static_cast<std::uint8_t*>(keep.raw_data());
  for (std::int64_t j = 0; j < 5; ++j) p[((0 * 2 + 1) * 3 + 2) * 5 + j] = 0;  // b 0, h 1, i 2
  for (std::int64_t e = 30; e < 60; ++e) p[e] = 0;                            // all of b 1
  SdpaOptions o;
  o.mask = keep;
  o.need_weights = true;
  const SdpaResult r = scaled_dot_product_attention(q, k, v, o);
  sum(r.out * Variable(normal({2, 2, 3, 3}, 0, 1, dtype, gen))).backward();
  for (std::int64_t d = 0; d < 3; ++d) CHECK(r.out.data().at({0, 1, 2, d}) == 0.0);
  for (std::int64_t d = 0; d < 4; ++d) CHECK(q.grad().at({0, 1, 2, d}) == 0.0);
  for (std::int64_t j = 0; j < 5; ++j) CHECK(r.weights.at({0, 1, 2, j}) == 0.0);
  for (const Tensor& t : {r.out.data().select(0, 1), q.grad().select(0, 1), k.grad().select(0, 1),
                          v.grad().select(0, 1), r.weights.select(0, 1)}) {
    const auto values = t.to_vector<double>();
    CHECK(std::all_of(values.begin(), values.end(), [](double x) { return x == 0.0; }));
  }
  // the rows that do see keys are untouched by the empty ones
  CHECK(r.out.data().at({0, 1, 1, 0}) != 0.0);
  CHECK(std::isfinite(sum(q.grad()).item()));
}

TEST_CASE("sdpa: causal is bottom-right aligned (a single query sees every key)") {
  Generator gen(8);
  const Variable q(normal({2, 1, 4}, 0, 1, DType::f64, gen));
  const Variable k(normal({2, 6, 4}, 0, 1, DType::f64, gen));
  const Variable v(normal({2, 6, 3}, 0, 1, DType::f64, gen));
  SdpaOptions causal;
  causal.causal = true;
  causal.need_weights = true;
  SdpaOptions unmasked;
  unmasked.need_weights = true;
  const SdpaResult a = scaled_dot_product_attention(q, k, v, causal);
  const SdpaResult b = scaled_dot_product_attention(q, k, v, unmasked);
  CHECK(max_error(a.out.data(), b.out.data()) == 0.0);
  for (std::int64_t j = 0; j < 6; ++j) CHECK(a.weights.at({1, 0, j}) > 0.0);
  // Tq 3 over Tk 5: query i sees keys j <= i + 2
  const Variable q3(normal({1, 3, 4}, 0, 1, DType::f64, gen));
  const SdpaResult c =
      scaled_dot_product_attention(q3, narrow(k, 0, 0, 1), narrow(v, 0, 0, 1), causal);
  const SdpaResult c5 = scaled_dot_product_attention(q3, narrow(narrow(k, 0, 0, 1), 1, 0, 5),
                                                     narrow(narrow(v, 0, 0, 1), 1, 0, 5), causal);
  for (std::int64_t i = 0; i < 3; ++i) {
    for (std::int64_t j = 0; j < 5; ++j) {
      CAPTURE(i);
      CAPTURE(j);
      CHECK((c5.weights.at({0, i, j}) > 0.0) == (j <= i + 2));
    }
  }
  // with Tk 6 the last query of three sees all six keys
  CHECK(c.weights.at({0, 2, 5}) > 0.0);
  CHECK(c.weights.at({0, 0, 4}) == 0.0);
}

TEST_CASE("sdpa: need_weights returns rows that sum to 1, and 0 for a fully masked row") {
  Generator gen(2);
  const Variable q(normal({2, 4, 5}, 0, 1, DType::f64, gen));
  const Variable k(normal({2, 6, 5}, 0, 1, DType::f64, gen));
  const Variable v(normal({2, 6, 2}, 0, 1, DType::f64, gen));
  SdpaOptions o;
  o.mask = boolean({1, 1, 0, 1, 0, 1, /**/ 0, 0, 0, 0, 0, 0}, {2, 1, 6});
  o.dropout = 0.5;  // the weights are returned before dropout
  o.need_weights = true;
  const SdpaResult r = scaled_dot_product_attention(q, k, v, o);
  REQUIRE(r.weights.shape() == Shape{2, 4, 6});
  for (std::int64_t i = 0; i < 4; ++i) {
    double s0 = 0, s1 = 0;
    for (std::int64_t j = 0; j < 6; ++j) {
      s0 += r.weights.at({0, i, j});
      s1 += r.weights.at({1, i, j});
    }
    CHECK(s0 == doctest::Approx(1.0).epsilon(1e-14));
    CHECK(s1 == 0.0);
    CHECK(r.weights.at({0, i, 2}) == 0.0);
  }
  CHECK_FALSE(scaled_dot_product_attention(q, k, v).weights.defined());
}

TEST_CASE("sdpa: dropout keeps the weights' mean, repeats with a seed, and p = 0 changes nothing") {
  Generator gen(4);
  // v the identity [Tk,Tk]: the output is the dropped weights themselves.
  const std::int64_t Tk = 5;
  const Variable q(normal({1, 3, 4}, 0, 1, DType::f64, gen));
  const Variable k(normal({1, Tk, 4}, 0, 1, DType::f64, gen));
  Tensor eye = Tensor::zeros({1, Tk, Tk}, DType::f64);
  for (std::int64_t j = 0; j < Tk; ++j) eye.data<double>()[j * Tk + j] = 1;
  const Variable v(eye);
  SdpaOptions plain;
  plain.need_weights = true;
  const SdpaResult base = scaled_dot_product_attention(q, k, v, plain);
  CHECK(max_error(base.out.data(), base.weights) < 1e-15);

  SdpaOptions o;
  o.dropout = 0.25;
  Generator draws(123);
  o.gen = &draws;
  constexpr int kDraws = 4000;
  Tensor total = Tensor::zeros({1, 3, Tk}, DType::f64);
  for (int n = 0; n < kDraws; ++n) {
    const Tensor y = scaled_dot_product_attention(q, k, v, o).out.data();
    // each weight is either dropped or scaled by 1 / (1 - p)
    for (std::int64_t e = 0; e < y.numel(); ++e) {
      const double got = y.data<double>()[e], w = base.weights.data<double>()[e];
      if (got != 0.0 && std::abs(got - w / 0.75) > 1e-15) FAIL("weight " << e << " is " << got);
    }
    add_(total, y);
  }
  // mean over draws: standard error sqrt(p / (1 - p) / n) w <= 0.0092 w
  const Tensor average = affine(total, 1.0 / kDraws, 0.0);
  for (std::int64_t e = 0; e < average.numel(); ++e) {
    const double w = base.weights.data<double>()[e];
    CHECK(std::abs(average.data<double>()[e] - w) < 0.04 * w + 1e-12);
  }

  // the same seed gives the same output and gradients
  auto once = [&](std::uint64_t seed) {
    Generator g(seed);
    SdpaOptions d;
    d.dropout = 0.4;
    d.gen = &g;
    const Variable qq(q.data(), true);
    const Variable y = scaled_dot_product_attention(qq, k, v, d).out;
    sum(y * y).backward();
    return std::pair{y.data(), qq.grad()};
  };
  const auto [y1, g1] = once(77);
  const auto [y2, g2] = once(77);
  const auto [y3, g3] = once(78);
  CHECK(max_error(y1, y2) == 0.0);
  CHECK(max_error(g1, g2) == 0.0);
  CHECK(max_error(y1, y3) > 0.0);

  // p = 0 is no dropout: the same bits, and no draw from the generator
  Generator g0(5);
  const auto before = g0.state();
  SdpaOptions zero;
  zero.dropout = 0.0;
  zero.gen = &g0;
  CHECK(max_error(scaled_dot_product_attention(q, k, v, zero).out.data(), base.out.data()) == 0.0);
  CHECK(g0.state() == before);
}

TEST_CASE("sdpa: errors name the op and every shape") {
  const Variable q(Tensor::zeros({2, 3, 4}, DType::f64)), k(Tensor::zeros({2, 5, 4}, DType::f64)),
      v(Tensor::zeros({2, 5, 6}, DType::f64));
  CHECK_THROWS_WITH_AS(
      scaled_dot_product_attention(q, Variable(Tensor::zeros({2, 5, 3}, DType::f64)), v),
      "scaled_dot_product_attention: q [2,3,4], k [2,5,3], v [2,5,6] must be [..,Tq,D], "
      "[..,Tk,D] and [..,Tk,Dv] with the same leading axes (3-D or 4-D)",
      ShapeError);
  CHECK_THROWS_AS(scaled_dot_product_attention(Variable(Tensor::zeros({3, 4}, DType::f64)),
                                               Variable(Tensor::zeros({5, 4}, DType::f64)),
                                               Variable(Tensor::zeros({5, 6}, DType::f64))),
                  ShapeError);
  CHECK_THROWS_WITH_AS(
      scaled_dot_product_attention(q, Variable(Tensor::zeros({2, 5, 4})), v),
      "scaled_dot_product_attention: q float64[2,3,4], k float32[2,5,4], v float64[2,5,6] must "
      "share one float dtype",
      DTypeError);
  SdpaOptions o;
  o.mask = Tensor::ones({2, 3, 4}, DType::boolean);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, o),
                       doctest::Contains("scaled_dot_product_attention: mask [2,3,4] does not "
                                         "broadcast to the scores [2,3,5] of q [2,3,4], k "
                                         "[2,5,4], v [2,5,6]"),
                       ShapeError);
  o.mask = Tensor::ones({2, 1, 5}, DType::f64);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, o),
                       "scaled_dot_product_attention: the mask must be bool (true keeps), got "
                       "float64[2,1,5]",
                       DTypeError);
  SdpaOptions d;
  d.dropout = 1.0;
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, d),
                       "scaled_dot_product_attention: dropout 1 is outside [0, 1)", ValueError);
}

// --- GELU ---------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("gelu: values, both forms, SIMD body and scalar tail agree", T, float, double) {
  const DType dtype = std::is_same_v<T, float> ? DType::f32 : DType::f64;
  // 19 values: a SIMD body and a tail for every lane count
  const Tensor x = Tensor::from_list(
      {-30, -9, -5, -3, -1.5, -1, -0.5, -1e-3, -1e-7, 0, 1e-7, 1e-3, 0.5, 1, 1.5, 3, 5, 9, 30},
      {19}, dtype);
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-14;
  const Tensor exact = gelu(x), approx = gelu(x, true);
  // Strided input: every element goes through the scalar path.
  Tensor xs_view = Tensor::zeros({19, 2}, dtype).narrow(1, 0, 1).squeeze(1);
  xs_view.copy_from(x);
  const Tensor exact_s = gelu(xs_view), approx_s = gelu(xs_view, true);
  for (std::int64_t i = 0; i < 19; ++i) {
    const double xi = x.at({i});
    const double want = 0.5 * xi * std::erfc(-xi / std::sqrt(2.0));
    const double u = std::sqrt(2.0 / std::numbers::pi) * (xi + 0.044715 * xi * xi * xi);
    const double want_tanh = 0.5 * xi * (1 + std::tanh(u));
    CAPTURE(xi);
    CHECK(std::abs(exact.at({i}) - want) <= tol * std::max(1.0, std::abs(want)));
    CHECK(std::abs(approx.at({i}) - want_tanh) <= tol * std::max(1.0, std::abs(want_tanh)));
    CHECK(std::abs(exact_s.at({i}) - exact.at({i})) <= tol * std::max(1.0, std::abs(want)));
    CHECK(std::abs(approx_s.at({i}) - approx.at({i})) <= tol * std::max(1.0, std::abs(want)));
  }
  CHECK(exact.at({9}) == 0.0);
  CHECK(exact.at({18}) == 30.0);            // Phi(30) is 1
  CHECK(std::abs(exact.at({0})) < 1e-150);  // -30 Phi(-30): -1.5e-196 (0 in float)
  CHECK(approx.at({18}) == 30.0);
  // the tails keep their precision: gelu(-5) = -5 Phi(-5) = -1.4333e-6
  CHECK(exact.at({2}) == doctest::Approx(-5 * 0.5 * std::erfc(5 / std::sqrt(2.0))).epsilon(1e-5));
  // the backward, both forms, at large |x|: 0 and 1
  const Tensor ones = Tensor::ones({19}, dtype);
  for (const bool form : {false, true}) {
    const Tensor d = gelu_backward(x, ones, form);
    CHECK(std::abs(d.at({0})) < 1e-30);  // exact form: -30 phi(-30), about 1e-194
    CHECK(d.at({18}) == 1.0);
    CHECK(d.at({9}) == doctest::Approx(0.5));
  }
}

// --- PyTorch parity -----------------------------------------------------------------------------

using nlohmann::json;

json dump(const Tensor& t) {
  return {{"shape", t.shape()}, {"data", t.to_vector<double>()}};
}

struct ParityCase {
  std::string label;
  json spec;
  std::map<std::string, Tensor> values;  // "out" and the gradients "dq", "dk", "dv" / "dx"
};

std::vector<ParityCase> parity_cases(DType dtype) {
  Generator gen(dtype == DType::f64 ? 31 : 32);
  const std::string dname(dtype_name(dtype));
  std::vector<ParityCase> cases;
  // clang-format off
  const std::vector<Config> sdpa = {
      {.what = "3-D, no mask", .q = {3, 4, 5}, .k = {3, 6, 5}, .v = {3, 6, 3}},
      {.what = "4-D key padding, causal Tq 4 < Tk 6, scale 0.3",
       .q = {2, 2, 4, 8}, .k = {2, 2, 6, 8}, .v = {2, 2, 6, 5}, .mask = 1, .causal = true,
       .scale = 0.3},
      {.what = "4-D full mask, heads split by permute",
       .q = {2, 3, 5, 4}, .k = {2, 3, 7, 4}, .v = {2, 3, 7, 4}, .permuted = true, .mask = 2},
      {.what = "self-attention (x, x, x), causal",
       .q = {2, 2, 5, 6}, .k = {2, 2, 5, 6}, .v = {2, 2, 5, 6}, .self = true, .causal = true},
  };
  // clang-format on
  for (const Config& s : sdpa) {
    const Variable q(make_input(s.q, s, dtype, gen), true);
    const Variable k = s.self ? q : Variable(make_input(s.k, s, dtype, gen), true);
    const Variable v = s.self ? q : Variable(make_input(s.v, s, dtype, gen), true);
    SdpaOptions o;
    o.mask = make_mask(s, gen);
    o.causal = s.causal;
    o.scale = s.scale;
    const Variable y = scaled_dot_product_attention(q, k, v, o).out;
    const Tensor up = normal(y.shape(), 0, 1, dtype, gen);
    sum(y * Variable(up)).backward();
    const double scale = s.scale > 0 ? s.scale : 1.0 / std::sqrt(static_cast<double>(s.q.back()));
    json spec = {{"kind", "sdpa"},      {"dtype", dname},      {"q", dump(q.data())},
                 {"k", dump(k.data())}, {"v", dump(v.data())}, {"causal", s.causal},
                 {"scale", scale},      {"self", s.self},      {"upstream", dump(up)}};
    spec["mask"] = o.mask.defined() ? dump(o.mask) : json(nullptr);
    ParityCase pc{s.what, spec, {{"out", y.data()}, {"dq", q.grad()}}};
    if (!s.self) {
      pc.values["dk"] = k.grad();
      pc.values["dv"] = v.grad();
    }
    cases.push_back(std::move(pc));
  }
  for (const bool tanh_form : {false, true}) {
    Tensor xs = normal({41}, 0, 3, dtype, gen);
    const std::vector<double> special{0, 1e-4, -1e-4, 8, -8, 20, -20, 1e-9};
    for (std::size_t i = 0; i < special.size(); ++i) {
      xs.narrow(0, static_cast<std::int64_t>(i), 1).fill_(special[i]);
    }
    const Variable x(xs, true);
    const Variable y = gelu(x, tanh_form);
    const Tensor up = normal(y.shape(), 0, 1, dtype, gen);
    sum(y * Variable(up)).backward();
    json spec = {{"kind", "gelu"},
                 {"dtype", dname},
                 {"approximate", tanh_form ? "tanh" : "none"},
                 {"x", dump(x.data())},
                 {"upstream", dump(up)}};
    cases.push_back({fmt::format("gelu approximate={}", tanh_form ? "tanh" : "none"),
                     spec,
                     {{"out", y.data()}, {"dx", x.grad()}}});
  }
  return cases;
}

void check_parity(DType dtype, double tolerance) {
  const std::vector<ParityCase> cases = parity_cases(dtype);
  json all = json::array();
  for (const auto& c : cases) all.push_back(c.spec);
  const std::optional<json> found = testing::run_python_json("sdpa_parity.py", all);
  REQUIRE_MESSAGE(found.has_value(),
                  "PyTorch parity script failed: is python3-torch installed for "
                  "/usr/bin/python3? (scripts/test installs it)");
  const json& results = *found;
  REQUIRE(results.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].label);
    const json& r = results[i];
    const std::string impl = r.at("impl").get<std::string>();
    CAPTURE(impl);
    REQUIRE(r.at("values").size() == cases[i].values.size());
    for (const auto& [name, t] : cases[i].values) {
      CAPTURE(name);
      const json& theirs = r.at("values").at(name);
      REQUIRE(Shape(theirs.at("shape").get<std::vector<std::int64_t>>()) == t.shape());
      const Tensor them =
          Tensor::from_vector(theirs.at("data").get<std::vector<double>>(), t.shape());
      CHECK(max_error(t, them) < tolerance);
    }
  }
}

TEST_CASE("sdpa parity: torch scaled dot-product attention and gelu in float64 (1e-10)") {
  check_parity(DType::f64, 1e-10);
}

TEST_CASE("sdpa parity: the same in float32 (1e-5)") {
  check_parity(DType::f32, 1e-5);
}

}  // namespace
}  // namespace seqgrad
