// The tape itself: accumulation, grad mode, detach, zero_grad, error cases and the DOT dump.
// Per-op gradients are checked in test_gradcheck.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "autograd/autograd.h"
#include "tensor/allocator.h"

namespace seqgrad {
namespace {

Variable param(std::initializer_list<double> v, const Shape& s) {
  return Variable(Tensor::from_list(v, s, DType::f64), true);
}

TEST_CASE("backward: scalar chain and gradient values") {
  // y = sum((a * b + a)^2) with a = [1,2], b = [3,4]: dy/da = 2(ab+a)(b+1), dy/db = 2(ab+a)a
  Variable a = param({1, 2}, {2});
  Variable b = param({3, 4}, {2});
  Variable y = sum(pow(a * b + a, 2.0));
  CHECK(y.item() == doctest::Approx(16.0 + 100.0));
  y.backward();
  CHECK(a.grad().at({0}) == doctest::Approx(2 * 4 * 4));
  CHECK(a.grad().at({1}) == doctest::Approx(2 * 10 * 5));
  CHECK(b.grad().at({0}) == doctest::Approx(2 * 4 * 1));
  CHECK(b.grad().at({1}) == doctest::Approx(2 * 10 * 2));
}

TEST_CASE("backward: a value used twice receives the sum of both gradients") {
  Variable x = param({3}, {1});
  Variable y = sum(x * x + x);  // dy/dx = 2x + 1 = 7
  y.backward();
  CHECK(x.grad().item() == doctest::Approx(7.0));
}

TEST_CASE("backward: narrow slabs add into one gradient, overlapping or not") {
  // y = sum(x[:,0:3] * 2) + sum(x[:,2:5] * 3) + sum(select(x,1,5) * 5) + sum(z[:,1:2]) with
  // z = 7x, a non-leaf whose gradient also receives a slab; x [2,6].
  Variable x = param({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 6});
  Variable z = x * 7.0;
  Variable y = sum(narrow(x, 1, 0, 3) * 2.0) + sum(narrow(x, 1, 2, 3) * 3.0) +
               sum(select(x, 1, 5) * 5.0) + sum(narrow(z, 1, 1, 1)) + sum(narrow(z, 0, 1, 1));
  y.backward();
  const std::vector<double> row0{2, 2 + 7, 5, 3, 3, 5},
      row1{2 + 7, 2 + 14, 5 + 7, 3 + 7, 3 + 7, 5 + 7};
  std::vector<double> want = row0;
  want.insert(want.end(), row1.begin(), row1.end());
  CHECK(x.grad().to_vector<double>() == want);
}

TEST_CASE("backward: repeated passes accumulate until zero_grad") {
  Variable x = param({1, 2}, {2});
  Variable y = sum(x * 3.0);
  y.backward();
  y.backward();
  CHECK(x.grad().at({1}) == doctest::Approx(6.0));
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  y.backward();
  CHECK(x.grad().at({1}) == doctest::Approx(3.0));
}

TEST_CASE("backward: a gradient handed on as is and retained is never summed into") {
  // contiguous's backward hands k's gradient itself to h; h's other share must then go to a
  // fresh tensor (or into h's own buffer), never into the one k keeps.
  Variable x = param({1, 2, 3}, {3});
  Variable h = x * 2.0;
  Variable k = contiguous(h);
  k.retain_grad();
  sum(k * 3.0 + h * 5.0).backward();
  CHECK(k.grad().at({1}) == doctest::Approx(3.0));
  CHECK(x.grad().at({1}) == doctest::Approx(16.0));  // 2 * (3 + 5)
  Variable h2 = x * 2.0;
  Variable y2 = h2 + h2;  // add hands one dy to both sides: h2 receives it twice
  y2.backward(Tensor::ones({3}, DType::f64), BackwardOptions{.keep_all_grads = true});
  CHECK(y2.grad().at({2}) == doctest::Approx(1.0));
  CHECK(h2.grad().at({2}) == doctest::Approx(2.0));
}

TEST_CASE("backward: leaf gradients are dense buffers of their own") {
  // add hands the same dy to both inputs; the leaves must not share it, and a broadcast
  // gradient (sum's backward is an expand) must arrive dense.
  Variable a = param({1, 2, 3}, {3});
  Variable b = param({4, 5, 6}, {3});
  sum(a + b).backward();
  CHECK_FALSE(a.grad().shares_storage(b.grad()));
  CHECK(a.grad().is_contiguous());
  Tensor g = a.grad();
  g.fill_(0.0);
  CHECK(b.grad().at({0}) == doctest::Approx(1.0));
}

TEST_CASE("backward: upstream gradient for non-scalar outputs") {
  Variable x = param({1, 2, 3, 4}, {2, 2});
  Variable y = x * 2.0;
  y.backward(Tensor::from_list({1, 0, 0, 5}, {2, 2}, DType::f64));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 0, 0, 10});
}

TEST_CASE("backward: errors") {
  Variable x = param({1, 2}, {2});
  Variable y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("backward: the output [2] is not a scalar"),
                       ValueError);
  CHECK_THROWS_WITH_AS(y.backward(Tensor::ones({3}, DType::f64)),
                       doctest::Contains("does not match the output float64[2]"), ShapeError);
  Variable c(Tensor::ones({1}, DType::f64));
  CHECK_THROWS_WITH_AS((c * 2.0).backward(), doctest::Contains("does not require grad"),
                       ValueError);
  CHECK_THROWS_AS(Variable(Tensor::ones({1}, DType::i64), true), DTypeError);
}

TEST_CASE("grad mode: NoGradGuard records nothing and restores the mode") {
  Variable x = param({1}, {1});
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_enabled());
    Variable y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
  }
  CHECK(grad_enabled());
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("detach cuts the tape but shares the data") {
  Variable x = param({2}, {1});
  Variable d = (x * 3.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.item() == doctest::Approx(6.0));
  Variable y = sum(d * x);  // only the direct path to x counts: dy/dx = d = 6
  y.backward();
  CHECK(x.grad().item() == doctest::Approx(6.0));
}

TEST_CASE("intermediate gradients are freed unless retained") {
  Variable x = param({1, 2}, {2});
  Variable h = x * 2.0;
  Variable k = x * 3.0;
  k.retain_grad();
  Variable y = sum(h + k);
  y.backward();
  CHECK_FALSE(h.grad().defined());
  REQUIRE(k.grad().defined());
  CHECK(k.grad().at({0}) == doctest::Approx(1.0));

  Variable x2 = param({1, 2}, {2});
  Variable h2 = tanh(x2);
  sum(h2).backward(BackwardOptions{.keep_all_grads = true});
  CHECK(h2.grad().defined());
}

TEST_CASE("the tape keeps what backward reads: a value's data goes with its last handle") {
  // 64x64 float32 = 16 KiB a value: cache-sized blocks, counted in the cache's in_use.
  Variable x(Tensor::ones({64, 64}), true);
  const auto in_use = [] { return storage_cache_stats().in_use; };
  const std::size_t before = in_use();
  // x * 2 feeds an add (whose backward reads no data), and the add a sum: neither output is
  // read by a backward, so with no handle left neither is kept.
  const Variable y = sum(x * 2.0 + 1.0);
  if (storage_cache_enabled()) CHECK(in_use() - before < 16 * 1024);
  // tanh's backward reads its output: kept by the closure while the tape lives.
  Variable t = tanh(x * 0.5);
  t.register_hook([](const Tensor& g) { return mul(g, Tensor::scalar(2.0)); });
  const std::size_t with_t = in_use();
  Variable z = sum(t);
  t = Variable();  // the hooked intermediate keeps no handle: its hook still runs
  if (storage_cache_enabled()) CHECK(in_use() == with_t);  // tanh's output lives in its closure
  const std::string dot = to_dot(z);
  CHECK(dot.find("tanh\\nfloat32 [64,64]") != std::string::npos);  // the shape stays
  y.backward();
  z.backward();
  // d/dx sum(2x + 1) = 2, plus the hooked 2 * (1 - tanh(x/2)^2) / 2
  const double th = std::tanh(0.5);
  CHECK(x.grad().at({3, 5}) == doctest::Approx(2.0 + (1 - th * th)).epsilon(1e-6));
}

TEST_CASE("nodes know their op name and shape, DOT export shows both and grad norms") {
  Variable w = param({1, 2, 3, 4, 5, 6}, {2, 3});
  w.set_name("w");
  Variable x = param({1, 1, 1}, {3, 1});
  Variable y = matmul(w, x);
  CHECK(y.op() == Op::matmul);
  CHECK(op_name(y.op()) == "matmul");
  Variable loss = sum(tanh(y));
  loss.backward(BackwardOptions{.keep_all_grads = true});
  const std::string dot = to_dot(loss);
  CHECK(dot.find("digraph") == 0);
  CHECK(dot.find("matmul") != std::string::npos);
  CHECK(dot.find("tanh") != std::string::npos);
  CHECK(dot.find("sum") != std::string::npos);
  CHECK(dot.find("float64 [2,1]") != std::string::npos);
  CHECK(dot.find("w\\n") != std::string::npos);  // the named leaf
  CHECK(dot.find("|grad| = ") != std::string::npos);
  // every edge endpoint is a declared node: 5 values (w, x, matmul, tanh, sum), 4 edges
  CHECK(std::count(dot.begin(), dot.end(), '>') == 4);
}

TEST_CASE("the op registry lists unique names, and primitives create nodes under them") {
  std::set<std::string_view> names;
  for (const auto& info : kOps) names.insert(info.name);
  CHECK(names.size() == kOps.size());
  CHECK(op_name(Op::leaf) == "leaf");
  Variable x = param({1, 2}, {2});
  CHECK(op_name(softmax(x, 0).op()) == "softmax");
  CHECK(op_name((x + x).op()) == "add");
  CHECK(op_name(mean(x).op()) == "affine");  // mean is a composite: sum then scale
}

TEST_CASE("embedding: the padding row receives no gradient (by design, not by calculus)") {
  Variable w(Tensor::from_list({1, 2, 3, 4, 5, 6}, {3, 2}, DType::f64), true);
  Variable y = embedding(w, Tensor::from_list({1, 2, 1, 0}, {2, 2}, DType::i64), 1);
  CHECK(y.shape() == Shape{2, 2, 2});
  CHECK(y.data().at({0, 0, 1}) == doctest::Approx(4.0));  // the padding row is still looked up
  sum(y * y).backward();
  CHECK(w.grad().to_vector<double>() == std::vector<double>{2, 4, 0, 0, 10, 12});
}

TEST_CASE("register_hook: an intermediate's hook sees its gradient and may replace it") {
  // y = sum(3 * (a * a)) with h = a * a: dy/dh = 3, dy/da = 2a * dy/dh.
  Variable a = param({1, 2}, {2});
  Variable h = a * a;
  std::vector<double> seen;
  h.register_hook([&](const Tensor& g) {
    seen = g.to_vector<double>();
    return Tensor();  // keep it
  });
  h.register_hook([](const Tensor& g) { return mul(g, Tensor::scalar(10, g.dtype())); });
  h.retain_grad();
  Variable y = sum(h * 3.0);
  y.backward();
  CHECK(seen == std::vector<double>{3, 3});
  // The second hook's x10 is what flows on to a, and what retain_grad keeps.
  CHECK(h.grad().to_vector<double>() == std::vector<double>{30, 30});
  CHECK(a.grad().to_vector<double>() == std::vector<double>{60, 120});
}

TEST_CASE("register_hook: a leaf's hook sees only this pass's gradient, remove_hook stops it") {
  Variable w = param({1, 2}, {2});
  int calls = 0;
  std::vector<double> seen;
  const std::size_t id = w.register_hook([&](const Tensor& g) {
    ++calls;
    seen = g.to_vector<double>();
    return mul(g, Tensor::scalar(2, g.dtype()));
  });
  sum(w * 5.0).backward();
  CHECK(seen == std::vector<double>{5, 5});
  CHECK(w.grad().to_vector<double>() == std::vector<double>{10, 10});
  sum(w * 1.0).backward();  // accumulates: 10 + 2 * 1
  CHECK(seen == std::vector<double>{1, 1});
  CHECK(w.grad().to_vector<double>() == std::vector<double>{12, 12});
  w.remove_hook(id);
  sum(w * 1.0).backward();
  CHECK(calls == 2);
  CHECK(w.grad().to_vector<double>() == std::vector<double>{13, 13});
  CHECK_THROWS_AS(w.remove_hook(7), IndexError);
}

TEST_CASE("register_hook: errors") {
  Variable c(Tensor::ones({2}, DType::f64));
  CHECK_THROWS_WITH_AS(c.register_hook([](const Tensor& g) { return g; }),
                       doctest::Contains("does not require grad"), ValueError);
  Variable a = param({1, 2}, {2});
  Variable h = a * 2.0;
  h.register_hook([](const Tensor&) { return Tensor::ones({3}, DType::f64); });
  CHECK_THROWS_WITH_AS(sum(h).backward(), doctest::Contains("hook on the affine output float64[2]"),
                       ShapeError);
}

TEST_CASE("anomaly mode: a NaN made in forward names the op and its inputs") {
  Variable a = param({1, -1}, {2});
  {
    Variable quiet = log(a);  // off by default: NaN goes through
    CHECK(std::isnan(quiet.data().at({1})));
  }
  DetectAnomalyGuard on;
  CHECK(detect_anomaly());
  CHECK_THROWS_WITH_AS(log(a),
                       doctest::Contains("the forward of log gave 1 NaN in its output "
                                         "float64[2] (inputs: float64[2])"),
                       AnomalyError);
  // -inf is how masks are written, so it passes forward.
  Variable masked = masked_fill(a, Tensor::from_list({0, 1}, {2}, DType::boolean),
                                -std::numeric_limits<double>::infinity());
  CHECK(std::isinf(masked.data().at({1})));
}

TEST_CASE("anomaly mode: a non-finite gradient names the op whose backward made it") {
  // sqrt(0) is finite, its derivative 1 / (2 sqrt 0) is not.
  Variable a = param({0, 4}, {2});
  Variable w = param({1, 1}, {2});
  const std::size_t id = w.register_hook([](const Tensor& g) { return g; });
  sum(w).backward();
  CHECK(w.grad().to_vector<double>() == std::vector<double>{1, 1});
  {
    DetectAnomalyGuard on;
    Variable y = sum(sqrt(a) * w);
    CHECK_THROWS_WITH_AS(y.backward(),
                         doctest::Contains("the backward of sqrt gave 1 +inf in the gradient of "
                                           "its input 0 float64[2] (inputs: float64[2])"),
                         AnomalyError);
    // The failed pass left the hooked leaf's gradient as it was.
    CHECK(w.grad().to_vector<double>() == std::vector<double>{1, 1});
  }
  CHECK_FALSE(detect_anomaly());
  w.remove_hook(id);
  sum(sqrt(a) * w).backward();  // without anomaly mode the inf goes through
  CHECK(std::isinf(a.grad().at({0})));
}

TEST_CASE_TEMPLATE("autograd: matmul_transposed is x @ w^T, its errors name the shapes", T, float,
                   double) {
  const DType dt = dtype_of<T>();
  const double eps = dt == DType::f32 ? 1e-5 : 1e-13;
  Generator gen(5);
  const Tensor xv = normal({11, 20}, 0, 1, dt, gen), wv = normal({50, 20}, 0, 1, dt, gen);
  const PackedMatrix w_t(wv.transpose(0, 1)), w_packed(wv);
  for (const bool packed_backward : {false, true}) {
    CAPTURE(packed_backward);
    Variable x(xv, true), w(wv, true);
    Variable y = matmul_transposed(x, w, w_t, packed_backward ? w_packed : PackedMatrix());
    CHECK(y.op() == Op::matmul_transposed);
    sum(y * y).backward();
    Variable x2(xv, true), w2(wv, true);
    sum(pow(matmul(x2, transpose(w2, 0, 1)), 2.0)).backward();
    const auto a = y.data().to_vector<double>();
    const auto b = matmul(xv, wv.transpose(0, 1)).to_vector<double>();
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(eps));
    for (const auto& [got, want] :
         {std::pair{x.grad(), x2.grad()}, std::pair{w.grad(), w2.grad()}}) {
      const auto g = got.contiguous().template to_vector<double>(),
                 h = want.contiguous().template to_vector<double>();
      REQUIRE(g.size() == h.size());
      for (std::size_t i = 0; i < g.size(); ++i) {
        CHECK(g[i] == doctest::Approx(h[i]).epsilon(eps));
      }
    }
  }
  Variable x(xv, true), w(wv, true);
  CHECK_THROWS_WITH_AS(matmul_transposed(x, w, PackedMatrix(wv)),
                       "matmul_transposed: x [11,20] @ w [50,20]^T needs x [M,K], w [N,K], w_t "
                       "[K,N] and w_packed [N,K] or none; w_t is [50,20], w_packed none",
                       ShapeError);
  CHECK_THROWS_AS(matmul_transposed(x, w, w_t, w_t), ShapeError);
  const DType other = dt == DType::f32 ? DType::f64 : DType::f32;
  CHECK_THROWS_AS(matmul_transposed(x, w, PackedMatrix(wv.transpose(0, 1).astype(other))),
                  DTypeError);
}

}  // namespace
}  // namespace seqgrad
