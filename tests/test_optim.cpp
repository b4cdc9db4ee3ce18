// optim/: optimizers against hand-computed values and an independent float64 reference written in
// the textbook form, clipping, every schedule at chosen steps, reduce-on-plateau, state save/load,
// weight averaging and convergence on a small regression. Parity with torch.optim is in
// test_optim_parity.cpp.
//
// To add a case: an update-rule case goes next to its optimizer's tests, checked against values
// worked out in the comment above it.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <numbers>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "optim/optim.h"
#include "optim_test_helpers.h"
#include "tensor/elementwise.h"
#include "tensor/matmul.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

namespace seqgrad {
namespace {

using namespace optim_test;

// --- SGD ---

TEST_CASE("optim: SGD without momentum is p - lr * g") {
  Variable p = param({1, 2, -3}, {3});
  SGD opt({p}, {.lr = 0.1});
  set_grad(p, {0.5, -1, 2});
  opt.step();
  check_close(values(p), {0.95, 2.1, -3.2}, 1e-15);
  CHECK(opt.step_count() == 1);
}

TEST_CASE("optim: SGD momentum, dampening, nesterov and weight decay against hand values") {
  // Two steps on p0 = [1, -2], g1 = [0.5, 1], g2 = [-1, 2], lr 0.1.
  SUBCASE("momentum 0.9: buf1 = g1, buf2 = 0.9 g1 + g2") {
    Variable p = param({1, -2}, {2});
    SGD opt({p}, {.lr = 0.1, .momentum = 0.9});
    set_grad(p, {0.5, 1});
    opt.step();
    check_close(values(p), {0.95, -2.1}, 1e-15);
    set_grad(p, {-1, 2});
    opt.step();  // buf2 = [-0.55, 2.9]
    check_close(values(p), {1.005, -2.39}, 1e-14);
  }
  SUBCASE("dampening 0.5: the first buffer is undamped, then buf2 = 0.9 g1 + 0.5 g2") {
    Variable p = param({1, -2}, {2});
    SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
    set_grad(p, {0.5, 1});
    opt.step();
    check_close(values(p), {0.95, -2.1}, 1e-15);
    set_grad(p, {-1, 2});
    opt.step();  // buf2 = [-0.05, 1.9]
    check_close(values(p), {0.955, -2.29}, 1e-14);
  }
  SUBCASE("nesterov: d = g + 0.9 buf") {
    Variable p = param({1, -2}, {2});
    SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
    set_grad(p, {0.5, 1});
    opt.step();  // d1 = g1 + 0.9 g1 = [0.95, 1.9]
    check_close(values(p), {0.905, -2.19}, 1e-15);
    set_grad(p, {-1, 2});
    opt.step();  // buf2 = [-0.55, 2.9], d2 = [-1.495, 4.61]
    check_close(values(p), {1.0545, -2.651}, 1e-14);
  }
  SUBCASE("weight decay 0.1: d = g + 0.1 p, then momentum sees d") {
    Variable p = param({1, -2}, {2});
    SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1});
    set_grad(p, {0.5, 1});
    opt.step();  // d1 = [0.6, 0.8], p1 = [0.94, -2.08]
    check_close(values(p), {0.94, -2.08}, 1e-15);
    set_grad(p, {-1, 2});
    opt.step();  // d2 = [-0.906, 1.792], buf2 = [-0.366, 2.512]
    check_close(values(p), {0.9766, -2.3312}, 1e-14);
  }
}

TEST_CASE("optim: SGD in float32 and on lengths past a SIMD batch") {
  // 37 elements: whole batches plus a scalar tail in both dtypes.
  Values p0(37), g(37);
  for (std::size_t i = 0; i < p0.size(); ++i) {
    p0[i] = std::sin(0.3 * static_cast<double>(i));
    g[i] = std::cos(0.7 * static_cast<double>(i));
  }
  for (DType dtype : {DType::f32, DType::f64}) {
    Variable p = param(p0, {37}, dtype);
    SGD opt({p}, {.lr = 0.25, .weight_decay = 0.5});
    set_grad(p, g);
    opt.step();
    Values want(37);
    for (std::size_t i = 0; i < 37; ++i) want[i] = p0[i] - 0.25 * (g[i] + 0.5 * p0[i]);
    check_close(values(p), want, dtype == DType::f32 ? 1e-6 : 1e-15);
  }
}

// --- Adam / AdamW ---

// Textbook Adam in float64, written apart from the kernels: m_hat, v_hat and
// p -= lr * m_hat / (sqrt(v_hat) + eps), which is PyTorch's eps placement.
struct ReferenceAdam {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = false;
  Values m{}, v{};
  int t = 0;

  void step(Values& p, const Values& g) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    for (std::size_t i = 0; i < p.size(); ++i) {
      double gi = g[i];
      if (decoupled) {
        p[i] -= lr * weight_decay * p[i];
      } else {
        gi += weight_decay * p[i];
      }
      m[i] = beta1 * m[i] + (1 - beta1) * gi;
      v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
      const double m_hat = m[i] / (1 - std::pow(beta1, t));
      const double v_hat = v[i] / (1 - std::pow(beta2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

TEST_CASE("optim: Adam and AdamW first step against hand values") {
  // First step: m_hat = g and sqrt(v_hat) = |g|, so p moves by lr * g / (|g| + eps).
  Variable p = param({1, -2}, {2});
  Adam adam({p}, {.lr = 0.1});
  set_grad(p, {0.5, -4});
  adam.step();
  check_close(values(p), {1 - 0.1 * 0.5 / (0.5 + 1e-8), -2 + 0.1 * 4 / (4 + 1e-8)}, 1e-15);
  CHECK(values(p)[0] == doctest::Approx(0.900000002).epsilon(1e-12));

  // AdamW first shrinks p by (1 - lr * wd) = 0.999, then takes the same step.
  Variable q = param({1, -2}, {2});
  AdamW adamw({q}, {.lr = 0.1});  // weight_decay defaults to 1e-2
  set_grad(q, {0.5, -4});
  adamw.step();
  check_close(values(q), {0.999 - 0.1 * 0.5 / (0.5 + 1e-8), -1.998 + 0.1 * 4 / (4 + 1e-8)}, 1e-15);
}

TEST_CASE("optim: Adam and AdamW several steps match the float64 reference") {
  Generator gen(7);
  const std::int64_t n = 37;
  const Values p0 = normal({n}, 0, 1, DType::f64, gen).to_vector<double>();
  std::vector<Values> grads;
  for (int s = 0; s < 6; ++s)
    grads.push_back(normal({n}, 0, 1, DType::f64, gen).to_vector<double>());

  for (bool decoupled : {false, true}) {
    CAPTURE(decoupled);
    Variable p = param(p0, {n});
    std::unique_ptr<Optimizer> opt;
    if (decoupled) {
      opt = std::make_unique<AdamW>(std::vector<Variable>{p},
                                    AdamWOptions{.lr = 0.05, .beta1 = 0.8, .weight_decay = 0.1});
    } else {
      opt = std::make_unique<Adam>(std::vector<Variable>{p},
                                   AdamOptions{.lr = 0.05, .beta1 = 0.8, .weight_decay = 0.1});
    }
    ReferenceAdam ref{.lr = 0.05, .beta1 = 0.8, .weight_decay = 0.1, .decoupled = decoupled};
    Values want = p0;
    for (const Values& g : grads) {
      set_grad(p, g);
      opt->step();
      ref.step(want, g);
      check_close(values(p), want, 1e-13);
    }
  }
}

TEST_CASE("optim: a parameter without a grad is skipped and keeps its own step count") {
  Variable a = param({1, 2}, {2});
  Variable b = param({3}, {1});
  Adam opt({a, b}, {.lr = 0.1});
  ReferenceAdam ref_a{.lr = 0.1}, ref_b{.lr = 0.1};
  Values want_a = {1, 2}, want_b = {3};

  set_grad(a, {0.5, -1});
  b.zero_grad();  // b is not reached on this step
  opt.step();
  ref_a.step(want_a, {0.5, -1});
  check_close(values(b), {3}, 0);
  CHECK(opt.state().tensors.count("exp_avg.1") == 0);

  set_grad(a, {0.2, 0.3});
  set_grad(b, {2});
  opt.step();  // b's first update: bias correction with t = 1, not 2
  ref_a.step(want_a, {0.2, 0.3});
  ref_b.step(want_b, {2});
  check_close(values(a), want_a, 1e-15);
  check_close(values(b), want_b, 1e-15);
  const OptimizerState s = opt.state();
  CHECK(s.tensors.at("step.0").item() == 2);
  CHECK(s.tensors.at("step.1").item() == 1);
  CHECK(s.step_count == 2);
}

// --- errors ---

TEST_CASE("optim: constructors reject bad parameters and hyper-parameters") {
  Variable p = param({1}, {1});
  CHECK_THROWS_AS(SGD({}, {}), ValueError);
  CHECK_THROWS_AS(SGD({Variable(Tensor::zeros({2}, DType::f64))}, {}), ValueError);  // no grad
  CHECK_THROWS_AS(SGD({p * 2.0}, {}), ValueError);                                   // not a leaf
  CHECK_THROWS_AS(SGD({p, p}, {}), ValueError);                                      // twice
  Variable strided(Tensor::zeros({2, 3}, DType::f64).transpose(0, 1), true);
  CHECK_THROWS_AS(SGD({strided}, {}), ValueError);
  CHECK_THROWS_AS(SGD({p}, {.lr = -1}), ValueError);
  CHECK_THROWS_AS(SGD({p}, {.momentum = -0.5}), ValueError);
  CHECK_THROWS_AS(SGD({p}, {.nesterov = true}), ValueError);  // nesterov without momentum
  CHECK_THROWS_AS(SGD({p}, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), ValueError);
  CHECK_THROWS_AS(Adam({p}, {.beta1 = 1.0}), ValueError);
  CHECK_THROWS_AS(Adam({p}, {.eps = -1}), ValueError);
  CHECK_THROWS_AS(AdamW({p}, {.weight_decay = std::nan("")}), ValueError);
  SGD ok({p}, {});
  CHECK_THROWS_AS(ok.set_lr(std::numeric_limits<double>::infinity()), ValueError);
  try {
    SGD({p, p}, {});
    FAIL("expected a ValueError");
  } catch (const ValueError& e) {
    CHECK(std::string(e.what()) == "SGD: parameter 1 appears twice in the parameter list");
  }
  // Different leaves over overlapping memory (views of one tensor) are refused too.
  const Tensor base = Tensor::zeros({4}, DType::f64);
  const Variable left(base.narrow(0, 0, 2), true);
  const Variable middle(base.narrow(0, 1, 2), true);
  const Variable right(base.narrow(0, 2, 2), true);
  CHECK_NOTHROW(SGD({right, left}, {}));  // adjacent, not overlapping
  CHECK_THROWS_WITH_AS(Adam({right, p, middle}, {}), "Adam: parameters 0 and 2 share memory",
                       ValueError);
}

TEST_CASE("optim: a step that fails its checks moves no parameter") {
  Variable a = param({1, 2}, {2});
  Variable b = param({1, 2, 3, 4, 5, 6}, {2, 3});
  SGD opt({a, b}, {.lr = 0.1});
  set_grad(a, {1, 1});
  set_grad(b, {1, 1, 1, 1, 1, 1});
  b.impl()->grad = Tensor::zeros({3, 2}, DType::f64);  // grads replaced by hand
  CHECK_THROWS_AS(opt.step(), ShapeError);
  b.impl()->grad = Tensor::zeros({3, 2}, DType::f64).transpose(0, 1);  // right shape, strided
  CHECK_THROWS_AS(opt.step(), ValueError);
  CHECK(values(a) == Values{1, 2});
  CHECK(opt.step_count() == 0);
}

// --- clipping ---

TEST_CASE("optim: clip_grad_norm returns the norm and scales all grads together") {
  Variable a = param({0, 0}, {2});
  Variable b = param({0}, {1}, DType::f32);
  Variable c = param({0}, {1});  // no grad: skipped
  set_grad(a, {3, 4});
  set_grad(b, {12});
  c.zero_grad();
  SUBCASE("below the limit nothing changes") {
    CHECK(clip_grad_norm({a, b, c}, 20.0) == doctest::Approx(13.0).epsilon(1e-15));
    check_close(a.grad().to_vector<double>(), {3, 4}, 0);
  }
  SUBCASE("above the limit every grad is scaled by max_norm / (norm + 1e-6)") {
    CHECK(clip_grad_norm({a, b, c}, 6.5) == doctest::Approx(13.0).epsilon(1e-15));
    const double coef = 6.5 / (13.0 + 1e-6);
    check_close(a.grad().to_vector<double>(), {3 * coef, 4 * coef}, 1e-15);
    check_close(b.grad().to_vector<double>(), {12 * coef}, 1e-6);
    CHECK(grad_norm({a, b, c}) == doctest::Approx(6.5).epsilon(1e-6));
    CHECK_FALSE(c.grad().defined());
  }
  SUBCASE("errors") {
    CHECK_THROWS_AS(clip_grad_norm({a}, 0.0), ValueError);
    set_grad(a, {std::nan(""), 1});
    CHECK_THROWS_AS(clip_grad_norm({a}, 1.0, true), RuntimeError);
  }
}

// --- schedules ---

TEST_CASE("optim: schedules give the expected lr at chosen steps") {
  const LrSchedule constant = constant_lr(0.1);
  CHECK(constant(0) == 0.1);
  CHECK(constant(100000) == 0.1);

  const LrSchedule decay = step_decay(0.1, 10, 0.5);  // halves after steps 10, 20, ...
  CHECK(decay(0) == doctest::Approx(0.1));
  CHECK(decay(9) == doctest::Approx(0.1));
  CHECK(decay(10) == doctest::Approx(0.05));
  CHECK(decay(25) == doctest::Approx(0.025));

  const LrSchedule inv_sqrt = warmup_inverse_sqrt(1e-3, 4);
  CHECK(inv_sqrt(0) == doctest::Approx(2.5e-4));  // update 1 of 4 warm-up updates
  CHECK(inv_sqrt(3) == doctest::Approx(1e-3));    // peak at the end of warm-up
  CHECK(inv_sqrt(15) == doctest::Approx(5e-4));   // 1e-3 * sqrt(4 / 16)
  CHECK(inv_sqrt(399) == doctest::Approx(1e-4));  // 1e-3 * sqrt(4 / 400)

  const LrSchedule cosine = warmup_cosine(1.0, 10, 110, 0.1);
  CHECK(cosine(4) == doctest::Approx(0.5));
  CHECK(cosine(9) == doctest::Approx(1.0));
  CHECK(cosine(34) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.25))));
  CHECK(cosine(59) == doctest::Approx(0.55));  // halfway through the decay
  CHECK(cosine(109) == doctest::Approx(0.1));
  CHECK(cosine(5000) == doctest::Approx(0.1));

  CHECK_THROWS_AS(step_decay(0.1, 0, 0.5), ValueError);
  CHECK_THROWS_AS(warmup_inverse_sqrt(1e-3, 0), ValueError);
  CHECK_THROWS_AS(warmup_cosine(1.0, 10, 10), ValueError);
  CHECK_THROWS_AS(warmup_cosine(1.0, 0, 10, 2.0), ValueError);
  CHECK_THROWS_AS(decay(-1), ValueError);
}

TEST_CASE("optim: apply_schedule follows the optimizer's step count") {
  Variable p = param({1}, {1});
  SGD opt({p}, {.lr = 123});
  const LrSchedule decay = step_decay(0.1, 2, 0.1);
  for (int s = 0; s < 5; ++s) {
    CHECK(apply_schedule(decay, opt) == doctest::Approx(0.1 * std::pow(0.1, s / 2)));
    CHECK(opt.lr() == doctest::Approx(0.1 * std::pow(0.1, s / 2)));
    set_grad(p, {1});
    opt.step();
  }
}

TEST_CASE("optim: reduce-on-plateau reduces after patience bad evaluations") {
  ReduceLROnPlateau plateau({.factor = 0.5, .patience = 2});
  double lr = 1.0;
  // 1.0 and 0.9 improve; 0.95, 0.92 and 0.89995 do not (0.89995 is within the 1e-4 relative
  // threshold of 0.9), so the third bad one exceeds patience 2.
  for (double metric : {1.0, 0.9, 0.95, 0.92}) lr = plateau.step(metric, lr);
  CHECK(lr == 1.0);
  CHECK(plateau.num_bad_epochs() == 2);
  lr = plateau.step(0.89995, lr);
  CHECK(lr == 0.5);
  CHECK(plateau.num_bad_epochs() == 0);
  CHECK(plateau.best() == 0.9);
  // A real improvement resets the count; three more bad ones reduce again.
  lr = plateau.step(0.5, lr);
  for (double metric : {0.6, 0.6}) lr = plateau.step(metric, lr);
  CHECK(lr == 0.5);
  lr = plateau.step(0.6, lr);
  CHECK(lr == 0.25);
  CHECK(plateau.last_epoch() == 9);
}

TEST_CASE("optim: reduce-on-plateau cooldown, min_lr, mode max and state") {
  Variable p = param({1}, {1});
  SGD opt({p}, {.lr = 1.0});
  ReduceLROnPlateau plateau(
      {.mode = PlateauMode::max, .factor = 0.1, .patience = 0, .cooldown = 1, .min_lr = 0.05});
  CHECK_FALSE(plateau.step(1.0, opt));  // best
  CHECK(plateau.step(1.0, opt));        // not better: reduce to 0.1, cooldown 1
  CHECK(opt.lr() == doctest::Approx(0.1));
  CHECK_FALSE(plateau.step(0.5, opt));  // ignored: in cooldown
  const ScheduleState saved = plateau.state();
  CHECK(plateau.step(0.5, opt));  // reduce, but not below min_lr
  CHECK(opt.lr() == doctest::Approx(0.05));
  CHECK_FALSE(plateau.step(0.5, opt));  // cooldown
  CHECK_FALSE(plateau.step(0.5, opt));  // already at min_lr: no change

  ReduceLROnPlateau resumed(
      {.mode = PlateauMode::max, .factor = 0.1, .patience = 0, .cooldown = 1, .min_lr = 0.05});
  resumed.load_state(saved);
  CHECK(resumed.best() == 1.0);
  CHECK(resumed.last_epoch() == 3);
  CHECK(resumed.step(0.5, 0.1) == doctest::Approx(0.05));
  CHECK_THROWS_AS(resumed.load_state({{"best", 1.0}}), ValueError);
  ScheduleState bad = saved;
  bad["num_bad_epochs"] = -1;
  CHECK_THROWS_AS(resumed.load_state(bad), ValueError);
  CHECK_THROWS_AS(ReduceLROnPlateau({.factor = 1.0}), ValueError);
}

// --- state ---

// A small least-squares loss whose gradient depends on the parameters, so resuming with the
// wrong state would visibly change the trajectory.
Variable regression_loss(const std::vector<Variable>& ps, const Tensor& x, const Tensor& y) {
  return mean(pow(matmul(Variable(x), ps[0]) + ps[1] - Variable(y), 2.0));
}

struct Regression {
  Tensor x, y;
  explicit Regression(DType dtype = DType::f64) {
    Generator gen(3);
    x = normal({32, 3}, 0, 1, DType::f64, gen);
    const Tensor w = Tensor::from_list({1.5, -2, 0.5}, {3, 1}, DType::f64);
    y = add(matmul(x, w), Tensor::scalar(0.3, DType::f64)).astype(dtype);
    x = x.astype(dtype);
  }
  std::vector<Variable> fresh_params(DType dtype = DType::f64) const {
    return {param({0.1, 0.2, 0.3}, {3, 1}, dtype), param({0}, {1}, dtype)};
  }
  double step(std::vector<Variable>& ps, Optimizer& opt, double max_norm = 0.0) const {
    opt.zero_grad();
    Variable loss = regression_loss(ps, x, y);
    loss.backward();
    if (max_norm > 0.0) clip_grad_norm(ps, max_norm);
    opt.step();
    return loss.item();
  }
};

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(std::vector<Variable>)>;

struct OptimizerCase {
  std::string name;
  MakeOptimizer make;
  // Weight decay moves the minimum off the exact fit, so decayed runs stop above zero loss.
  double converged_loss;
};

std::vector<OptimizerCase> optimizers() {
  return {
      {"SGD", [](auto ps) { return std::make_unique<SGD>(ps, SGDOptions{.lr = 0.1}); }, 1e-8},
      {"SGD momentum",
       [](auto ps) {
         return std::make_unique<SGD>(
             ps, SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3});
       },
       1e-5},
      {"SGD nesterov",
       [](auto ps) {
         return std::make_unique<SGD>(ps,
                                      SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
       },
       1e-8},
      {"Adam", [](auto ps) { return std::make_unique<Adam>(ps, AdamOptions{.lr = 0.05}); }, 1e-8},
      {"AdamW",
       [](auto ps) {
         return std::make_unique<AdamW>(ps, AdamWOptions{.lr = 0.05, .weight_decay = 1e-3});
       },
       1e-5},
  };
}

TEST_CASE("optim: state save and load continues bit for bit") {
  const Regression task;
  for (const auto& [name, make, converged_loss] : optimizers()) {
    CAPTURE(name);
    std::vector<Variable> ps_a = task.fresh_params();
    auto a = make(ps_a);
    for (int s = 0; s < 6; ++s) task.step(ps_a, *a);

    std::vector<Variable> ps_b = task.fresh_params();
    auto b = make(ps_b);
    for (int s = 0; s < 3; ++s) task.step(ps_b, *b);
    const OptimizerState saved = b->state();
    b.reset();
    auto c = make(ps_b);
    c->load_state(saved);
    CHECK(c->step_count() == 3);
    for (int s = 0; s < 3; ++s) task.step(ps_b, *c);

    for (std::size_t i = 0; i < ps_a.size(); ++i) CHECK(values(ps_a[i]) == values(ps_b[i]));
    const OptimizerState sa = a->state(), sc = c->state();
    CHECK(sa.step_count == sc.step_count);
    REQUIRE(sa.tensors.size() == sc.tensors.size());
    for (const auto& [key, t] : sa.tensors) {
      CAPTURE(key);
      CHECK(t.to_vector<double>() == sc.tensors.at(key).to_vector<double>());
    }
  }
}

TEST_CASE("optim: state survives a safetensors file (tensors plus string metadata)") {
  const Regression task;
  std::vector<Variable> ps_a = task.fresh_params(), ps_b = task.fresh_params();
  const double lr = 1.0 / 30;  // no short decimal: the text round trip must keep every bit
  AdamW a(ps_a, {.lr = lr}), b(ps_b, {.lr = lr});
  for (int s = 0; s < 4; ++s) task.step(ps_a, a);
  for (int s = 0; s < 2; ++s) task.step(ps_b, b);

  const OptimizerState saved = b.state();
  const std::string path = (std::filesystem::temp_directory_path() /
                            fmt::format("seqgrad_optim_state_{}.safetensors", getpid()))
                               .string();
  // fmt prints the shortest text that reads back as the same double.
  save_safetensors(path, {saved.tensors.begin(), saved.tensors.end()},
                   {{"kind", saved.kind},
                    {"num_params", std::to_string(saved.num_params)},
                    {"step_count", std::to_string(saved.step_count)},
                    {"lr", fmt::format("{}", saved.lr)}});
  const SafetensorsFile file = load_safetensors(path);
  std::filesystem::remove(path);
  OptimizerState loaded{.kind = file.metadata.at("kind"),
                        .num_params = std::stoll(file.metadata.at("num_params")),
                        .step_count = std::stoll(file.metadata.at("step_count")),
                        .lr = std::stod(file.metadata.at("lr")),
                        .tensors = {file.tensors.begin(), file.tensors.end()}};
  AdamW c(ps_b, {.lr = 1.0});
  c.load_state(loaded);
  CHECK(c.lr() == lr);
  CHECK(c.step_count() == 2);
  for (int s = 0; s < 2; ++s) task.step(ps_b, c);
  for (std::size_t i = 0; i < ps_a.size(); ++i) CHECK(values(ps_a[i]) == values(ps_b[i]));
}

TEST_CASE("optim: state names, deep copy and load validation") {
  const Regression task;
  std::vector<Variable> ps = task.fresh_params();
  Adam opt(ps, {.lr = 0.01});
  task.step(ps, opt);
  opt.set_lr(0.02);
  const OptimizerState s = opt.state();
  CHECK(s.kind == "Adam");
  CHECK(s.num_params == 2);
  CHECK(s.lr == 0.02);
  for (const char* key : {"exp_avg.0", "exp_avg_sq.0", "step.0", "exp_avg.1", "step.1"}) {
    CAPTURE(key);
    CHECK(s.tensors.count(key) == 1);
  }
  CHECK(s.tensors.size() == 6);
  const Values before = s.tensors.at("exp_avg.0").to_vector<double>();
  task.step(ps, opt);  // the saved state is a copy: later steps leave it alone
  CHECK(s.tensors.at("exp_avg.0").to_vector<double>() == before);

  Adam fresh(task.fresh_params(), {});
  // Loads `s` with one entry set to `t` (or removed, when t is undefined).
  auto load_with = [&](const std::string& key, const Tensor& t) {
    OptimizerState edited = s;
    if (t.defined()) {
      edited.tensors[key] = t;
    } else {
      edited.tensors.erase(key);
    }
    fresh.load_state(edited);
  };
  const Tensor column = Tensor::zeros({3, 1}, DType::f64);
  CHECK_THROWS_AS(SGD(task.fresh_params(), {}).load_state(s), ValueError);  // other kind
  CHECK_THROWS_AS(Adam({ps[0]}, {}).load_state(s), ValueError);             // other count
  CHECK_THROWS_AS(load_with("exp_avg.0", Tensor::zeros({1, 3}, DType::f64)), ShapeError);
  CHECK_THROWS_AS(load_with("exp_avg.0", column.astype(DType::f32)), DTypeError);
  CHECK_THROWS_AS(load_with("exp_avg_sq.1", Tensor()), ValueError);     // a buffer missing
  CHECK_THROWS_AS(load_with("momentum_buffer.0", column), ValueError);  // not Adam's
  CHECK_THROWS_AS(load_with("exp_avg.7", column), ValueError);          // no parameter 7
  CHECK_THROWS_AS(load_with("exp_avg.00", column), ValueError);         // aliases exp_avg.0
  CHECK_THROWS_AS(load_with("step.1", Tensor::scalar(0, DType::i64)), ValueError);
  try {
    load_with("exp_avg.0", Tensor::zeros({2}, DType::f64));
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) == "Adam::load_state: 'exp_avg.0' is [2], parameter 0 is [3,1]");
  }
  // Failed loads changed nothing.
  CHECK(fresh.step_count() == 0);
  CHECK(fresh.state().tensors.empty());
}

// --- threads ---

// step(), grad_norm, clip_grad_norm and the moving average split the parameters over threads
// (tensor/parallel_for.h); each parameter is moved by one thread in the same arithmetic, so 3
// threads give 1 thread's bits. The sizes add up past the split's minimum, in float32 and float64.
TEST_CASE("optim: updates, clipping and averaging at 3 threads equal 1 thread bit for bit") {
  const std::vector<std::int64_t> sizes{40000, 3, 17, 25000, 1, 9000, 611};
  Generator gen(11);
  auto make_params = [&](std::uint64_t seed) {
    Generator g(seed);
    std::vector<Variable> ps;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const DType dtype = i % 2 == 0 ? DType::f32 : DType::f64;
      ps.emplace_back(normal({sizes[i]}, 0, 1, dtype, g), true);
    }
    return ps;
  };
  std::vector<std::vector<Values>> grads(3);  // per step, per parameter
  for (auto& step : grads) {
    for (const std::int64_t n : sizes)
      step.push_back(normal({n}, 0, 3, DType::f64, gen).to_vector<double>());
  }
  using Make = std::function<std::unique_ptr<Optimizer>(std::vector<Variable>)>;
  const std::vector<std::pair<std::string, Make>> kinds{
      {"SGD",
       [](std::vector<Variable> ps) {
         return std::make_unique<SGD>(std::move(ps), SGDOptions{.lr = 0.1, .momentum = 0.9});
       }},
      {"Adam",
       [](std::vector<Variable> ps) {
         return std::make_unique<Adam>(std::move(ps), AdamOptions{.lr = 0.01});
       }},
      {"AdamW", [](std::vector<Variable> ps) {
         return std::make_unique<AdamW>(std::move(ps), AdamWOptions{.lr = 0.01});
       }}};
  for (const auto& [kind, make] : kinds) {
    CAPTURE(kind);
    std::vector<Variable> one = make_params(5), three = make_params(5);
    auto opt1 = make(one), opt3 = make(three);
    opt3->set_threads(3);
    ExponentialMovingAverage ema1(one, 0.99), ema3(three, 0.99);
    ema3.set_threads(3);
    for (const auto& step : grads) {
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        set_grad(one[i], step[i]);
        set_grad(three[i], step[i]);
      }
      const double norm = grad_norm(one);
      CHECK(grad_norm(three, 3) == norm);
      CHECK(clip_grad_norm(three, norm / 2, true, 3) == clip_grad_norm(one, norm / 2, true));
      opt1->step();
      opt3->step();
      ema1.update();
      ema3.update();
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        CAPTURE(i);
        CHECK(one[i].grad().to_vector<double>() == three[i].grad().to_vector<double>());
        CHECK(values(one[i]) == values(three[i]));
        CHECK(ema1.averages()[i].to_vector<double>() == ema3.averages()[i].to_vector<double>());
      }
    }
    CHECK(values(one[0]) != values(make_params(5)[0]));  // the steps moved the weights
  }
}

// --- convergence ---

// --- moving average of weights ---

// decay 0.9: d = min(0.9, (1 + n) / (10 + n)) is 0.1, then 2/11, then 3/12; avg += (1 - d)(p -
// avg).
TEST_CASE("optim: ExponentialMovingAverage ramps its decay and tracks the parameters") {
  for (const DType dtype : {DType::f64, DType::f32}) {
    CAPTURE(dtype_name(dtype));
    // 19 elements: two float32 SIMD batches of 8 (or four of 4) and a tail.
    Values start(19), later(19);
    for (std::size_t i = 0; i < start.size(); ++i) {
      start[i] = static_cast<double>(i);
      later[i] = 3.0 * static_cast<double>(i) - 1.0;
    }
    Variable p = param(start, {19}, dtype);
    ExponentialMovingAverage ema({p}, 0.9);
    const double tol = dtype == DType::f64 ? 1e-12 : 1e-5;
    check_close(ema.averages()[0].to_vector<double>(), start, 0);

    Values want = start;
    p.data().copy_from(Tensor::from_vector(later, {19}).astype(dtype));
    const double ds[] = {0.1, 2.0 / 11.0, 3.0 / 12.0};
    for (const double d : ds) {
      ema.update();
      for (std::size_t i = 0; i < want.size(); ++i) want[i] += (1 - d) * (later[i] - want[i]);
    }
    CHECK(ema.updates() == 3);
    check_close(ema.averages()[0].to_vector<double>(), want, tol);

    // swap() puts the averages into the parameter; a second swap() restores it exactly.
    ema.swap();
    check_close(values(p), want, tol);
    ema.swap();
    check_close(values(p), later, 0);
  }
  Variable q = param({1}, {1});
  CHECK_THROWS_WITH_AS(ExponentialMovingAverage({q}, 1.0),
                       "ExponentialMovingAverage: decay must lie in (0, 1), got 1", ValueError);
  CHECK_THROWS_AS(ExponentialMovingAverage({q}, 0.0), ValueError);
}

// With a constant parameter the average converges to it; once the ramp passes `decay`, each
// update shrinks the gap by exactly `decay`.
TEST_CASE("optim: ExponentialMovingAverage uses the full decay after the ramp") {
  Variable p = param({0}, {1});
  ExponentialMovingAverage ema({p}, 0.5);
  p.data().copy_from(Tensor::from_vector(Values{1}, {1}));
  ema.update();  // d = 0.1: 0.9
  double gap = 0.1;
  for (int n = 1; n < 6; ++n) {  // the ramp 2/11 ... 6/15 is still below 0.5
    ema.update();
    gap *= (1.0 + n) / (10.0 + n);
  }
  ema.set_updates(100);  // the ramp 101/110 is above 0.5: d = 0.5
  ema.update();
  gap *= 0.5;
  check_close(ema.averages()[0].to_vector<double>(), {1 - gap}, 1e-15);
}

TEST_CASE("optim: every optimizer solves a small linear regression") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const Regression task(dtype);
    for (const auto& [name, make, converged_loss] : optimizers()) {
      CAPTURE(name);
      CAPTURE(dtype_name(dtype));
      std::vector<Variable> ps = task.fresh_params(dtype);
      auto opt = make(ps);
      // Cosine decay lets Adam settle instead of hovering at the scale of its lr.
      const LrSchedule schedule = warmup_cosine(opt->lr(), 10, 400, 0.0);
      const double first = regression_loss(ps, task.x, task.y).item();
      for (int s = 0; s < 400; ++s) {
        apply_schedule(schedule, *opt);
        task.step(ps, *opt, 10.0);  // clipping bites only on the first steps
      }
      const double last = regression_loss(ps, task.x, task.y).item();
      CHECK(first > 1.0);
      CHECK(last < (dtype == DType::f32 ? std::max(converged_loss, 1e-6) : converged_loss));
    }
  }
}

}  // namespace
}  // namespace seqgrad
