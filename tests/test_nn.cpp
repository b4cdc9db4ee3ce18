// nn layers: naming and layout of parameters (PyTorch's), behaviour of each layer, padded
// recurrent batches, losses, and a gradcheck of every layer in float64.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.h"
#include "nn/nn.h"

namespace seqgrad {
namespace {

// A parent with children, to check hierarchical names.
struct Net : Module {
  Embedding embed;
  RNN rnn;
  Linear out;
  explicit Net(Generator& gen)
      : embed(10, 4, 0, gen),
        rnn(RNNOptions{.cell = CellType::lstm,
                       .input_size = 4,
                       .hidden_size = 3,
                       .num_layers = 2,
                       .bidirectional = true},
            gen),
        out(6, 10, true, gen) {
    register_module("embed", embed);
    register_module("rnn", rnn);
    register_module("out", out);
  }
};

TEST_CASE("nn: hierarchical parameter names, shapes and counts follow PyTorch") {
  Generator gen(1);
  Net net(gen);
  const auto named = net.named_parameters();
  std::vector<std::string> names;
  for (const auto& [n, p] : named) names.push_back(n);
  CHECK(names.front() == "embed.weight");
  CHECK(net.parameter("rnn.weight_ih_l0").shape() == Shape{12, 4});
  CHECK(net.parameter("rnn.weight_hh_l0_reverse").shape() == Shape{12, 3});
  CHECK(net.parameter("rnn.weight_ih_l1").shape() == Shape{12, 6});  // input is 2H
  CHECK(net.parameter("rnn.bias_hh_l1_reverse").shape() == Shape{12});
  CHECK(net.parameter("out.weight").shape() == Shape{10, 6});
  CHECK(names.back() == "out.bias");
  CHECK(named.size() == 1 + 16 + 2);
  // embed 10*4, layer 0 2*(48+36+24), layer 1 2*(72+36+24), out 10*6+10
  CHECK(net.num_parameters() == 40 + 216 + 264 + 70);
  CHECK_THROWS_WITH_AS(net.parameter("rnn.nope"),
                       doctest::Contains("no parameter named 'rnn.nope'"), ValueError);
}

TEST_CASE("nn: train/eval reaches children, to(dtype) converts in place") {
  Generator gen(1);
  Net net(gen);
  net.eval();
  CHECK_FALSE(net.rnn.training());
  net.train();
  CHECK(net.out.training());
  Variable w = net.out.weight;
  net.to(DType::f64);
  CHECK(w.dtype() == DType::f64);  // the handle the layer holds sees the change
  CHECK(net.parameter("rnn.weight_ih_l0").dtype() == DType::f64);
}

TEST_CASE("nn: GRU and RNN parameter shapes") {
  RNN gru(RNNOptions{.cell = CellType::gru, .input_size = 5, .hidden_size = 2});
  CHECK(gru.parameter("weight_ih_l0").shape() == Shape{6, 5});
  RNN rnn(RNNOptions{.cell = CellType::rnn_tanh, .input_size = 5, .hidden_size = 2});
  CHECK(rnn.parameter("weight_hh_l0").shape() == Shape{2, 2});
  CHECK(parse_cell("gru") == CellType::gru);
  CHECK_THROWS_WITH_AS(parse_cell("lstn"), doctest::Contains("known: rnn, gru, lstm"), ValueError);
}

TEST_CASE("nn: Linear computes x W^T + b on 2-D, 3-D and 4-D inputs") {
  Linear lin(2, 3, true);
  lin.weight.data().copy_from(Tensor::from_list({1, 2, 3, 4, 5, 6}, {3, 2}));
  lin.bias.data().copy_from(Tensor::from_list({0.5, 0, -1}, {3}));
  Variable x(Tensor::from_list({1, 1, 2, 0}, {2, 2}));
  CHECK(lin(x).data().to_vector<float>() == std::vector<float>{3.5, 7, 10, 2.5, 6, 9});
  Variable x4(Tensor::ones({2, 2, 1, 2}));
  CHECK(lin(x4).shape() == Shape{2, 2, 1, 3});
  CHECK(lin(Variable(Tensor::ones({3, 2, 2}))).shape() == Shape{3, 2, 3});
  CHECK_THROWS_WITH_AS(lin(Variable(Tensor::ones({2, 5}))),
                       doctest::Contains("Linear: input [2,5] must end in the 2 input features"),
                       ShapeError);
}

TEST_CASE_TEMPLATE("nn: Linear through its packed weight gives forward's values and gradients", T,
                   float, double) {
  const DType dt = dtype_of<T>();
  const double eps = dt == DType::f32 ? 1e-5 : 1e-12;
  Generator gen(3);
  Linear lin(70, 50, true, gen, dt);
  const Tensor xv = normal({9, 70}, 0, 1, dt, gen);
  auto run = [&](const Linear::Packed* packed) {
    lin.zero_grad();
    Variable x(xv, true);
    const Variable y = packed != nullptr ? lin.forward(x, *packed) : lin(x);
    sum(y * y).backward();
    std::vector<double> values = y.data().template to_vector<double>();
    for (const Tensor& g : {x.grad(), lin.weight.grad(), lin.bias.grad()}) {
      for (const double v : g.contiguous().template to_vector<double>()) values.push_back(v);
    }
    return values;
  };
  const std::vector<double> plain = run(nullptr);
  const Linear::Packed packed = lin.packed();
  CHECK(packed.w.defined());
  CHECK(packed.w_t.packed() == (dt == DType::f32));
  const std::vector<double> fast = run(&packed);
  REQUIRE(fast.size() == plain.size());
  for (std::size_t i = 0; i < fast.size(); ++i) {
    CHECK(fast[i] == doctest::Approx(plain[i]).epsilon(eps));
  }
  {
    NoGradGuard no_grad;
    CHECK_FALSE(lin.packed().w.defined());
  }
  CHECK_THROWS_WITH_AS(lin.forward(Variable(Tensor::ones({2, 3, 70}, dt)), packed),
                       "Linear: input [2,3,70] must be [B,70] for the packed weight", ShapeError);
}

TEST_CASE("nn: Embedding looks up rows, the padding row starts at zero") {
  Embedding emb(5, 3, 2);
  CHECK(emb.weight.data().select(0, 2).to_vector<float>() == std::vector<float>{0, 0, 0});
  const Variable y = emb(Tensor::from_list({4, 2}, {2}, DType::i64));
  CHECK(y.data().select(0, 0).to_vector<float>() ==
        emb.weight.data().select(0, 4).to_vector<float>());
  CHECK_THROWS_AS(emb(Tensor::from_list({7}, {1}, DType::i64)), IndexError);
  CHECK_THROWS_AS(Embedding(5, 3, 5), IndexError);
}

TEST_CASE("nn: Dropout zeroes about p, scales the rest, is the identity in eval") {
  Generator gen(3);
  Dropout drop(0.25, gen);
  const Variable x(Tensor::ones({20000}));
  const auto y = drop(x).data().to_vector<float>();
  std::int64_t zeros = 0;
  for (float v : y) {
    if (v == 0) {
      ++zeros;
    } else {
      CHECK(v == doctest::Approx(1 / 0.75));
    }
  }
  CHECK(static_cast<double>(zeros) / 20000 == doctest::Approx(0.25).epsilon(0.05));
  drop.eval();
  CHECK(drop(x).data().to_vector<float>() == x.data().to_vector<float>());
  CHECK_THROWS_AS(Dropout(1.0), ValueError);
}

TEST_CASE("nn: LayerNorm normalises the last axis") {
  LayerNorm ln(4);
  const Variable y = ln(Variable(Tensor::from_list({1, 2, 3, 4, -1, 0, 5, 8}, {2, 4})));
  for (std::int64_t r = 0; r < 2; ++r) {
    const auto row = y.data().select(0, r).to_vector<double>();
    double m = 0, v = 0;
    for (double e : row) m += e / 4;
    for (double e : row) v += (e - m) * (e - m) / 4;
    CHECK(m == doctest::Approx(0).epsilon(1e-6));
    CHECK(v == doctest::Approx(1).epsilon(1e-3));
  }
}

TEST_CASE("nn: cross_entropy values, ignore_index, label smoothing, reductions") {
  const Variable logits(Tensor::from_list({1, 2, 3, 0, 0, 0}, {2, 3}, DType::f64));
  const Tensor targets = Tensor::from_list({2, 1}, {2}, DType::i64);
  const double lse0 = std::log(std::exp(1) + std::exp(2) + std::exp(3));
  const double l0 = lse0 - 3, l1 = std::log(3.0);
  CHECK(cross_entropy(logits, targets).item() == doctest::Approx((l0 + l1) / 2));
  CHECK(cross_entropy(logits, targets, {.reduction = Reduction::sum}).item() ==
        doctest::Approx(l0 + l1));
  const Tensor with_pad = Tensor::from_list({2, -100}, {2}, DType::i64);
  CHECK(cross_entropy(logits, with_pad).item() == doctest::Approx(l0));
  // smoothing 0.1: (1 - 0.1) * nll + 0.1 * mean_c(-log p_c)
  const double smooth0 = lse0 - 2;  // mean of -log p over classes of row 0
  CHECK(cross_entropy(logits, with_pad, {.label_smoothing = 0.1}).item() ==
        doctest::Approx(0.9 * l0 + 0.1 * smooth0));
  const auto none = cross_entropy(logits, with_pad, {.reduction = Reduction::none});
  CHECK(none.data().to_vector<double>()[1] == 0.0);
  CHECK_THROWS_AS(cross_entropy(logits, Tensor::from_list({3, 0}, {2}, DType::i64)), IndexError);
  CHECK_THROWS_AS(cross_entropy(logits, Tensor::from_list({1}, {1}, DType::i64)), ShapeError);
}

TEST_CASE("nn: cross_entropy is exact for large logits, an all-ignored batch gives 0, zero grad") {
  // Logits near 1e4 in float32: log p = (x - max) - log sum is exact to float precision, where
  // x - (max + log sum) would round at the ulp of 1e4 (about 1e-3).
  const std::vector<float> x{10000.0F, 10001.5F, 9999.25F, 10000.75F, 10002.0F};
  Variable logits(Tensor::from_vector(x, {1, 5}), true);
  double lse = 0;
  for (float v : x) lse += std::exp(static_cast<double>(v) - 10002.0);
  const double want = (10002.0 + std::log(lse)) - 10001.5;  // target 1
  const Variable loss = cross_entropy(logits, Tensor::from_list({1}, {1}, DType::i64));
  CHECK(std::abs(loss.item() - want) < 1e-6);
  loss.backward();
  // dx_j = p_j - [j == 1]
  for (std::int64_t j = 0; j < 5; ++j) {
    const double p = std::exp(static_cast<double>(x[j]) - 10002.0) / lse;
    CHECK(std::abs(logits.grad().at({0, j}) - (p - (j == 1))) < 1e-6);
  }

  Variable pad(Tensor::from_list({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64), true);
  const Tensor all_pad = Tensor::from_list({-100, -100}, {2}, DType::i64);
  const Variable zero = cross_entropy(pad, all_pad, {.label_smoothing = 0.1});
  CHECK(zero.item() == 0.0);
  zero.backward();
  for (double g : pad.grad().to_vector<double>()) CHECK(g == 0.0);
}

TEST_CASE("nn: fused cross_entropy matches log_softmax + gather, every reduction and dtype") {
  for (DType dtype : {DType::f32, DType::f64}) {
    for (Reduction reduction : {Reduction::none, Reduction::sum, Reduction::mean}) {
      for (double eps : {0.0, 0.1}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(static_cast<int>(reduction));
        CAPTURE(eps);
        Generator gen(4);
        // V 37: SIMD body and tail in either dtype; row 2 ignored
        Variable logits(normal({5, 37}, 0, 3, dtype, gen), true);
        const Tensor t = Tensor::from_list({36, 0, -100, 17, 5}, {5}, DType::i64);
        const Tensor dy = reduction == Reduction::none ? normal({5}, 0, 1, dtype, gen)
                                                       : Tensor::scalar(0.7, dtype);
        const Variable fused =
            cross_entropy(logits, t, {.label_smoothing = eps, .reduction = reduction});
        fused.backward(dy);
        const Tensor fused_grad = logits.grad();
        logits.zero_grad();
        // The composed formula the fused op replaced.
        const Tensor safe = Tensor::from_list({36, 0, 0, 17, 5}, {5, 1}, DType::i64);
        const Tensor w = Tensor::from_list({1, 1, 0, 1, 1}, {5}, dtype);
        const Variable logp = log_softmax(logits, 1);
        Variable per = -reshape(gather(logp, 1, safe), {-1}) * (1.0 - eps) - mean(logp, {1}) * eps;
        per = per * Variable(w);
        const Variable composed = reduction == Reduction::none  ? per
                                  : reduction == Reduction::sum ? sum(per)
                                                                : sum(per) * 0.25;
        composed.backward(dy);
        const double tol = dtype == DType::f32 ? 1e-5 : 1e-12;
        const auto a = fused.data().to_vector<double>(), b = composed.data().to_vector<double>();
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) CHECK(std::abs(a[i] - b[i]) < tol * 10);
        const auto ga = fused_grad.to_vector<double>(), gb = logits.grad().to_vector<double>();
        for (std::size_t i = 0; i < ga.size(); ++i) CHECK(std::abs(ga[i] - gb[i]) < tol);
      }
    }
  }
}

// Runs `rnn` on a padded batch and on each sequence alone; they must agree.
void check_padding_matches_alone(CellType cell, bool bidirectional) {
  CAPTURE(cell_name(cell));
  CAPTURE(bidirectional);
  Generator gen(5);
  RNN rnn(RNNOptions{.cell = cell,
                     .input_size = 3,
                     .hidden_size = 4,
                     .num_layers = 2,
                     .bidirectional = bidirectional,
                     .dtype = DType::f64},
          gen);
  const std::vector<std::int64_t> lengths{5, 2, 4};
  const Tensor x = normal({3, 5, 3}, 0, 1, DType::f64, gen);
  const RNNOutput batch = rnn.forward(Variable(x), lengths);
  const std::int64_t D = bidirectional ? 2 : 1;
  for (std::int64_t b = 0; b < 3; ++b) {
    const std::int64_t len = lengths[b];
    const RNNOutput alone = rnn.forward(Variable(x.narrow(0, b, 1).narrow(1, 0, len)));
    const Tensor out_b = batch.output.data().narrow(0, b, 1);
    const auto got = out_b.narrow(1, 0, len).to_vector<double>();
    const auto want = alone.output.data().to_vector<double>();
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
    for (double v : out_b.narrow(1, len, 5 - len).to_vector<double>()) CHECK(v == 0.0);
    const auto h_got = batch.state.h.data().narrow(1, b, 1).to_vector<double>();
    const auto h_want = alone.state.h.data().to_vector<double>();
    REQUIRE(h_got.size() == static_cast<std::size_t>(2 * D * 4));
    for (std::size_t i = 0; i < h_got.size(); ++i) {
      CHECK(h_got[i] == doctest::Approx(h_want[i]).epsilon(1e-12));
    }
    if (cell == CellType::lstm) {
      const auto c_got = batch.state.c.data().narrow(1, b, 1).to_vector<double>();
      const auto c_want = alone.state.c.data().to_vector<double>();
      for (std::size_t i = 0; i < c_got.size(); ++i) {
        CHECK(c_got[i] == doctest::Approx(c_want[i]).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("nn: a padded batch gives each sequence what it gets alone, both directions") {
  for (CellType cell : {CellType::rnn_tanh, CellType::gru, CellType::lstm}) {
    check_padding_matches_alone(cell, false);
    check_padding_matches_alone(cell, true);
  }
}

TEST_CASE("nn: RNN::step matches forward one step at a time") {
  Generator gen(9);
  RNN rnn(RNNOptions{.cell = CellType::gru,
                     .input_size = 2,
                     .hidden_size = 3,
                     .num_layers = 2,
                     .dtype = DType::f64},
          gen);
  const Tensor x = normal({2, 4, 2}, 0, 1, DType::f64, gen);
  const RNNOutput full = rnn.forward(Variable(x));
  RNNState s;
  for (std::int64_t t = 0; t < 4; ++t) {
    const RNNOutput o = rnn.step(Variable(x.select(1, t)), s);
    s = o.state;
    const auto got = o.output.data().to_vector<double>();
    const auto want = full.output.data().select(1, t).to_vector<double>();
    for (std::size_t i = 0; i < got.size(); ++i)
      CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
  }
  CHECK_THROWS_AS(rnn.forward(Variable(x), {5, 1}), ValueError);
  CHECK_THROWS_AS(rnn.forward(Variable(x), {1}), ShapeError);
}

TEST_CASE_TEMPLATE("nn: RNN::step with packed weights gives the same outputs and gradients", T,
                   float, double) {
  const DType dt = dtype_of<T>();
  for (const CellType cell : {CellType::lstm, CellType::gru}) {
    CAPTURE(cell_name(cell));
    Generator gen(12);
    RNN rnn(
        RNNOptions{.cell = cell, .input_size = 3, .hidden_size = 4, .num_layers = 2, .dtype = dt},
        gen);
    const Tensor x = normal({2, 3, 3}, 0, 1, dt, gen);
    // The sum of every step's output, and the parameters' gradients from it.
    auto run = [&](const RNN::StepWeights* dense) {
      rnn.zero_grad();
      RNNState s;
      Variable total;
      for (std::int64_t t = 0; t < 3; ++t) {
        const RNNOutput o = rnn.step(Variable(x.select(1, t)), s, dense);
        s = o.state;
        const Variable out = sum(o.output * o.output);
        total = total.defined() ? total + out : out;
      }
      total.backward();
      std::vector<double> values{total.item()};
      for (const Variable& p : rnn.parameters()) {
        for (const double g : p.grad().contiguous().to_vector<double>()) values.push_back(g);
      }
      return values;
    };
    const std::vector<double> plain = run(nullptr);
    const RNN::StepWeights packed = rnn.step_weights();
    REQUIRE(packed.ih_t.size() == 2);
    REQUIRE(packed.hh.size() == 2);
    CHECK(packed.ih_t[1].matrix().shape() == Shape{4, cell == CellType::lstm ? 16 : 12});
    CHECK(packed.ih_t[1].packed() == (dt == DType::f32));
    const std::vector<double> fast = run(&packed);
    REQUIRE(fast.size() == plain.size());
    const double eps = dt == DType::f32 ? 1e-5 : 1e-12;
    for (std::size_t i = 0; i < fast.size(); ++i)
      CHECK(fast[i] == doctest::Approx(plain[i]).epsilon(eps));
    {
      NoGradGuard no_grad;
      CHECK(rnn.step_weights().hh.empty());
    }
  }
}

// --- gradcheck of every layer, float64, parameters included ---

Variable flat(const Variable& v) {
  return reshape(v, {-1});
}

TEST_CASE("nn gradcheck: Linear, Embedding, LayerNorm, cross_entropy") {
  Generator gen(11);
  {
    Linear lin(3, 2, true, gen, DType::f64);
    const auto r = gradcheck([&](const std::vector<Variable>& x) { return lin(x[0]); },
                             {normal({2, 2, 3}, 0, 1, DType::f64, gen)}, {}, lin.parameters());
    CAPTURE(r.worst);
    CHECK(r.passed);
  }
  {
    Embedding emb(4, 3, -1, gen, DType::f64);
    const Tensor ids = Tensor::from_list({3, 0, 3, 1}, {2, 2}, DType::i64);
    const auto r = gradcheck([&](const std::vector<Variable>& x) { return emb(ids) * x[0]; },
                             {normal({3}, 0, 1, DType::f64, gen)}, {}, emb.parameters());
    CAPTURE(r.worst);
    CHECK(r.passed);
  }
  {
    LayerNorm ln(4, 1e-5, true, DType::f64);
    ln.weight.data().copy_from(normal({4}, 1, 0.5, DType::f64, gen));
    ln.bias.data().copy_from(normal({4}, 0, 0.5, DType::f64, gen));
    const auto r = gradcheck([&](const std::vector<Variable>& x) { return ln(x[0]); },
                             {normal({3, 4}, 0, 1, DType::f64, gen)}, {}, ln.parameters());
    CAPTURE(r.worst);
    CHECK(r.passed);
  }
  {
    const Tensor targets = Tensor::from_list({2, -100, 0}, {3}, DType::i64);
    for (double smoothing : {0.0, 0.2}) {
      const auto r = gradcheck(
          [&](const std::vector<Variable>& x) {
            return cross_entropy(x[0], targets, {.label_smoothing = smoothing});
          },
          {normal({3, 4}, 0, 1, DType::f64, gen)});
      CAPTURE(r.worst);
      CHECK(r.passed);
    }
  }
}

TEST_CASE("nn gradcheck: Dropout (one fixed mask) and Xavier initialisation bounds") {
  // The mask is random; reseeding inside the function gives every evaluation the same one, so
  // the finite differences see the function backward differentiates.
  Generator gen(19);
  Dropout drop(0.3, gen);
  const auto r = gradcheck(
      [&](const std::vector<Variable>& x) {
        gen.manual_seed(5);
        return drop(x[0]);
      },
      {normal({3, 4}, 0, 1, DType::f64, gen)});
  CAPTURE(r.worst);
  CHECK(r.passed);

  Tensor w = Tensor::empty({30, 20}, DType::f64);
  xavier_uniform_(w, gen);
  const double bound = std::sqrt(6.0 / 50.0);
  double lo = 0, hi = 0;
  for (double v : w.to_vector<double>()) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(hi - lo > bound);  // spread over the range, not collapsed
  Tensor v = Tensor::empty({3});
  CHECK_THROWS_AS(xavier_uniform_(v, gen), ShapeError);
}

TEST_CASE("nn gradcheck: RNN, GRU, LSTM on a padded batch, two layers, both directions") {
  for (CellType cell : {CellType::rnn_tanh, CellType::gru, CellType::lstm}) {
    CAPTURE(cell_name(cell));
    Generator gen(13);
    RNN rnn(RNNOptions{.cell = cell,
                       .input_size = 2,
                       .hidden_size = 2,
                       .num_layers = 2,
                       .bidirectional = true,
                       .dtype = DType::f64},
            gen);
    const std::vector<std::int64_t> lengths{3, 1};
    const Tensor h0 = normal({4, 2, 2}, 0, 0.5, DType::f64, gen);
    const Tensor c0 = normal({4, 2, 2}, 0, 0.5, DType::f64, gen);
    const auto r = gradcheck(
        [&](const std::vector<Variable>& x) {
          RNNState init{x[1], cell == CellType::lstm ? x[2] : Variable()};
          const RNNOutput o = rnn.forward(x[0], lengths, init);
          std::vector<Variable> parts{flat(o.output), flat(o.state.h)};
          if (o.state.c.defined()) parts.push_back(flat(o.state.c));
          return concat(parts, 0);
        },
        {normal({2, 3, 2}, 0, 1, DType::f64, gen), h0, c0}, {}, rnn.parameters());
    CAPTURE(r.worst);
    CHECK(r.passed);
  }
}

}  // namespace
}  // namespace seqgrad
