// seq2seq/explain: the numbers the explain page draws, checked against the library computed
// another way: the step losses against Seq2Seq::loss, dL/de against the softmax backward
// written out, and the step-by-step (traced) encoder against the fused one; with and without
// attention, every encoder state receives a finite, non-zero gradient.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.h"
#include "seq2seq/explain.h"
#include "tensor/reduce.h"

namespace seqgrad {
namespace {

ModelConfig tiny(const std::string& attention, std::int64_t heads = 1) {
  return {.src_vocab = 9,
          .tgt_vocab = 9,
          .embed = 3,
          .hidden = 4,
          .layers = 1,
          .cell = "lstm",
          .bidirectional = true,
          .attention = attention,
          .style = "luong",
          .heads = heads,
          .dtype = DType::f64};
}

const std::vector<std::int64_t> kSource{4, 7, 5, 8};
const std::vector<std::int64_t> kTarget{8, 5, 7, kEosId};

double model_loss_sum(const Seq2Seq& model) {
  const auto S = static_cast<std::int64_t>(kSource.size());
  const auto T = static_cast<std::int64_t>(kTarget.size());
  std::vector<std::int64_t> in{kBosId};
  in.insert(in.end(), kTarget.begin(), kTarget.end() - 1);
  Generator gen(1);
  const LossResult r =
      model.loss(Tensor::from_vector(kSource, {1, S}), {S}, Tensor::from_vector(in, {1, T}),
                 Tensor::from_vector(kTarget, {1, T}), {}, gen);
  return r.loss.item() * static_cast<double>(T);  // the mean over T tokens, back to a sum
}

TEST_CASE("explain: losses, weights and the softmax backward agree with the library") {
  for (const auto& [scorer, heads] :
       std::vector<std::pair<std::string, std::int64_t>>{{"general", 1}, {"multihead", 2}}) {
    CAPTURE(scorer);
    Generator gen(3);
    Seq2Seq model(tiny(scorer, heads), gen);
    model.eval();
    const Explanation x = explain(model, kSource, kTarget);
    REQUIRE(x.heads == heads);
    CHECK(x.loss == doctest::Approx(model_loss_sum(model)).epsilon(1e-12));
    double steps = 0;
    for (double l : x.step_loss) steps += l;
    CHECK(steps == doctest::Approx(x.loss).epsilon(1e-12));
    REQUIRE(x.predicted.size() == kTarget.size());
    for (std::size_t k = 0; k < x.weights.size(); ++k) {
      const Matrix de = softmax_backward_rows(x.weights[k], x.dweights[k]);
      for (std::size_t i = 0; i < kTarget.size(); ++i) {
        double row = 0;
        for (std::size_t j = 0; j < kSource.size(); ++j) {
          row += x.weights[k][i][j];
          CHECK(de[i][j] == doctest::Approx(x.dscores[k][i][j]).epsilon(1e-9));
        }
        CHECK(row == doctest::Approx(1.0).epsilon(1e-12));
      }
    }
    // Parameters' gradients are left cleared.
    for (const Variable& p : model.parameters()) CHECK_FALSE(p.grad().defined());
  }
}

TEST_CASE("explain: the traced encoder gives the fused encoder's states") {
  Generator gen(5);
  Seq2Seq model(tiny("general"), gen);
  model.eval();
  const auto S = static_cast<std::int64_t>(kSource.size());
  const Tensor src = Tensor::from_vector(kSource, {1, S});
  RNNTrace trace;
  const auto fused = model.encode(src, {S}).states.data().to_vector<double>();
  const auto traced = model.encode(src, {S}, &trace).states.data().to_vector<double>();
  REQUIRE(fused.size() == traced.size());
  for (std::size_t i = 0; i < fused.size(); ++i) CHECK(traced[i] == doctest::Approx(fused[i]));
  REQUIRE(trace.h.size() == 2);  // one layer, two directions
  CHECK(trace.h[0].size() == kSource.size());
}

TEST_CASE("explain: with and without attention every encoder state receives gradient") {
  for (const std::string scorer : {"general", "none"}) {
    CAPTURE(scorer);
    Generator gen(7);
    Seq2Seq model(tiny(scorer), gen);
    model.eval();
    const Explanation x = explain(model, kSource, kTarget);
    REQUIRE(x.state_grad.size() == kTarget.size());
    for (const auto& row : x.state_grad) {
      REQUIRE(row.size() == kSource.size());
      for (double v : row) CHECK((std::isfinite(v) && v > 0));
    }
    CHECK(x.weights.empty() == (scorer == "none"));
  }
}

// --- the Transformer families: the same quantities per layer and head ---

ModelConfig tiny_transformer(const std::string& arch) {
  ModelConfig c = tiny("general", 2);
  c.arch = arch;
  c.hidden = 8;
  c.layers = 2;
  c.ff = 16;
  c.dropout = 0;
  return c;
}

TEST_CASE("explain: a Transformer's losses, weights per layer and head and the softmax backward") {
  for (const std::string arch : {"transformer", "decoder-only"}) {
    CAPTURE(arch);
    Generator gen(3);
    Seq2Seq model(tiny_transformer(arch), gen);
    model.eval();
    const Explanation x = explain(model, kSource, kTarget);
    const bool decoder_only = arch == "decoder-only";
    REQUIRE(x.layers == 2);
    REQUIRE(x.heads == 2);
    REQUIRE(x.weights.size() == 4);  // layer by layer, head by head
    CHECK(x.target_keys == (decoder_only ? 4 : 0));
    CHECK(x.loss == doctest::Approx(model_loss_sum(model)).epsilon(1e-12));
    const std::size_t S = kSource.size(), C = S + static_cast<std::size_t>(x.target_keys);
    for (std::size_t v = 0; v < x.weights.size(); ++v) {
      CAPTURE(v);
      const Matrix de = softmax_backward_rows(x.weights[v], x.dweights[v]);
      REQUIRE(x.weights[v].size() == kTarget.size());
      for (std::size_t i = 0; i < kTarget.size(); ++i) {
        REQUIRE(x.weights[v][i].size() == C);
        double row = 0;
        for (std::size_t j = 0; j < C; ++j) {
          row += x.weights[v][i][j];
          CHECK(de[i][j] == doctest::Approx(x.dscores[v][i][j]).epsilon(1e-9));
          // decoder-only: output step i sees the source and the inputs <s> y_1 .. y_i only
          if (decoder_only && j > S + i) CHECK(x.weights[v][i][j] == 0.0);
        }
        CHECK(row == doctest::Approx(1.0).epsilon(1e-12));
      }
    }
    REQUIRE(x.state_grad.size() == kTarget.size());
    for (const auto& row : x.state_grad) {
      REQUIRE(row.size() == S);
      for (double g : row) CHECK((std::isfinite(g) && g > 0));
    }
    for (const Variable& p : model.parameters()) CHECK_FALSE(p.grad().defined());
  }
}

// The page's weights come from one full pass in the traced (unfused) form; cached decoding runs
// the fused op a step at a time. The last layer's mean over heads is what decoding reports.
TEST_CASE("explain: a Transformer's weights are those its cached decoding uses") {
  Generator gen(4);
  Seq2Seq model(tiny_transformer("transformer"), gen);
  model.eval();
  const Explanation x = explain(model, kSource, kTarget);
  const auto S = static_cast<std::int64_t>(kSource.size());
  auto session = model.architecture().decode(Tensor::from_vector(kSource, {1, S}), {S}, 1);
  std::int64_t y_prev = kBosId;
  for (std::size_t i = 0; i < kTarget.size(); ++i) {
    const Tensor w = session->step(Tensor::from_vector(std::vector{y_prev}, {1})).weights.data();
    const std::vector<double> step = w.to_vector<double>();
    for (std::size_t j = 0; j < kSource.size(); ++j) {
      const double mean = (x.weights[2][i][j] + x.weights[3][i][j]) / 2;  // layer 1, heads 0, 1
      CHECK(step[j] == doctest::Approx(mean).epsilon(1e-12));
    }
    y_prev = kTarget[i];
  }
}

}  // namespace
}  // namespace seqgrad
