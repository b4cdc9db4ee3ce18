// Joining, splitting and indexing: concat, stack, split; index_select and its adjoint index_add_
// (repeated indices accumulate); gather and its adjoint scatter_add_ along axes 0 and 1; and
// out-of-range indices, which throw IndexError before anything is written.
#include <doctest/doctest.h>

#include <vector>

#include "tensor/index.h"

using namespace seqgrad;

namespace {

using I = std::vector<std::int64_t>;

Tensor iota(const Shape& shape, DType dtype = DType::f32) {
  return Tensor::arange(shape_numel(shape), DType::i64).astype(dtype).reshape(shape);
}

Tensor idx(const I& v, const Shape& shape) {
  return Tensor::from_vector<std::int64_t>(v, shape);
}
Tensor idx(const I& v) {
  return idx(v, {static_cast<std::int64_t>(v.size())});
}

std::vector<double> vec(const Tensor& t) {
  return t.to_vector<double>();
}

}  // namespace

TEST_CASE("concat along each axis") {
  const Tensor a = iota({2, 3});                                 // 0..5
  const Tensor b = Tensor::from_list({10, 11, 12}, {1, 3});      // one row
  const Tensor c = Tensor::from_list({20, 21, 22, 23}, {2, 2});  // two columns
  const Tensor r = concat({a, b}, 0);
  CHECK(r.shape() == Shape{3, 3});
  CHECK(vec(r) == std::vector<double>{0, 1, 2, 3, 4, 5, 10, 11, 12});
  const Tensor k = concat({a, c}, 1);
  CHECK(k.shape() == Shape{2, 5});
  CHECK(vec(k) == std::vector<double>{0, 1, 2, 20, 21, 3, 4, 5, 22, 23});
  CHECK(vec(concat({c, a}, -1)) == std::vector<double>{20, 21, 0, 1, 2, 22, 23, 3, 4, 5});
  // Three inputs, one of them transposed and one empty along the axis.
  const Tensor t = iota({3, 2}).transpose(0, 1);  // {0,2,4},{1,3,5}
  const Tensor k3 = concat({a, Tensor::zeros({2, 0}), t}, 1);
  CHECK(k3.shape() == Shape{2, 6});
  CHECK(vec(k3) == std::vector<double>{0, 1, 2, 0, 2, 4, 3, 4, 5, 1, 3, 5});
  // A single input is a copy.
  const Tensor one = concat({a}, 0);
  CHECK_FALSE(one.shares_storage(a));
  CHECK(vec(one) == vec(a));
  // int64 and bool concatenate too.
  CHECK(concat({idx({1, 2}), idx({3})}, 0).to_vector<std::int64_t>() == I{1, 2, 3});
  // 3-D along the middle axis.
  const Tensor x = iota({2, 1, 2}), y = iota({2, 2, 2}, DType::f32);
  const Tensor m = concat({x, y}, 1);
  CHECK(m.shape() == Shape{2, 3, 2});
  CHECK(vec(m) == std::vector<double>{0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 6, 7});

  CHECK_THROWS_AS(concat({a, c}, 0), ShapeError);
  CHECK_THROWS_AS(concat({a, iota({2, 3}, DType::f64)}, 0), DTypeError);
  CHECK_THROWS_AS(concat({a, iota({6})}, 0), ShapeError);
  CHECK_THROWS_AS(concat({}, 0), ValueError);
  CHECK_THROWS_AS(concat({a, Tensor()}, 0), ValueError);
  CHECK_THROWS_AS(concat({a, a}, 2), IndexError);
}

TEST_CASE("stack adds an axis") {
  const Tensor a = iota({2, 3});
  const Tensor b = Tensor::full({2, 3}, -1);
  const Tensor s0 = stack({a, b}, 0);
  CHECK(s0.shape() == Shape{2, 2, 3});
  CHECK(vec(s0) == std::vector<double>{0, 1, 2, 3, 4, 5, -1, -1, -1, -1, -1, -1});
  const Tensor s1 = stack({a, b}, 1);
  CHECK(s1.shape() == Shape{2, 2, 3});
  CHECK(vec(s1) == std::vector<double>{0, 1, 2, -1, -1, -1, 3, 4, 5, -1, -1, -1});
  const Tensor s2 = stack({a, b}, -1);
  CHECK(s2.shape() == Shape{2, 3, 2});
  CHECK(vec(s2) == std::vector<double>{0, -1, 1, -1, 2, -1, 3, -1, 4, -1, 5, -1});
  // Scalars stack into a vector.
  CHECK(vec(stack({Tensor::scalar(1), Tensor::scalar(2), Tensor::scalar(3)}, 0)) ==
        std::vector<double>{1, 2, 3});
  // A transposed input.
  CHECK(vec(stack({a.transpose(0, 1), b.transpose(0, 1)}, 0).select(0, 0)) ==
        std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK_THROWS_AS(stack({a, iota({3, 2})}, 0), ShapeError);
  CHECK_THROWS_AS(stack({a, b}, 3), IndexError);
  CHECK_THROWS_AS(stack({}, 0), ValueError);
}

TEST_CASE("split gives views") {
  const Tensor x = iota({5, 4});
  const auto parts = split(x, {2, 3}, 0);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].shape() == Shape{2, 4});
  CHECK(parts[1].shape() == Shape{3, 4});
  CHECK(parts[0].shares_storage(x));
  CHECK(parts[1].shares_storage(x));
  CHECK(vec(parts[1].select(0, 0)) == std::vector<double>{8, 9, 10, 11});
  const auto cols = split(x, {1, 0, 3}, 1);
  REQUIRE(cols.size() == 3);
  CHECK(vec(cols[0]) == std::vector<double>{0, 4, 8, 12, 16});
  CHECK(cols[1].numel() == 0);
  CHECK(cols[2].shape() == Shape{5, 3});
  CHECK(vec(cols[2].select(0, 1)) == std::vector<double>{5, 6, 7});
  // split then concat is the identity.
  CHECK(vec(concat(split(x, {1, 3}, -1), -1)) == vec(x));
  CHECK(vec(concat(split(x, {2, 2, 1}, 0), 0)) == vec(x));
  CHECK_THROWS_AS(split(x, {2, 2}, 0), ShapeError);
  CHECK_THROWS_AS(split(x, {6, -1}, 0), ShapeError);
  CHECK_THROWS_AS(split(x, {4}, 2), IndexError);
}

TEST_CASE("index_select along axis 0 and 1") {
  const Tensor x = iota({4, 3});
  const Tensor r = index_select(x, 0, idx({2, 0, 2, 3}));
  CHECK(r.shape() == Shape{4, 3});
  CHECK(vec(r) == std::vector<double>{6, 7, 8, 0, 1, 2, 6, 7, 8, 9, 10, 11});
  const Tensor c = index_select(x, 1, idx({2, 2, 0}));
  CHECK(c.shape() == Shape{4, 3});
  CHECK(vec(c) == std::vector<double>{2, 2, 0, 5, 5, 3, 8, 8, 6, 11, 11, 9});
  CHECK(vec(index_select(x, -1, idx({1}))) == std::vector<double>{1, 4, 7, 10});
  CHECK(index_select(x, 0, idx({})).shape() == Shape{0, 3});
  // Non-contiguous input along axis 0 (the strided path) and a row-offset dense input.
  const Tensor t = x.transpose(0, 1);  // [3,4]
  CHECK(vec(index_select(t, 0, idx({2, 1}))) == std::vector<double>{2, 5, 8, 11, 1, 4, 7, 10});
  CHECK(vec(index_select(x.narrow(0, 1, 3), 0, idx({2, 0}))) ==
        std::vector<double>{9, 10, 11, 3, 4, 5});
  // Embedding lookup: int64 table rows, 1-D table.
  CHECK(index_select(idx({5, 6, 7}), 0, idx({2, 2, 0})).to_vector<std::int64_t>() == I{7, 7, 5});
  // 3-D along the middle axis, float64.
  const Tensor y = iota({2, 3, 2}, DType::f64);
  const Tensor ys = index_select(y, 1, idx({1, 1}));
  CHECK(ys.dtype() == DType::f64);
  CHECK(vec(ys) == std::vector<double>{2, 3, 2, 3, 8, 9, 8, 9});

  CHECK_THROWS_AS(index_select(x, 0, idx({4})), IndexError);
  CHECK_THROWS_AS(index_select(x, 1, idx({-1})), IndexError);
  CHECK_THROWS_AS(index_select(x, 2, idx({0})), IndexError);
  CHECK_THROWS_AS(index_select(x, 0, Tensor::from_list({0}, {1})), DTypeError);
  CHECK_THROWS_AS(index_select(x, 0, idx({0, 1}, {1, 2})), ShapeError);
}

TEST_CASE("index_add_ accumulates repeated indices") {
  Tensor out = Tensor::zeros({4, 3});
  const Tensor src = iota({5, 3});
  index_add_(out, 0, idx({1, 3, 1, 1, 0}), src);
  // row 1 gets src rows 0, 2, 3; row 3 gets row 1; row 0 gets row 4; row 2 nothing.
  CHECK(vec(out) == std::vector<double>{12, 13, 14, 15, 18, 21, 0, 0, 0, 3, 4, 5});
  // Along axis 1, in float64, onto existing values.
  Tensor o1 = Tensor::ones({2, 3}, DType::f64);
  index_add_(o1, 1, idx({2, 2, 0, 2}), iota({2, 4}, DType::f64));
  CHECK(vec(o1) == std::vector<double>{3, 1, 5, 7, 1, 17});
  // A transposed source is read in logical order.
  Tensor o2 = Tensor::zeros({2, 2});
  index_add_(o2, 0, idx({1, 1}), iota({2, 2}).transpose(0, 1));
  CHECK(vec(o2) == std::vector<double>{0, 0, 1, 5});
  // Wide rows exercise the SIMD add.
  Tensor wide = Tensor::zeros({2, 37});
  const Tensor ws = Tensor::ones({3, 37});
  index_add_(wide, 0, idx({0, 0, 1}), ws);
  CHECK(vec(wide.select(0, 0)) == std::vector<double>(37, 2.0));
  CHECK(vec(wide.select(0, 1)) == std::vector<double>(37, 1.0));
  // The adjoint of index_select: <index_select(x), g> == <x, index_add(g)>.
  const Tensor x = iota({4, 3}, DType::f64);
  const Tensor i = idx({3, 0, 3});
  const Tensor g = Tensor::from_list({1, -2, 3, 0.5, 2, -1, 4, 1, 1}, {3, 3}, DType::f64);
  const auto sel = vec(index_select(x, 0, i)), gv = vec(g);
  Tensor acc = Tensor::zeros({4, 3}, DType::f64);
  index_add_(acc, 0, i, g);
  const auto xv = vec(x), av = vec(acc);
  double lhs = 0, rhs = 0;
  for (std::size_t k = 0; k < sel.size(); ++k) lhs += sel[k] * gv[k];
  for (std::size_t k = 0; k < xv.size(); ++k) rhs += xv[k] * av[k];
  CHECK(lhs == doctest::Approx(rhs));

  Tensor bad = Tensor::zeros({4, 3});
  const auto snapshot = vec(bad);
  CHECK_THROWS_AS(index_add_(bad, 0, idx({0, 4}), Tensor::ones({2, 3})), IndexError);
  CHECK_THROWS_AS(index_add_(bad, 0, idx({0, -1}), Tensor::ones({2, 3})), IndexError);
  CHECK(vec(bad) == snapshot);  // nothing written before the check
  CHECK_THROWS_AS(index_add_(bad, 0, idx({0, 1}), Tensor::ones({3, 3})), ShapeError);
  CHECK_THROWS_AS(index_add_(bad, 0, idx({0, 1}), Tensor::ones({2, 3}, DType::f64)), DTypeError);
  CHECK_THROWS_AS(index_add_(bad, 2, idx({0}), Tensor::ones({4, 3})), IndexError);
  Tensor strided = Tensor::zeros({3, 4}).transpose(0, 1);
  CHECK_THROWS_AS(index_add_(strided, 0, idx({0}), Tensor::ones({1, 3})), ShapeError);
}

TEST_CASE("gather along axis 0 and 1") {
  const Tensor x = iota({3, 4});  // rows {0..3}, {4..7}, {8..11}
  // axis 1: y[i][j] = x[i][index[i][j]]
  const Tensor g1 = gather(x, 1, idx({3, 0, 1, 1, 2, 2}, {3, 2}));
  CHECK(g1.shape() == Shape{3, 2});
  CHECK(vec(g1) == std::vector<double>{3, 0, 5, 5, 10, 10});
  // axis 0: y[i][j] = x[index[i][j]][j]
  const Tensor g0 = gather(x, 0, idx({2, 0, 1, 2, 0, 0, 0, 1}, {2, 4}));
  CHECK(vec(g0) == std::vector<double>{8, 1, 6, 11, 0, 1, 2, 7});
  // An index smaller than the data off the axis.
  CHECK(vec(gather(x, 1, idx({1, 3}, {2, 1}))) == std::vector<double>{1, 7});
  CHECK(vec(gather(x, 0, idx({2, 1}, {1, 2}))) == std::vector<double>{8, 5});
  // Negative axis, transposed data, transposed index.
  CHECK(vec(gather(x, -1, idx({0, 0, 3}, {3, 1}))) == std::vector<double>{0, 4, 11});
  const Tensor t = x.transpose(0, 1);  // [4,3], t[i][j] = x[j][i]
  CHECK(vec(gather(t, 1, idx({2, 0, 1, 1}, {4, 1}))) == std::vector<double>{8, 1, 6, 7});
  const Tensor it = idx({0, 2, 1, 0, 2, 2}, {3, 2}).transpose(0, 1);  // [2,3]: {0,1,2},{2,0,2}
  CHECK(vec(gather(t, 1, it)) == std::vector<double>{0, 4, 8, 9, 1, 9});
  // Cross-entropy style: pick the target's log-probability per row (3-D, last axis).
  const Tensor lp = iota({2, 2, 3}, DType::f64);
  const Tensor pick = gather(lp, 2, idx({2, 0, 1, 1}, {2, 2, 1}));
  CHECK(pick.dtype() == DType::f64);
  CHECK(vec(pick) == std::vector<double>{2, 3, 7, 10});
  // int64 data.
  CHECK(gather(idx({7, 8, 9}), 0, idx({2, 2, 1})).to_vector<std::int64_t>() == I{9, 9, 8});

  CHECK_THROWS_AS(gather(x, 1, idx({4}, {1, 1})), IndexError);
  CHECK_THROWS_AS(gather(x, 0, idx({-1}, {1, 1})), IndexError);
  CHECK_THROWS_AS(gather(x, 2, idx({0}, {1, 1})), IndexError);
  CHECK_THROWS_AS(gather(x, 1, idx({0, 1})), ShapeError);                // rank differs
  CHECK_THROWS_AS(gather(x, 1, idx({0, 0, 0, 0}, {4, 1})), ShapeError);  // 4 rows > 3
  CHECK_THROWS_AS(gather(x, 1, Tensor::zeros({3, 1})), DTypeError);
}

TEST_CASE("scatter_add_ along axis 0 and 1") {
  // axis 1: out[i][index[i][j]] += src[i][j], repeated indices accumulate.
  Tensor out = Tensor::zeros({2, 4});
  scatter_add_(out, 1, idx({1, 1, 3, 0, 0, 0}, {2, 3}), iota({2, 3}));
  CHECK(vec(out) == std::vector<double>{0, 1, 0, 2, 12, 0, 0, 0});
  // axis 0: out[index[i][j]][j] += src[i][j].
  Tensor out0 = Tensor::ones({3, 2}, DType::f64);
  scatter_add_(out0, 0, idx({2, 0, 2, 2}, {2, 2}), iota({2, 2}, DType::f64));
  CHECK(vec(out0) == std::vector<double>{1, 2, 1, 1, 3, 4});
  // Index smaller than out off the axis; strided (transposed) out and src.
  Tensor base = Tensor::zeros({4, 3});
  Tensor tout = base.transpose(0, 1);  // [3,4] view
  scatter_add_(tout, 1, idx({3, 0}, {2, 1}), iota({1, 2}).transpose(0, 1));
  CHECK(vec(base) == std::vector<double>{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  CHECK(vec(tout) == std::vector<double>{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0});
  // The adjoint of gather: <gather(x, a, i), g> == <x, scatter_add(g)>.
  for (std::int64_t axis : {0, 1}) {
    CAPTURE(axis);
    const Tensor x = iota({3, 4}, DType::f64);
    const Tensor i =
        axis == 0 ? idx({2, 0, 1, 1, 0, 0, 2, 2}, {2, 4}) : idx({3, 3, 0, 1, 2, 1}, {3, 2});
    // A non-uniform upstream gradient (all-ones would hide a transposed index).
    std::vector<double> gv0 = {0.5, -1, 2, 3, -0.25, 1.5, 4, -2};
    gv0.resize(static_cast<std::size_t>(i.numel()));
    const Tensor g = Tensor::from_vector<double>(gv0, i.shape());
    const auto gathered = vec(gather(x, axis, i));
    Tensor acc = Tensor::zeros({3, 4}, DType::f64);
    scatter_add_(acc, axis, i, g);
    const auto xv = vec(x), av = vec(acc), gv = vec(g);
    double lhs = 0, rhs = 0;
    for (std::size_t k = 0; k < gathered.size(); ++k) lhs += gathered[k] * gv[k];
    for (std::size_t k = 0; k < xv.size(); ++k) rhs += xv[k] * av[k];
    CHECK(lhs == doctest::Approx(rhs));
  }

  Tensor bad = Tensor::zeros({2, 4});
  const auto snapshot = vec(bad);
  CHECK_THROWS_AS(scatter_add_(bad, 1, idx({0, 4}, {1, 2}), Tensor::ones({1, 2})), IndexError);
  CHECK_THROWS_AS(scatter_add_(bad, 0, idx({2}, {1, 1}), Tensor::ones({1, 1})), IndexError);
  CHECK(vec(bad) == snapshot);
  CHECK_THROWS_AS(scatter_add_(bad, 1, idx({0, 1}, {1, 2}), Tensor::ones({2, 1})), ShapeError);
  CHECK_THROWS_AS(scatter_add_(bad, 1, idx({0, 1}, {1, 2}), Tensor::ones({1, 2}, DType::f64)),
                  DTypeError);
  CHECK_THROWS_AS(scatter_add_(bad, 1, idx({0}, {1}), Tensor::ones({1})), ShapeError);
  CHECK_THROWS_AS(scatter_add_(bad, 1, idx({0, 0, 0}, {3, 1}), Tensor::ones({3, 1})), ShapeError);
  CHECK_THROWS_AS(scatter_add_(bad, 3, idx({0}, {1, 1}), Tensor::ones({1, 1})), IndexError);
}
