// Attention and its scorers. One generic gradcheck walks the scorer registry, so a new scorer
// is covered by adding it to seq2seq/scorers/registry.cpp: no new test code.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "autograd/autograd.h"
#include "seq2seq/attention.h"
#include "seq2seq/scorers/scorers.h"

namespace seqgrad {
namespace {

ScorerConfig config_f64(Generator& gen) {
  return {.query_size = 4,
          .key_size = 4,
          .attention_size = 4,
          .heads = 2,
          .dtype = DType::f64,
          .gen = &gen};
}

TEST_CASE("attention: every registered scorer passes gradcheck through the whole step") {
  REQUIRE(scorer_registry().size() >= 6);
  for (const auto& entry : scorer_registry()) {
    CAPTURE(entry.name);
    Generator gen(17);
    Attention attention(entry.make(config_f64(gen)));
    const Tensor mask = length_mask({3, 2}, 3);  // the second source has one padding position
    const auto r = gradcheck(
        [&](const std::vector<Variable>& x) {
          const AttentionMemory m = attention.memory(x[1], mask);
          const AttentionResult a = attention.attend(x[0], m);
          return concat({reshape(a.context, {-1}), reshape(a.weights, {-1})}, 0);
        },
        {normal({2, 4}, 0, 1, DType::f64, gen), normal({2, 3, 4}, 0, 1, DType::f64, gen)}, {},
        attention.parameters());
    CAPTURE(r.worst);
    CHECK(r.passed);
  }
}

TEST_CASE("attention: weights are a distribution over real positions, context is their sum") {
  for (const auto& name : scorer_names()) {
    CAPTURE(name);
    Generator gen(3);
    Attention attention(make_scorer(name, config_f64(gen)));
    const Tensor keys = normal({2, 3, 4}, 0, 1, DType::f64, gen);
    const Tensor mask = length_mask({3, 2}, 3);
    const AttentionResult a = attention.attend(Variable(normal({2, 4}, 0, 1, DType::f64, gen)),
                                               attention.memory(Variable(keys), mask));
    CHECK(a.weights.shape() == Shape{2, 3});
    CHECK(a.context.shape() == Shape{2, attention.heads() * 4});
    const Tensor w = a.weights.data();
    CHECK(w.at({0, 0}) + w.at({0, 1}) + w.at({0, 2}) == doctest::Approx(1.0));
    CHECK(w.at({1, 0}) + w.at({1, 1}) == doctest::Approx(1.0));
    CHECK(w.at({1, 2}) == 0.0);  // padding gets nothing
    if (attention.heads() == 1) {
      for (std::int64_t h = 0; h < 4; ++h) {
        double c = 0;
        for (std::int64_t s = 0; s < 3; ++s) c += w.at({0, s}) * keys.at({0, s, h});
        CHECK(a.context.data().at({0, h}) == doctest::Approx(c));
      }
    }
  }
}

TEST_CASE("attention: dot scores by hand, unknown names list the registry, register_scorer") {
  Generator gen(1);
  Attention dot(make_scorer("dot", config_f64(gen)));
  const Tensor keys = Tensor::from_list({1, 0, 0, 0, 0, 2, 0, 0}, {1, 2, 4}, DType::f64);
  const Tensor q = Tensor::from_list({1, 1, 0, 0}, {1, 4}, DType::f64);
  const AttentionResult a =
      dot.attend(Variable(q), dot.memory(Variable(keys), length_mask({2}, 2)));
  // scores 1 and 2: softmax = [1, e] / (1 + e)
  CHECK(a.weights.data().at({0, 1}) == doctest::Approx(std::exp(1.0) / (1 + std::exp(1.0))));
  // The names come from the registry, so a new scorer needs no edit here.
  const std::string known = fmt::format("unknown attention scorer 'bilinear' (known: {})",
                                        fmt::join(scorer_names(), ", "));
  CHECK_THROWS_WITH_AS(make_scorer("bilinear", config_f64(gen)), doctest::Contains(known.c_str()),
                       ValueError);
  // A scorer registered at run time (examples/custom_scorer.cpp) comes after the built-ins and
  // is found by name. It is dot again, so any test that walks the registry later still passes.
  const ScorerFactory dot_again = [](const ScorerConfig& c) { return make_scorer("dot", c); };
  register_scorer({"test_dot", "dot, registered by a test", dot_again});
  CHECK(scorer_names().back() == "test_dot");
  CHECK_NOTHROW(make_scorer("test_dot", config_f64(gen)));
  CHECK_THROWS_WITH_AS(register_scorer({"dot", "again", dot_again}),
                       doctest::Contains("'dot' is already registered"), ValueError);
  CHECK_THROWS_AS(register_scorer({"none", "means no attention", dot_again}), ValueError);
  CHECK_THROWS_AS(register_scorer({"empty", "no factory", nullptr}), ValueError);
  ScorerConfig unequal = config_f64(gen);
  unequal.key_size = 6;
  CHECK_THROWS_WITH_AS(make_scorer("dot", unequal), doctest::Contains("equal query and key sizes"),
                       ValueError);
  CHECK_NOTHROW(make_scorer("general", unequal));
}

TEST_CASE("attention: fused additive_scores matches the composed v . tanh(uk + wq)") {
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dtype));
    Generator gen(9);
    // A 13: a SIMD body and a tail for either dtype
    Variable uk(normal({2, 3, 13}, 0, 1, dtype, gen), true);
    Variable wq(normal({2, 13}, 0, 1, dtype, gen), true);
    Variable v(normal({1, 13}, 0, 1, dtype, gen), true);
    const Tensor dy = normal({2, 3}, 0, 1, dtype, gen);
    additive_scores(uk, wq, v).backward(dy);
    const Tensor fused[] = {uk.grad(), wq.grad(), v.grad()};
    const Tensor fused_y = additive_scores(uk, wq, v).data();
    uk.zero_grad();
    wq.zero_grad();
    v.zero_grad();
    const Variable composed =
        squeeze(matmul(tanh(uk + unsqueeze(wq, 1)), transpose(v, 0, 1)), 2);  // [2,3]
    composed.backward(dy);
    const double tol = dtype == DType::f32 ? 1e-5 : 1e-12;
    const auto close = [&](const Tensor& a, const Tensor& b) {
      REQUIRE(a.shape() == b.shape());
      const auto x = a.to_vector<double>(), y = b.to_vector<double>();
      for (std::size_t i = 0; i < x.size(); ++i) CHECK(std::abs(x[i] - y[i]) < tol);
    };
    close(fused_y, composed.data());
    close(fused[0], uk.grad());
    close(fused[1], wq.grad());
    close(fused[2], v.grad());
  }
  const Variable uk(Tensor::zeros({2, 3, 4}));
  CHECK_THROWS_WITH_AS(
      additive_scores(uk, Variable(Tensor::zeros({2, 5})), Variable(Tensor::zeros({4}))),
      doctest::Contains("additive_scores: uk [2,3,4], wq [2,5], v [4]"), ShapeError);
  CHECK_THROWS_AS(
      additive_scores(uk, Variable(Tensor::zeros({2, 4})), Variable(Tensor::zeros({2, 4}))),
      ShapeError);
  CHECK_THROWS_AS(additive_scores(uk, Variable(Tensor::zeros({2, 4}, DType::f64)),
                                  Variable(Tensor::zeros({4}))),
                  DTypeError);
}

}  // namespace
}  // namespace seqgrad
