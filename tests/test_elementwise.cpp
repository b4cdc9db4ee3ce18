// Elementwise kernels against scalar references in double precision: every op, every length
// from 1 to 37 (so the SIMD body and the scalar tail both run), float32 and float64,
// broadcasting, strided (transposed, narrowed) inputs, masks, backward kernels and in-place ops.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tensor/elementwise.h"

using namespace seqgrad;

namespace {

constexpr std::int64_t kMaxLen = 37;  // past two AVX-512 float32 batches plus a tail

template <class T>
double tol() {
  return std::is_same_v<T, float> ? 2e-6 : 1e-13;
}

// A deterministic spread of values in [shift - scale, shift + scale].
std::vector<double> values(std::int64_t n, double scale = 3.0, double shift = 0.0,
                           double phase = 0.3) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[i] = shift + scale * std::sin(0.7 * i + phase);
  return v;
}

template <class T>
Tensor make(const std::vector<double>& v, const Shape& shape) {
  return Tensor::from_vector<double>(v, shape).astype(dtype_of<T>());
}

std::vector<double> vec(const Tensor& t) {
  return t.to_vector<double>();
}

void check_values(const Tensor& got, const std::vector<double>& want, double eps) {
  const auto g = got.to_vector<double>();
  REQUIRE(g.size() == want.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    CAPTURE(i);
    CHECK(g[i] == doctest::Approx(want[i]).epsilon(eps));
  }
}

std::vector<double> map1(const std::vector<double>& x, const std::function<double(double)>& f) {
  std::vector<double> y(x.size());
  std::transform(x.begin(), x.end(), y.begin(), f);
  return y;
}

std::vector<double> map2(const std::vector<double>& a, const std::vector<double>& b,
                         const std::function<double(double, double)>& f) {
  std::vector<double> y(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) y[i] = f(a[i], b[i]);
  return y;
}

struct UnaryCase {
  std::string name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  bool positive;  // the op needs x > 0
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, false},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, false},
      {"log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }, true},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); },
       false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); },
       [](double v) { return 1.0 / (1.0 + std::exp(-v)); }, false},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0.0; },
       false},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); },
       true},
      {"pow2", [](const Tensor& x) { return pow(x, 2.0); }, [](double v) { return v * v; }, false},
      {"pow1", [](const Tensor& x) { return pow(x, 1.0); }, [](double v) { return v; }, false},
      {"pow0.5", [](const Tensor& x) { return pow(x, 0.5); }, [](double v) { return std::sqrt(v); },
       true},
      {"pow-1", [](const Tensor& x) { return pow(x, -1.0); }, [](double v) { return 1.0 / v; },
       true},
      {"pow3", [](const Tensor& x) { return pow(x, 3.0); },
       [](double v) { return std::pow(v, 3.0); }, true},
      {"pow1.7", [](const Tensor& x) { return pow(x, 1.7); },
       [](double v) { return std::pow(v, 1.7); }, true},
      {"affine", [](const Tensor& x) { return affine(x, -2.5, 0.75); },
       [](double v) { return v * -2.5 + 0.75; }, false},
  };
}

struct BinaryCase {
  std::string name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); },
       [](double a, double b) { return a + b; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); },
       [](double a, double b) { return a - b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); },
       [](double a, double b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); },
       [](double a, double b) { return a / b; }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }},
      {"tanh_backward", [](const Tensor& y, const Tensor& dy) { return tanh_backward(y, dy); },
       [](double y, double dy) { return dy * (1 - y * y); }},
      {"sigmoid_backward",
       [](const Tensor& y, const Tensor& dy) { return sigmoid_backward(y, dy); },
       [](double y, double dy) { return dy * y * (1 - y); }},
      {"relu_backward", [](const Tensor& x, const Tensor& dy) { return relu_backward(x, dy); },
       [](double x, double dy) { return x > 0 ? dy : 0.0; }},
  };
}

struct CompareCase {
  std::string name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<bool(double, double)> ref;
};

std::vector<CompareCase> compare_cases() {
  return {
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); },
       [](double a, double b) { return a == b; }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); },
       [](double a, double b) { return a != b; }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); },
       [](double a, double b) { return a < b; }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); },
       [](double a, double b) { return a <= b; }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); },
       [](double a, double b) { return a > b; }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); },
       [](double a, double b) { return a >= b; }},
  };
}

std::vector<std::int64_t> as_ints(const std::vector<bool>& v) {
  return std::vector<std::int64_t>(v.begin(), v.end());
}

}  // namespace

TEST_CASE_TEMPLATE("unary ops on every length", T, float, double) {
  for (const auto& c : unary_cases()) {
    CAPTURE(c.name);
    for (std::int64_t n = 1; n <= kMaxLen; ++n) {
      CAPTURE(n);
      const Tensor x = c.positive ? make<T>(values(n, 1.5, 1.6), {n}) : make<T>(values(n), {n});
      const Tensor y = c.op(x);
      CHECK(y.dtype() == dtype_of<T>());
      CHECK(y.shape() == Shape{n});
      check_values(y, map1(x.to_vector<double>(), c.ref), 2 * tol<T>());
    }
  }
}

TEST_CASE_TEMPLATE("unary ops on strided views", T, float, double) {
  for (const auto& c : unary_cases()) {
    CAPTURE(c.name);
    const std::vector<double> v = c.positive ? values(7 * 19, 1.5, 1.6) : values(7 * 19);
    const Tensor base = make<T>(v, {7, 19});
    // Transposed: every row has stride 19, so the scalar path runs.
    const Tensor t = base.transpose(0, 1);
    check_values(c.op(t), map1(t.to_vector<double>(), c.ref), 2 * tol<T>());
    // Narrowed columns: dense rows at an offset, so SIMD runs row by row.
    const Tensor nr = base.narrow(1, 1, 17);
    CHECK_FALSE(nr.is_contiguous());
    const Tensor y = c.op(nr);
    CHECK(y.is_contiguous());
    CHECK(y.shape() == Shape{7, 17});
    check_values(y, map1(nr.to_vector<double>(), c.ref), 2 * tol<T>());
    // A broadcast (stride 0) input.
    const Tensor e = make<T>(c.positive ? std::vector<double>{2.5} : std::vector<double>{-0.5}, {1})
                         .expand({3, 5});
    check_values(c.op(e), map1(e.to_vector<double>(), c.ref), 2 * tol<T>());
  }
}

TEST_CASE_TEMPLATE("unary ops on scalars and empty tensors", T, float, double) {
  const Tensor s = Tensor::scalar(0.5, dtype_of<T>());
  CHECK(exp(s).shape() == Shape{});
  CHECK(exp(s).item() == doctest::Approx(std::exp(0.5)).epsilon(tol<T>()));
  const Tensor e = Tensor::zeros({0, 4}, dtype_of<T>());
  CHECK(tanh(e).shape() == Shape{0, 4});
  CHECK(add(e, Tensor::ones({4}, dtype_of<T>())).shape() == Shape{0, 4});
}

TEST_CASE_TEMPLATE("saturating unary ops stay finite", T, float, double) {
  const Tensor x = make<T>({-1000, -50, 0, 50, 1000}, {5});
  const auto sg = sigmoid(x).to_vector<double>();
  CHECK(sg[0] == 0.0);
  CHECK(sg[1] == doctest::Approx(1.0 / (1.0 + std::exp(50.0))).epsilon(1e-5).scale(0));
  CHECK(sg[2] == 0.5);
  CHECK(sg[3] == 1.0);
  CHECK(sg[4] == 1.0);
  const auto th = tanh(x).to_vector<double>();
  CHECK(th[0] == -1.0);
  CHECK(th[2] == 0.0);
  CHECK(th[4] == 1.0);
  CHECK(relu(x).to_vector<double>() == std::vector<double>{0, 0, 0, 50, 1000});
  CHECK(std::isinf(exp(x).to_vector<double>()[4]));
  CHECK(exp(x).to_vector<double>()[0] == 0.0);
  const auto lg = vec(log(make<T>({0.0}, {1})));
  CHECK(std::isinf(lg[0]));
  CHECK(lg[0] < 0);
}

TEST_CASE_TEMPLATE("binary ops on every length", T, float, double) {
  for (const auto& c : binary_cases()) {
    CAPTURE(c.name);
    for (std::int64_t n = 1; n <= kMaxLen; ++n) {
      CAPTURE(n);
      // Exact zeros in a (relu's kink) reach the SIMD body as well as the tail.
      std::vector<double> va = values(n, 2.0, 0.0, 0.3);
      for (std::int64_t i = 3; i < n; i += 7) va[i] = 0.0;
      const Tensor a = make<T>(va, {n});
      // b kept away from 0 so div is well conditioned; includes ties with a for max/min.
      std::vector<double> vb = values(n, 1.0, 2.5, 1.1);
      for (std::int64_t i = 0; i < n; i += 5) vb[i] = a.at({i});
      if (c.name == "div") {
        for (auto& v : vb) v = std::abs(v) + 0.5;
      }
      const Tensor b = make<T>(vb, {n});
      const auto av = a.to_vector<double>(), bv = b.to_vector<double>();
      check_values(c.op(a, b), map2(av, bv, c.ref), 4 * tol<T>());

      // Broadcast scalar on either side (the stride-0 SIMD paths).
      const Tensor s = Tensor::scalar(1.75, dtype_of<T>());
      check_values(c.op(a, s), map2(av, std::vector<double>(n, 1.75), c.ref), 4 * tol<T>());
      check_values(c.op(s, b), map2(std::vector<double>(n, 1.75), bv, c.ref), 4 * tol<T>());
      CHECK(c.op(a, s).shape() == Shape{n});
    }
  }
}

TEST_CASE_TEMPLATE("binary ops broadcast [3,1] x [1,4] and friends", T, float, double) {
  const Tensor col = make<T>({1, 2, 3}, {3, 1});
  const Tensor row = make<T>({10, 20, 30, 40}, {1, 4});
  const Tensor s = add(col, row);
  CHECK(s.shape() == Shape{3, 4});
  CHECK(s.to_vector<double>() ==
        std::vector<double>{11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43});
  CHECK(sub(row, col).to_vector<double>() ==
        std::vector<double>{9, 19, 29, 39, 8, 18, 28, 38, 7, 17, 27, 37});
  CHECK(mul(col, row).to_vector<double>() ==
        std::vector<double>{10, 20, 30, 40, 20, 40, 60, 80, 30, 60, 90, 120});
  CHECK(vec(maximum(col, make<T>({2}, {1}))) == std::vector<double>{2, 2, 3});

  // [2,3,4] with [4], [3,1] and [] operands.
  const auto xv = values(24);
  const Tensor x = make<T>(xv, {2, 3, 4});
  const auto x_ref = x.to_vector<double>();
  const Tensor v4 = make<T>({1, -1, 2, -2}, {4});
  const Tensor v31 = make<T>({0.5, 1.5, 2.5}, {3, 1});
  std::vector<double> want4(24), want31(24);
  for (std::size_t i = 0; i < 24; ++i) {
    want4[i] = x_ref[i] * std::vector<double>{1, -1, 2, -2}[i % 4];
    want31[i] = x_ref[i] - std::vector<double>{0.5, 1.5, 2.5}[(i / 4) % 3];
  }
  check_values(mul(x, v4), want4, tol<T>());
  check_values(mul(v4, x), want4, tol<T>());
  check_values(sub(x, v31), want31, tol<T>());
  CHECK(mul(x, v31).shape() == Shape{2, 3, 4});
  CHECK(add(v31, Tensor::ones({2, 1, 1}, dtype_of<T>())).shape() == Shape{2, 3, 1});

  // Two scalars give a scalar.
  const Tensor z = mul(Tensor::scalar(3, dtype_of<T>()), Tensor::scalar(4, dtype_of<T>()));
  CHECK(z.shape() == Shape{});
  CHECK(z.item() == 12.0);
  // A [1] operand broadcasts like a scalar but keeps one axis.
  CHECK(add(Tensor::scalar(1, dtype_of<T>()), make<T>({2}, {1})).shape() == Shape{1});
}

TEST_CASE_TEMPLATE("binary ops on non-contiguous inputs", T, float, double) {
  const Tensor a = make<T>(values(5 * 23), {5, 23});
  const Tensor b = make<T>(values(23 * 5, 1.0, 2.0, 0.9), {23, 5});
  const Tensor at = a.transpose(0, 1);  // [23,5], strided
  const auto av = at.to_vector<double>(), bv = b.to_vector<double>();
  for (const auto& c : binary_cases()) {
    CAPTURE(c.name);
    check_values(c.op(at, b), map2(av, bv, c.ref), 4 * tol<T>());
    check_values(c.op(b, at), map2(bv, av, c.ref), 4 * tol<T>());
    // Both transposed: the result is dense and in logical order.
    const Tensor bt = b.transpose(0, 1);
    const Tensor y = c.op(a, bt);
    CHECK(y.is_contiguous());
    check_values(y, map2(a.to_vector<double>(), bt.to_vector<double>(), c.ref), 4 * tol<T>());
  }
  // A transposed operand broadcast against a row: [23,5] + [5] and + [23,1].
  const Tensor r = make<T>({1, 2, 3, 4, 5}, {5});
  std::vector<double> want(av.size());
  for (std::size_t i = 0; i < av.size(); ++i) want[i] = av[i] + static_cast<double>(i % 5 + 1);
  check_values(add(at, r), want, tol<T>());
  const Tensor cvec = make<T>(values(23, 1.0, 0.0, 2.0), {23, 1});
  const auto cv = cvec.to_vector<double>();
  for (std::size_t i = 0; i < av.size(); ++i) want[i] = av[i] * cv[i / 5];
  check_values(mul(at, cvec), want, tol<T>());
  // Narrowed columns (dense rows at an offset) against a column vector of stride 0 inside rows.
  const Tensor nr = a.narrow(1, 3, 19);
  const Tensor c5 = make<T>({1, 2, 3, 4, 5}, {5, 1});
  const auto nv = nr.to_vector<double>();
  std::vector<double> want2(nv.size());
  for (std::size_t i = 0; i < nv.size(); ++i) want2[i] = nv[i] - static_cast<double>(i / 19 + 1);
  check_values(sub(nr, c5), want2, tol<T>());
}

TEST_CASE_TEMPLATE("comparisons give boolean masks", T, float, double) {
  for (const auto& c : compare_cases()) {
    CAPTURE(c.name);
    for (std::int64_t n = 1; n <= kMaxLen; n += 6) {
      std::vector<double> va(n), vb(n);
      for (std::int64_t i = 0; i < n; ++i) {
        va[i] = static_cast<double>(i % 3);
        vb[i] = static_cast<double>((i / 2) % 3);
      }
      const Tensor m = c.op(make<T>(va, {n}), make<T>(vb, {n}));
      CHECK(m.dtype() == DType::boolean);
      CHECK(m.shape() == Shape{n});
      std::vector<bool> want(n);
      for (std::int64_t i = 0; i < n; ++i) want[i] = c.ref(va[i], vb[i]);
      CHECK(m.to_vector<std::int64_t>() == as_ints(want));
    }
    // Broadcast [3,1] against [1,4], and a transposed operand.
    const Tensor col = make<T>({0, 1, 2}, {3, 1});
    const Tensor row = make<T>({0, 1, 2, 3}, {1, 4});
    const Tensor m = c.op(col, row);
    CHECK(m.shape() == Shape{3, 4});
    std::vector<bool> want;
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 4; ++j) want.push_back(c.ref(i, j));
    }
    CHECK(m.to_vector<std::int64_t>() == as_ints(want));
    const Tensor grid = make<T>({0, 1, 2, 3, 1, 1, 0, 2, 2, 3, 3, 0}, {3, 4});
    const Tensor mt = c.op(grid.transpose(0, 1), make<T>({1, 1, 2}, {3}));
    std::vector<bool> want_t;
    for (int j = 0; j < 4; ++j) {
      for (int i = 0; i < 3; ++i) want_t.push_back(c.ref(grid.at({i, j}), i < 2 ? 1 : 2));
    }
    CHECK(mt.to_vector<std::int64_t>() == as_ints(want_t));
  }
}

TEST_CASE("comparisons on int64 and bool, logical_not") {
  const Tensor a = Tensor::from_list({1, 5, -3}, {3}, DType::i64);
  const Tensor b = Tensor::from_list({1, 2, 7}, {3}, DType::i64);
  CHECK(eq(a, b).to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 0});
  CHECK(lt(a, b).to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 0, 1});
  CHECK(ge(a, Tensor::scalar(1, DType::i64)).to_vector<std::int64_t>() ==
        std::vector<std::int64_t>{1, 1, 0});
  const Tensor m = Tensor::from_list({1, 0, 1, 1}, {2, 2}, DType::boolean);
  const Tensor nm = logical_not(m);
  CHECK(nm.dtype() == DType::boolean);
  CHECK(nm.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 0, 0});
  CHECK(logical_not(m.transpose(0, 1)).to_vector<std::int64_t>() ==
        std::vector<std::int64_t>{0, 0, 1, 0});
  CHECK(logical_not(nm).to_vector<std::int64_t>() == m.to_vector<std::int64_t>());
  CHECK(eq(m, nm).to_vector<std::int64_t>() == std::vector<std::int64_t>(4, 0));
  CHECK_THROWS_AS(logical_not(a), DTypeError);
  CHECK_THROWS_AS(eq(a, Tensor::zeros({3})), DTypeError);
}

TEST_CASE_TEMPLATE("where and masked_fill", T, float, double) {
  const DType d = dtype_of<T>();
  const Tensor cond = Tensor::from_list({1, 0, 0, 1, 1, 0}, {2, 3}, DType::boolean);
  const Tensor a = make<T>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = make<T>({-1, -2, -3, -4, -5, -6}, {2, 3});
  CHECK(where(cond, a, b).to_vector<double>() == std::vector<double>{1, -2, -3, 4, 5, -6});
  // Broadcast condition (a column), broadcast scalar branch.
  const Tensor ccol = Tensor::from_list({0, 1}, {2, 1}, DType::boolean);
  CHECK(where(ccol, a, Tensor::scalar(9, d)).to_vector<double>() ==
        std::vector<double>{9, 9, 9, 4, 5, 6});
  // Everything broadcasts: [2,1] cond, [3] a, [] b -> [2,3].
  const Tensor w = where(ccol, make<T>({7, 8, 9}, {3}), Tensor::scalar(0, d));
  CHECK(w.shape() == Shape{2, 3});
  CHECK(w.to_vector<double>() == std::vector<double>{0, 0, 0, 7, 8, 9});
  // Transposed inputs.
  CHECK(where(cond.transpose(0, 1), a.transpose(0, 1), b.transpose(0, 1)).to_vector<double>() ==
        std::vector<double>{1, 4, -2, 5, -3, -6});
  CHECK(where(cond, Tensor::from_list({1, 2, 3}, {3}, DType::i64), Tensor::scalar(0, DType::i64))
            .to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 0, 1, 2, 0});
  CHECK_THROWS_AS(where(a, a, b), DTypeError);
  CHECK_THROWS_AS(where(cond, a, Tensor::zeros({2, 3}, DType::i64)), DTypeError);

  // masked_fill: true positions take the value.
  const Tensor f = masked_fill(a, cond, -100);
  CHECK(f.dtype() == d);
  CHECK(f.to_vector<double>() == std::vector<double>{-100, 2, 3, -100, -100, 6});
  const Tensor row_mask = Tensor::from_list({0, 1, 0}, {3}, DType::boolean);
  const auto fi =
      masked_fill(a, row_mask, -std::numeric_limits<double>::infinity()).to_vector<double>();
  for (std::size_t i = 0; i < fi.size(); ++i) {
    if (i % 3 == 1) {
      CHECK(std::isinf(fi[i]));
      CHECK(fi[i] < 0);
    } else {
      CHECK(fi[i] == static_cast<double>(i + 1));
    }
  }
  CHECK(masked_fill(a.transpose(0, 1), Tensor::from_list({1, 0}, {2}, DType::boolean), 0)
            .to_vector<double>() == std::vector<double>{0, 4, 0, 5, 0, 6});
  CHECK_THROWS_AS(masked_fill(a, Tensor::zeros({2, 3}), 0), DTypeError);
  CHECK_THROWS_AS(masked_fill(make<T>({1, 2, 3}, {3}), cond, 0), ShapeError);
}

TEST_CASE_TEMPLATE("backward kernels match their formulas", T, float, double) {
  const Tensor x = make<T>(values(11), {11});
  const Tensor dy = make<T>(values(11, 1.0, 0.2, 2.1), {11});
  const auto dyv = dy.to_vector<double>();

  // tanh: the derivative of tanh(x) at x, evaluated from y.
  const Tensor yt = tanh(x);
  const auto ytv = yt.to_vector<double>();
  const auto dxt = tanh_backward(yt, dy).to_vector<double>();
  const auto dxs = sigmoid_backward(sigmoid(x), dy).to_vector<double>();
  const auto dxr = relu_backward(x, dy).to_vector<double>();
  const auto xv = x.to_vector<double>();
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const double th = std::tanh(xv[i]);
    const double sg = 1 / (1 + std::exp(-xv[i]));
    CHECK(dxt[i] == doctest::Approx(dyv[i] * (1 - th * th)).epsilon(10 * tol<T>()));
    CHECK(dxs[i] == doctest::Approx(dyv[i] * sg * (1 - sg)).epsilon(10 * tol<T>()));
    CHECK(dxr[i] == (xv[i] > 0 ? dyv[i] : 0.0));
  }
  // relu's kink: the gradient at exactly 0 is 0.
  CHECK(vec(relu_backward(make<T>({0, -0.0, 1e-30}, {3}), make<T>({5, 5, 5}, {3}))) ==
        std::vector<double>{0, 0, 5});

  if constexpr (std::is_same_v<T, double>) {
    // Central differences in float64.
    const double h = 1e-6;
    for (std::size_t i = 0; i < xv.size(); ++i) {
      const double fd_t = (std::tanh(xv[i] + h) - std::tanh(xv[i] - h)) / (2 * h);
      const double fd_s =
          (1 / (1 + std::exp(-(xv[i] + h))) - 1 / (1 + std::exp(-(xv[i] - h)))) / (2 * h);
      CHECK(dxt[i] == doctest::Approx(dyv[i] * fd_t).epsilon(1e-8));
      CHECK(dxs[i] == doctest::Approx(dyv[i] * fd_s).epsilon(1e-8));
    }
  }
  // Backward kernels broadcast like any binary op: dy scalar.
  CHECK(relu_backward(x, Tensor::scalar(2, dtype_of<T>())).shape() == Shape{11});
}

TEST_CASE_TEMPLATE("add_ accumulates in place", T, float, double) {
  for (std::int64_t n = 1; n <= kMaxLen; ++n) {
    CAPTURE(n);
    Tensor a = make<T>(values(n), {n});
    const auto before = a.to_vector<double>();
    const void* p = a.raw_data();
    const Tensor b = make<T>(values(n, 2.0, 1.0, 0.5), {n});
    add_(a, b);
    CHECK(a.raw_data() == p);
    check_values(a, map2(before, b.to_vector<double>(), std::plus<>()), tol<T>());
  }
  // Broadcast source: a row, a column, a scalar, a transposed matrix.
  Tensor a = Tensor::zeros({3, 4}, dtype_of<T>());
  add_(a, make<T>({1, 2, 3, 4}, {4}));
  add_(a, make<T>({10, 20, 30}, {3, 1}));
  add_(a, Tensor::scalar(100, dtype_of<T>()));
  CHECK(a.to_vector<double>() ==
        std::vector<double>{111, 112, 113, 114, 121, 122, 123, 124, 131, 132, 133, 134});
  Tensor z = Tensor::zeros({4, 3}, dtype_of<T>());
  add_(z, a.transpose(0, 1));
  CHECK(z.to_vector<double>() == a.transpose(0, 1).to_vector<double>());
  // A dense view at an offset is a valid destination.
  Tensor base = Tensor::zeros({4, 3}, dtype_of<T>());
  Tensor rows = base.narrow(0, 1, 2);
  add_(rows, Tensor::ones({3}, dtype_of<T>()));
  CHECK(base.to_vector<double>() == std::vector<double>{0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0});
  // x += x
  Tensor x = make<T>({1, 2, 3}, {3});
  add_(x, x);
  CHECK(x.to_vector<double>() == std::vector<double>{2, 4, 6});

  // Strided destinations: a column slab and a transposed view.
  Tensor wide = Tensor::zeros({3, 5}, dtype_of<T>());
  Tensor cols = wide.narrow(1, 1, 2);
  add_(cols, make<T>({1, 2, 3, 4, 5, 6}, {3, 2}));
  CHECK(wide.to_vector<double>() ==
        std::vector<double>{0, 1, 2, 0, 0, 0, 3, 4, 0, 0, 0, 5, 6, 0, 0});
  Tensor t = Tensor::zeros({3, 4}, dtype_of<T>());
  Tensor tt = t.transpose(0, 1);
  add_(tt, make<T>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {4, 3}));
  CHECK(t.to_vector<double>() == std::vector<double>{1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12});
  Tensor bc = Tensor::zeros({1, 4}, dtype_of<T>()).expand({3, 4});
  CHECK_THROWS_AS(add_(bc, Tensor::ones({3, 4}, dtype_of<T>())), ValueError);
  Tensor small = Tensor::zeros({4}, dtype_of<T>());
  CHECK_THROWS_AS(add_(small, Tensor::ones({3, 4}, dtype_of<T>())), ShapeError);
  CHECK_THROWS_AS(
      add_(small, Tensor::ones({4}, DType::f64 == dtype_of<T>() ? DType::f32 : DType::f64)),
      DTypeError);
}

TEST_CASE_TEMPLATE("axpy_ adds a scaled tensor in place", T, float, double) {
  for (std::int64_t n = 1; n <= kMaxLen; ++n) {
    CAPTURE(n);
    Tensor a = make<T>(values(n), {n});
    const auto av = a.to_vector<double>();
    const Tensor b = make<T>(values(n, 1.0, 0.5, 2.0), {n});
    axpy_(a, -0.25, b);
    check_values(a,
                 map2(av, b.to_vector<double>(), [](double x, double y) { return x - 0.25 * y; }),
                 tol<T>());
  }
  Tensor m = Tensor::ones({2, 3}, dtype_of<T>());
  axpy_(m, 2.0, make<T>({1, 2, 3, 4, 5, 6}, {2, 3}));
  CHECK(m.to_vector<double>() == std::vector<double>{3, 5, 7, 9, 11, 13});
  // Dense views at an offset (rows of a bigger tensor) are valid operands.
  Tensor big = Tensor::zeros({4, 3}, dtype_of<T>());
  Tensor mid = big.narrow(0, 1, 2);
  axpy_(mid, 0.5, m.narrow(0, 0, 2));
  CHECK(vec(big) == std::vector<double>{0, 0, 0, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 0, 0, 0});
  CHECK_THROWS_AS(axpy_(m, 1.0, Tensor::ones({3}, dtype_of<T>())), ShapeError);
  CHECK_THROWS_AS(axpy_(m, 1.0, Tensor::ones({3, 2}, dtype_of<T>()).transpose(0, 1)), ShapeError);
}

TEST_CASE("floating ops reject other dtypes and mixed dtypes") {
  const Tensor i = Tensor::from_list({1, 2}, {2}, DType::i64);
  const Tensor f = Tensor::ones({2});
  CHECK_THROWS_AS(exp(i), DTypeError);
  CHECK_THROWS_AS(add(i, i), DTypeError);
  CHECK_THROWS_AS(add(f, f.astype(DType::f64)), DTypeError);
  CHECK_THROWS_AS(relu(Tensor::ones({2}, DType::boolean)), DTypeError);
  CHECK_THROWS_AS(exp(Tensor()), ValueError);
  CHECK_THROWS_AS(add(f, Tensor()), ValueError);
}
