// Reductions against a plain reference that walks every index in double precision: sum, mean,
// amax over one, several or all axes, with and without keepdim, on dense and strided inputs;
// max with argmax; sum_to_shape as the adjoint of broadcasting.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/reduce.h"

using namespace seqgrad;

namespace {

enum class Kind { sum, mean, max };

template <class T>
double tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

std::vector<double> values(std::int64_t n, double phase = 0.3) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[i] = 3.0 * std::sin(0.37 * i + phase) + 0.1 * i;
  return v;
}

template <class T>
Tensor make(const std::vector<double>& v, const Shape& shape) {
  return Tensor::from_vector<double>(v, shape).astype(dtype_of<T>());
}

// Reduces x (read in logical row-major order) over `axes` (empty: all) in double precision.
std::vector<double> reference(const Tensor& x, Axes axes, Kind kind) {
  if (axes.empty()) {
    for (std::int64_t i = 0; i < x.dim(); ++i) axes.push_back(i);
  }
  for (auto& a : axes) a = a < 0 ? a + x.dim() : a;
  const Shape& s = x.shape();
  Shape out_shape;
  for (std::int64_t d = 0; d < x.dim(); ++d) {
    const bool r = std::find(axes.begin(), axes.end(), d) != axes.end();
    out_shape.push_back(r ? 1 : s[d]);
  }
  const Shape ost = contiguous_strides(out_shape);
  const auto xv = x.to_vector<double>();
  std::vector<double> acc(static_cast<std::size_t>(shape_numel(out_shape)),
                          kind == Kind::max ? -std::numeric_limits<double>::infinity() : 0.0);
  std::vector<std::int64_t> count(acc.size(), 0);
  for (std::int64_t flat = 0; flat < x.numel(); ++flat) {
    std::int64_t rem = flat, o = 0;
    for (std::int64_t d = x.dim() - 1; d >= 0; --d) {
      const std::int64_t i = rem % s[d];
      rem /= s[d];
      if (out_shape[d] != 1) o += i * ost[d];
    }
    if (kind == Kind::max) {
      acc[o] = std::max(acc[o], xv[flat]);
    } else {
      acc[o] += xv[flat];
    }
    ++count[o];
  }
  if (kind == Kind::mean) {
    for (std::size_t i = 0; i < acc.size(); ++i) acc[i] /= static_cast<double>(count[i]);
  }
  return acc;
}

void check_values(const Tensor& got, const std::vector<double>& want, double eps) {
  const auto g = got.to_vector<double>();
  REQUIRE(g.size() == want.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    CAPTURE(i);
    CHECK(g[i] == doctest::Approx(want[i]).epsilon(eps));
  }
}

Tensor run(Kind k, const Tensor& x, const Axes& axes, bool keepdim) {
  switch (k) {
    case Kind::sum:
      return sum(x, axes, keepdim);
    case Kind::mean:
      return mean(x, axes, keepdim);
    case Kind::max:
      break;
  }
  return amax(x, axes, keepdim);
}

// Every axis combination of a 3-D input (including all axes), both keepdim settings.
void check_all_axes(const Tensor& x, double eps) {
  const std::vector<Axes> combos = {{0},    {1},    {2},      {-1},   {0, 1}, {0, 2},
                                    {1, 2}, {2, 0}, {-1, -3}, {1, 1}, {},     {0, 1, 2}};
  for (Kind k : {Kind::sum, Kind::mean, Kind::max}) {
    for (const auto& axes : combos) {
      for (bool keepdim : {false, true}) {
        CAPTURE(static_cast<int>(k));
        CAPTURE(axes.size());
        CAPTURE(keepdim);
        const Tensor y = run(k, x, axes, keepdim);
        const Axes norm = normalize_axes(axes, x.dim(), "test");
        CHECK(y.shape() == reduced_shape(x.shape(), norm, keepdim));
        CHECK(y.dtype() == x.dtype());
        check_values(y, reference(x, axes, k), eps);
      }
    }
  }
}

}  // namespace

TEST_CASE("normalize_axes and reduced_shape") {
  CHECK(normalize_axes({}, 3, "t") == Axes{0, 1, 2});
  CHECK(normalize_axes({2, -3, 2}, 3, "t") == Axes{0, 2});
  CHECK(normalize_axes({-1}, 2, "t") == Axes{1});
  CHECK_THROWS_AS(normalize_axes({3}, 3, "t"), IndexError);
  CHECK(reduced_shape({2, 3, 4}, {1}, false) == Shape{2, 4});
  CHECK(reduced_shape({2, 3, 4}, {1}, true) == Shape{2, 1, 4});
  CHECK(reduced_shape({2, 3, 4}, {0, 1, 2}, false) == Shape{});
  CHECK(reduced_shape({2, 3, 4}, {0, 2}, true) == Shape{1, 3, 1});
}

TEST_CASE("sum by hand") {
  const Tensor x = Tensor::from_list({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(sum(x).item() == 21.0);
  CHECK(sum(x).shape() == Shape{});
  CHECK(sum(x, {}, true).shape() == Shape{1, 1});
  CHECK(sum(x, {0}).to_vector<float>() == std::vector<float>{5, 7, 9});
  CHECK(sum(x, {1}).to_vector<float>() == std::vector<float>{6, 15});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1});
  CHECK(sum(x, {0, 1}).item() == 21.0);
  CHECK(mean(x).item() == doctest::Approx(3.5));
  CHECK(mean(x, {0}).to_vector<float>() == std::vector<float>{2.5, 3.5, 4.5});
  CHECK(amax(x, {1}).to_vector<float>() == std::vector<float>{3, 6});
  CHECK(amax(x).item() == 6.0);
  CHECK(sum(x.transpose(0, 1), {1}).to_vector<float>() == std::vector<float>{5, 7, 9});
  CHECK(sum(Tensor::scalar(2.5)).item() == 2.5);
  CHECK(mean(Tensor::scalar(2.5)).item() == 2.5);
  CHECK(amax(Tensor::scalar(2.5)).item() == 2.5);
}

TEST_CASE_TEMPLATE("sum, mean, amax over every axis combination", T, float, double) {
  const Tensor x = make<T>(values(2 * 3 * 5), {2, 3, 5});
  check_all_axes(x, tol<T>());
}

TEST_CASE_TEMPLATE("reductions on transposed and strided inputs", T, float, double) {
  const Tensor base = make<T>(values(4 * 3 * 6), {4, 3, 6});
  SUBCASE("permuted") {
    check_all_axes(base.permute({2, 0, 1}), tol<T>());
  }
  SUBCASE("transposed last two") {
    check_all_axes(base.transpose(1, 2), tol<T>());
  }
  SUBCASE("narrowed") {
    check_all_axes(base.narrow(2, 1, 4), tol<T>());
  }
  SUBCASE("expanded (stride 0)") {
    const Tensor e = make<T>({1, -2, 3}, {3, 1}).expand({2, 3, 5});
    check_all_axes(e, tol<T>());
  }
}

TEST_CASE_TEMPLATE("sums over rows of every length", T, float, double) {
  for (std::int64_t n = 1; n <= 37; ++n) {
    CAPTURE(n);
    const Tensor x = make<T>(values(3 * n), {3, n});
    check_values(sum(x, {1}), reference(x, {1}, Kind::sum), tol<T>());
    check_values(sum(x, {0}), reference(x, {0}, Kind::sum), tol<T>());
    check_values(sum(x), reference(x, {}, Kind::sum), tol<T>());
    check_values(mean(x, {1}), reference(x, {1}, Kind::mean), tol<T>());
    check_values(amax(x, {1}), reference(x, {1}, Kind::max), tol<T>());
    const Tensor t = x.transpose(0, 1);  // [n,3]
    check_values(sum(t, {0}), reference(t, {0}, Kind::sum), tol<T>());
    check_values(sum(t, {1}), reference(t, {1}, Kind::sum), tol<T>());
  }
}

TEST_CASE("a large float32 sum stays accurate") {
  const std::int64_t n = 100000;
  const Tensor x = Tensor::full({n}, 0.1, DType::f32);
  CHECK(sum(x).item() == doctest::Approx(n * static_cast<double>(0.1f)).epsilon(1e-4));
  CHECK(mean(x).item() == doctest::Approx(0.1).epsilon(1e-4));
}

TEST_CASE_TEMPLATE("max returns values and the first argmax", T, float, double) {
  const Tensor x = make<T>({1, 5, 5, -2,  //
                            7, 0, 7, 3,   //
                            -1, -1, -4, -9},
                           {3, 4});
  auto r = max(x, 1);
  CHECK(r.values.dtype() == dtype_of<T>());
  CHECK(r.indices.dtype() == DType::i64);
  CHECK(r.values.shape() == Shape{3});
  CHECK(r.values.to_vector<double>() == std::vector<double>{5, 7, -1});
  CHECK(r.indices.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 0});
  r = max(x, 0, true);
  CHECK(r.values.shape() == Shape{1, 4});
  CHECK(r.indices.shape() == Shape{1, 4});
  CHECK(r.values.to_vector<double>() == std::vector<double>{7, 5, 7, 3});
  CHECK(r.indices.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 1, 1});
  CHECK(argmax(x, -1).to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 0});
  CHECK(argmax(x, 0, true).shape() == Shape{1, 4});

  // Transposed input: the axis is the other one of the storage.
  const Tensor t = x.transpose(0, 1);  // [4,3]
  r = max(t, 1);
  CHECK(r.values.to_vector<double>() == std::vector<double>{7, 5, 7, 3});
  CHECK(r.indices.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 1, 1});
  r = max(t, 0);
  CHECK(r.values.to_vector<double>() == std::vector<double>{5, 7, -1});
  CHECK(r.indices.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 0});

  // A 3-D input along the middle axis, checked against a loop.
  const Tensor y = make<T>(values(2 * 5 * 3), {2, 5, 3});
  r = max(y, 1);
  CHECK(r.values.shape() == Shape{2, 3});
  for (std::int64_t i = 0; i < 2; ++i) {
    for (std::int64_t k = 0; k < 3; ++k) {
      std::int64_t best = 0;
      for (std::int64_t j = 1; j < 5; ++j) {
        if (y.at({i, j, k}) > y.at({i, best, k})) best = j;
      }
      CHECK(r.indices.at({i, k}) == static_cast<double>(best));
      CHECK(r.values.at({i, k}) == y.at({i, best, k}));
    }
  }
  // -inf entries are fine; a row of them has argmax 0.
  const double inf = std::numeric_limits<double>::infinity();
  r = max(make<T>({-inf, -inf, -inf, 2}, {2, 2}), 1);
  CHECK(r.indices.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1});
  CHECK(r.values.at({1}) == 2.0);
  CHECK(std::isinf(r.values.at({0})));
}

TEST_CASE_TEMPLATE("sum_to_shape undoes broadcasting", T, float, double) {
  const Tensor x = make<T>(values(24), {2, 3, 4});
  const auto xv = x.to_vector<double>();
  check_values(sum_to_shape(x, {3, 4}), reference(x, {0}, Kind::sum), tol<T>());
  check_values(sum_to_shape(x, {4}), reference(x, {0, 1}, Kind::sum), tol<T>());
  check_values(sum_to_shape(x, {1, 4}), reference(x, {0, 1}, Kind::sum), tol<T>());
  check_values(sum_to_shape(x, {3, 1}), reference(x, {0, 2}, Kind::sum), tol<T>());
  check_values(sum_to_shape(x, {2, 1, 4}), reference(x, {1}, Kind::sum), tol<T>());
  check_values(sum_to_shape(x, {1, 1, 1}), reference(x, {}, Kind::sum), tol<T>());
  check_values(sum_to_shape(x, {}), reference(x, {}, Kind::sum), tol<T>());
  CHECK(sum_to_shape(x, {3, 1}).shape() == Shape{3, 1});
  CHECK(sum_to_shape(x, {}).shape() == Shape{});
  CHECK(sum_to_shape(x, {2, 1, 4}).shape() == Shape{2, 1, 4});
  // Same shape: no work, no copy.
  CHECK(sum_to_shape(x, {2, 3, 4}).shares_storage(x));
  // Dropping only size-1 leading axes is a reshape.
  const Tensor one = make<T>({1, 2, 3}, {1, 1, 3});
  CHECK(sum_to_shape(one, {3}).to_vector<double>() == std::vector<double>{1, 2, 3});
  CHECK(sum_to_shape(one, {3}).shape() == Shape{3});
  // A transposed gradient.
  const Tensor t = x.transpose(0, 2);  // [4,3,2]
  check_values(sum_to_shape(t, {3, 1}), reference(t, {0, 2}, Kind::sum), tol<T>());
  // The adjoint property: <expand(b), x> == <b, sum_to_shape(x)>.
  const Tensor b = make<T>({0.5, -1, 2}, {3, 1});
  const auto be = b.expand({2, 3, 4}).to_vector<double>();
  double lhs = 0;
  for (std::size_t i = 0; i < xv.size(); ++i) lhs += be[i] * xv[i];
  const auto s = sum_to_shape(x, {3, 1}).to_vector<double>();
  const auto bv = b.to_vector<double>();
  double rhs = 0;
  for (std::size_t i = 0; i < s.size(); ++i) rhs += bv[i] * s[i];
  CHECK(lhs == doctest::Approx(rhs).epsilon(tol<T>()));

  CHECK_THROWS_AS(sum_to_shape(x, {5}), ShapeError);
  CHECK_THROWS_AS(sum_to_shape(x, {2, 3}), ShapeError);
  CHECK_THROWS_AS(sum_to_shape(x, {1, 2, 3, 4}), ShapeError);
}

TEST_CASE("reduction edge cases and errors") {
  const Tensor e = Tensor::zeros({2, 0});
  CHECK(sum(e, {1}).to_vector<float>() == std::vector<float>{0, 0});
  CHECK(sum(e).item() == 0.0);
  CHECK_THROWS_AS(mean(e, {1}), ValueError);
  CHECK_THROWS_AS(max(e, 1), ValueError);
  const Tensor x = Tensor::ones({2, 3});
  CHECK_THROWS_AS(sum(x, {2}), IndexError);
  CHECK_THROWS_AS(amax(x, {-3}), IndexError);
  CHECK_THROWS_AS(max(x, 2), IndexError);
  CHECK_THROWS_AS(sum(Tensor::ones({2}, DType::i64)), DTypeError);
  CHECK_THROWS_AS(max(Tensor::ones({2}, DType::i64), 0), DTypeError);
  CHECK_THROWS_AS(sum(Tensor()), ValueError);
}
