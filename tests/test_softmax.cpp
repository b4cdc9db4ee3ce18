// softmax and log_softmax: normalisation, stability with large inputs, masks (a fully masked row
// is zeros / -inf with zero gradient), axes other than the last, and both backward kernels
// against the analytic Jacobian and central differences in float64.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "tensor/softmax.h"

using namespace seqgrad;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

template <class T>
double tol() {
  return std::is_same_v<T, float> ? 2e-6 : 1e-13;
}

std::vector<double> values(std::int64_t n, double scale = 2.0, double phase = 0.4) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[i] = scale * std::sin(1.3 * i + phase) + 0.05 * i;
  return v;
}

template <class T>
Tensor make(const std::vector<double>& v, const Shape& shape) {
  return Tensor::from_vector<double>(v, shape).astype(dtype_of<T>());
}

Tensor mask_of(const std::vector<int>& keep, const Shape& shape) {
  std::vector<std::int64_t> v(keep.begin(), keep.end());
  return Tensor::from_vector<std::int64_t>(v, shape).astype(DType::boolean);
}

// Reference softmax of one row over kept positions, in double.
std::vector<double> ref_row(const std::vector<double>& x, const std::vector<int>& keep, bool log) {
  const std::size_t n = x.size();
  double m = -kInf;
  for (std::size_t j = 0; j < n; ++j) {
    if (keep.empty() || keep[j]) m = std::max(m, x[j]);
  }
  std::vector<double> y(n, log ? -kInf : 0.0);
  if (m == -kInf) return y;
  double s = 0;
  for (std::size_t j = 0; j < n; ++j) {
    if (keep.empty() || keep[j]) s += std::exp(x[j] - m);
  }
  for (std::size_t j = 0; j < n; ++j) {
    if (!keep.empty() && !keep[j]) continue;
    y[j] = log ? x[j] - m - std::log(s) : std::exp(x[j] - m) / s;
  }
  return y;
}

void check_row(const std::vector<double>& got, const std::vector<double>& want, double eps) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    if (std::isinf(want[i])) {
      CHECK(got[i] == want[i]);
    } else {
      CHECK(got[i] == doctest::Approx(want[i]).epsilon(eps));
    }
  }
}

// Row j of a [rows, n] tensor (logical order).
std::vector<double> row(const Tensor& t, std::int64_t j) {
  return t.select(0, j).to_vector<double>();
}

// Gradient of sum(dy * f(x)) by central differences, in float64; x must be dense.
std::vector<double> numeric_grad(const std::function<Tensor(const Tensor&)>& f, const Tensor& x,
                                 const Tensor& dy) {
  const double h = 1e-6;
  const auto dyv = dy.to_vector<double>();
  auto objective = [&](const Tensor& xx) {
    const auto y = f(xx).to_vector<double>();
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      if (!std::isinf(y[i])) s += dyv[i] * y[i];
    }
    return s;
  };
  std::vector<double> g(static_cast<std::size_t>(x.numel()));
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    Tensor xp = x.clone(), xm = x.clone();
    xp.data<double>()[i] += h;
    xm.data<double>()[i] -= h;
    g[i] = (objective(xp) - objective(xm)) / (2 * h);
  }
  return g;
}

}  // namespace

TEST_CASE_TEMPLATE("softmax rows sum to one and match the reference", T, float, double) {
  for (std::int64_t n = 1; n <= 37; ++n) {
    CAPTURE(n);
    const Tensor x = make<T>(values(3 * n), {3, n});
    const Tensor y = softmax(x, -1);
    const Tensor ly = log_softmax(x, 1);
    CHECK(y.shape() == x.shape());
    CHECK(y.dtype() == dtype_of<T>());
    for (std::int64_t r = 0; r < 3; ++r) {
      const auto yr = row(y, r);
      double s = 0;
      for (double v : yr) {
        CHECK(v >= 0.0);
        CHECK(v <= 1.0);
        s += v;
      }
      CHECK(s == doctest::Approx(1.0).epsilon(10 * tol<T>()));
      check_row(yr, ref_row(row(x, r), {}, false), 4 * tol<T>());
      check_row(row(ly, r), ref_row(row(x, r), {}, true), 4 * tol<T>());
    }
  }
}

TEST_CASE_TEMPLATE("softmax is stable for large inputs", T, float, double) {
  const Tensor big = make<T>({1000, 1001, 1002, 1000, -1000, -1001, -1002, -1000}, {2, 4});
  const Tensor small = make<T>({0, 1, 2, 0}, {1, 4});
  const auto want = softmax(small, -1).to_vector<double>();
  const auto want_log = log_softmax(small, -1).to_vector<double>();
  const Tensor y = softmax(big, -1);
  const Tensor ly = log_softmax(big, -1);
  check_row(row(y, 0), want, 4 * tol<T>());
  // log p = (x - max) - log sum: x - max is exact here, so nothing rounds at the scale of 1000.
  check_row(row(ly, 0), want_log, 4 * tol<T>());
  const auto y1 = row(y, 1);
  CHECK(y1[0] == doctest::Approx(y1[3]));
  double s = 0;
  for (double v : y1) {
    CHECK(std::isfinite(v));
    s += v;
  }
  CHECK(s == doctest::Approx(1.0).epsilon(1e-6));
  for (double v : ly.to_vector<double>()) CHECK(std::isfinite(v));
  // A single 1000 among zeros takes all the mass without overflow.
  const auto one = softmax(make<T>({0, 1000, 0}, {3}), 0).template to_vector<double>();
  CHECK(one == std::vector<double>{0, 1, 0});
  const auto lone = log_softmax(make<T>({0, 1000, 0}, {3}), 0).template to_vector<double>();
  CHECK(lone[1] == doctest::Approx(0.0));
  CHECK(lone[0] == doctest::Approx(-1000.0));
}

TEST_CASE("float32 log_softmax of large logits keeps the digits of the small differences") {
  // x - (max + log sum) would round max + log sum to a float near 1000 (ulp 6e-5).
  const Tensor x = make<float>({1000.1f, 1000.2f, 1000.3f, 999.7f}, {4});
  const auto got = log_softmax(x, 0).to_vector<double>();
  const auto xs = x.to_vector<double>();
  double s = 0;
  for (double v : xs) s += std::exp(v - xs[2]);
  for (std::size_t j = 0; j < xs.size(); ++j) {
    const double want = (xs[j] - xs[2]) - std::log(s);
    CHECK(std::abs(got[j] - want) <= 1e-6 * std::abs(want));
  }
}

TEST_CASE_TEMPLATE("masked softmax and log_softmax", T, float, double) {
  const Tensor x = make<T>(values(12), {3, 4});
  const std::vector<int> keep = {1, 0, 1, 1,  //
                                 0, 0, 0, 0,  // fully masked
                                 0, 1, 0, 0};
  const Tensor m = mask_of(keep, {3, 4});
  const Tensor y = softmax(x, -1, m);
  const Tensor ly = log_softmax(x, -1, m);
  for (std::int64_t r = 0; r < 3; ++r) {
    CAPTURE(r);
    const std::vector<int> k(keep.begin() + 4 * r, keep.begin() + 4 * r + 4);
    check_row(row(y, r), ref_row(row(x, r), k, false), 4 * tol<T>());
    check_row(row(ly, r), ref_row(row(x, r), k, true), 4 * tol<T>());
  }
  // The fully masked row: zeros, and -inf (never NaN).
  CHECK(row(y, 1) == std::vector<double>(4, 0.0));
  CHECK(row(ly, 1) == std::vector<double>(4, -kInf));
  // One kept position gets probability 1.
  CHECK(row(y, 2) == std::vector<double>{0, 1, 0, 0});
  CHECK(row(ly, 2)[1] == 0.0);

  // Masks broadcast: a [4] mask over every row, a [3,1] mask per row.
  const Tensor m4 = mask_of({1, 1, 0, 1}, {4});
  const Tensor y4 = softmax(x, 1, m4);
  for (std::int64_t r = 0; r < 3; ++r) {
    check_row(row(y4, r), ref_row(row(x, r), {1, 1, 0, 1}, false), 4 * tol<T>());
  }
  const Tensor m31 = mask_of({1, 0, 1}, {3, 1});
  const Tensor y31 = softmax(x, 1, m31);
  CHECK(row(y31, 1) == std::vector<double>(4, 0.0));
  check_row(row(y31, 0), ref_row(row(x, 0), {}, false), 4 * tol<T>());

  // Backward kernels give exactly zero gradient on the fully masked row and masked positions.
  const Tensor dy = make<T>(values(12, 1.0, 2.0), {3, 4});
  const auto dx = softmax_backward(y, dy, -1).to_vector<double>();
  const auto dlx = log_softmax_backward(ly, dy, -1, m).to_vector<double>();
  for (std::size_t i = 0; i < keep.size(); ++i) {
    CAPTURE(i);
    CHECK(std::isfinite(dx[i]));
    CHECK(std::isfinite(dlx[i]));
    if (!keep[i]) {
      CHECK(dx[i] == 0.0);
      CHECK(dlx[i] == 0.0);
    }
  }
  // Without the mask, log_softmax_backward still treats -inf outputs as constants.
  const auto dlx_nomask = log_softmax_backward(ly, dy, -1).to_vector<double>();
  for (std::size_t i = 4; i < 8; ++i) CHECK(dlx_nomask[i] == 0.0);
}

TEST_CASE_TEMPLATE("softmax along an axis other than the last", T, float, double) {
  const Tensor x = make<T>(values(3 * 4 * 5), {3, 4, 5});
  for (std::int64_t axis : {0, 1, -2}) {
    CAPTURE(axis);
    const std::int64_t a = axis < 0 ? axis + 3 : axis;
    const Tensor y = softmax(x, axis);
    const Tensor ly = log_softmax(x, axis);
    CHECK(y.shape() == x.shape());
    // Move the axis last and compare row by row.
    std::vector<std::int64_t> order;
    for (std::int64_t d = 0; d < 3; ++d) {
      if (d != a) order.push_back(d);
    }
    order.push_back(a);
    const Tensor xr = x.permute(order).reshape({-1, x.size(a)});
    const Tensor yr = y.permute(order).reshape({-1, x.size(a)});
    const Tensor lyr = ly.permute(order).reshape({-1, x.size(a)});
    for (std::int64_t r = 0; r < xr.size(0); ++r) {
      check_row(row(yr, r), ref_row(row(xr, r), {}, false), 4 * tol<T>());
      check_row(row(lyr, r), ref_row(row(xr, r), {}, true), 4 * tol<T>());
    }
    // Sums along the axis are one.
    for (std::int64_t i = 0; i < y.numel() / x.size(a); ++i) {
      double s = 0;
      for (double v : row(yr, i)) s += v;
      CHECK(s == doctest::Approx(1.0).epsilon(10 * tol<T>()));
    }
  }
  // A transposed input along axis 0 equals the dense input along axis 1.
  const Tensor m = make<T>(values(6 * 7), {6, 7});
  const auto a = softmax(m.transpose(0, 1), 0).transpose(0, 1).to_vector<double>();
  const auto b = softmax(m, 1).to_vector<double>();
  check_row(a, b, tol<T>());
  // A mask along axis 0: [4] broadcast against [3,4,5] needs axis 1 to be the masked one, so
  // use a [1,4,1] mask with softmax along axis 1.
  const Tensor mk = mask_of({1, 0, 1, 0}, {1, 4, 1});
  const Tensor ym = softmax(x, 1, mk);
  for (std::int64_t i = 0; i < 3; ++i) {
    for (std::int64_t k = 0; k < 5; ++k) {
      CHECK(ym.at({i, 1, k}) == 0.0);
      CHECK(ym.at({i, 3, k}) == 0.0);
      CHECK(ym.at({i, 0, k}) + ym.at({i, 2, k}) == doctest::Approx(1.0).epsilon(1e-5));
    }
  }
}

TEST_CASE("softmax_backward matches the Jacobian and finite differences") {
  const Tensor x = make<double>(values(3 * 6), {3, 6});
  const Tensor dy = make<double>(values(3 * 6, 1.0, 2.5), {3, 6});  // not all-ones
  const Tensor y = softmax(x, -1);
  const Tensor dx = softmax_backward(y, dy, -1);
  // Analytic: J = diag(y) - y y^T, dx = J^T dy.
  for (std::int64_t r = 0; r < 3; ++r) {
    const auto yr = row(y, r), dyr = row(dy, r), dxr = row(dx, r);
    for (std::size_t i = 0; i < 6; ++i) {
      double want = 0;
      for (std::size_t j = 0; j < 6; ++j) want += ((i == j ? yr[i] : 0.0) - yr[i] * yr[j]) * dyr[j];
      CHECK(dxr[i] == doctest::Approx(want).epsilon(1e-12));
    }
  }
  const auto fd = numeric_grad([](const Tensor& t) { return softmax(t, -1); }, x, dy);
  const auto dxv = dx.to_vector<double>();
  for (std::size_t i = 0; i < fd.size(); ++i) CHECK(dxv[i] == doctest::Approx(fd[i]).epsilon(1e-7));
  // Gradients of softmax sum to zero along the axis.
  for (std::int64_t r = 0; r < 3; ++r) {
    double s = 0;
    for (double v : row(dx, r)) s += v;
    CHECK(s == doctest::Approx(0.0).epsilon(1e-12));
  }
}

TEST_CASE("log_softmax_backward matches finite differences, with and without a mask") {
  const Tensor x = make<double>(values(4 * 5), {4, 5});
  const Tensor dy = make<double>(values(4 * 5, 1.0, 0.9), {4, 5});
  {
    const Tensor y = log_softmax(x, 1);
    const auto dx = log_softmax_backward(y, dy, 1).to_vector<double>();
    const auto fd = numeric_grad([](const Tensor& t) { return log_softmax(t, 1); }, x, dy);
    for (std::size_t i = 0; i < fd.size(); ++i)
      CHECK(dx[i] == doctest::Approx(fd[i]).epsilon(1e-7));
  }
  {
    const Tensor m = mask_of({1, 1, 0, 1, 0,  //
                              0, 0, 0, 0, 0,  //
                              1, 0, 0, 0, 0,  //
                              1, 1, 1, 1, 1},
                             {4, 5});
    const Tensor y = log_softmax(x, 1, m);
    const auto dx = log_softmax_backward(y, dy, 1, m).to_vector<double>();
    const auto fd = numeric_grad([&](const Tensor& t) { return log_softmax(t, 1, m); }, x, dy);
    for (std::size_t i = 0; i < fd.size(); ++i) {
      CAPTURE(i);
      CHECK(dx[i] == doctest::Approx(fd[i]).epsilon(1e-7));
    }
    // Masked softmax through softmax_backward: masked y is 0, so its gradient is 0 too.
    const Tensor ys = softmax(x, 1, m);
    const auto dxs = softmax_backward(ys, dy, 1).to_vector<double>();
    const auto fds = numeric_grad([&](const Tensor& t) { return softmax(t, 1, m); }, x, dy);
    for (std::size_t i = 0; i < fds.size(); ++i) {
      CAPTURE(i);
      CHECK(dxs[i] == doctest::Approx(fds[i]).epsilon(1e-7));
    }
  }
}

TEST_CASE("backward kernels along axis 0 and on transposed inputs") {
  const Tensor x = make<double>(values(5 * 3), {5, 3});
  const Tensor dy = make<double>(values(5 * 3, 1.0, 1.7), {5, 3});
  const Tensor y = softmax(x, 0);
  const auto dx = softmax_backward(y, dy, 0).to_vector<double>();
  const auto fd = numeric_grad([](const Tensor& t) { return softmax(t, 0); }, x, dy);
  for (std::size_t i = 0; i < fd.size(); ++i) CHECK(dx[i] == doctest::Approx(fd[i]).epsilon(1e-7));
  const Tensor ly = log_softmax(x, 0);
  const auto dlx = log_softmax_backward(ly, dy, 0).to_vector<double>();
  const auto fdl = numeric_grad([](const Tensor& t) { return log_softmax(t, 0); }, x, dy);
  for (std::size_t i = 0; i < fdl.size(); ++i) {
    CHECK(dlx[i] == doctest::Approx(fdl[i]).epsilon(1e-7));
  }
  // The same gradient from transposed views along the other axis.
  const auto dxt =
      softmax_backward(y.transpose(0, 1).contiguous(), dy.transpose(0, 1).contiguous(), 1)
          .transpose(0, 1)
          .to_vector<double>();
  for (std::size_t i = 0; i < dx.size(); ++i)
    CHECK(dxt[i] == doctest::Approx(dx[i]).epsilon(1e-14));
}

TEST_CASE("softmax argument errors") {
  const Tensor x = Tensor::zeros({2, 3});
  CHECK_THROWS_AS(softmax(x, 2), IndexError);
  CHECK_THROWS_AS(log_softmax(x, -3), IndexError);
  CHECK_THROWS_AS(softmax(x, 1, Tensor::ones({2, 3})), DTypeError);
  CHECK_THROWS_AS(softmax(x, 1, mask_of({1, 0}, {2})), ShapeError);
  CHECK_THROWS_AS(softmax(x, 1, mask_of({1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1}, {2, 2, 3})),
                  ShapeError);
  CHECK_THROWS_AS(softmax(Tensor::zeros({2, 3}, DType::i64), 1), DTypeError);
  CHECK_THROWS_AS(softmax(Tensor(), 0), ValueError);
  CHECK_THROWS_AS(softmax_backward(x, Tensor::zeros({3, 2}), 1), ShapeError);
  CHECK_THROWS_AS(log_softmax_backward(x, Tensor::zeros({2, 3}, DType::f64), 1), DTypeError);
}
