// matmul through BLAS against the double-precision triple loop (matmul_reference): 2-D, batched
// 3-D, 3-D @ 2-D and 2-D @ 3-D, transposed and narrowed views passed without copies, 1xN and Nx1
// edge cases, odd sizes, float32 and float64, and matmul_into accumulating with beta = 1.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "tensor/matmul.h"
#include "tensor/packed_matmul.h"

using namespace seqgrad;

namespace {

template <class T>
double tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

std::vector<double> values(std::int64_t n, double phase) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[i] = std::sin(0.91 * i + phase) + 0.25 * std::cos(3.1 * i);
  return v;
}

template <class T>
Tensor make(const Shape& shape, double phase = 0.0) {
  return Tensor::from_vector<double>(values(shape_numel(shape), phase), shape)
      .astype(dtype_of<T>());
}

void check_close(const Tensor& got, const Tensor& want, double eps) {
  REQUIRE(got.shape() == want.shape());
  REQUIRE(got.dtype() == want.dtype());
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) {
    CAPTURE(i);
    CHECK(g[i] == doctest::Approx(w[i]).epsilon(eps));
  }
}

// matmul(a, b) against the reference, where a and b may be any views.
void check_product(const Tensor& a, const Tensor& b, double eps) {
  CAPTURE(shape_str(a.shape()));
  CAPTURE(shape_str(b.shape()));
  const Tensor y = matmul(a, b);
  CHECK(y.is_contiguous());
  CHECK(y.shape() == matmul_shape(a.shape(), b.shape()));
  check_close(y, matmul_reference(a, b), eps);
}

}  // namespace

TEST_CASE("matmul by hand") {
  const Tensor a = Tensor::from_list({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = Tensor::from_list({7, 8, 9, 10, 11, 12}, {3, 2});
  const Tensor y = matmul(a, b);
  CHECK(y.shape() == Shape{2, 2});
  CHECK(y.to_vector<float>() == std::vector<float>{58, 64, 139, 154});
  CHECK(matmul_reference(a, b).to_vector<float>() == std::vector<float>{58, 64, 139, 154});
  // a^T as a view: [3,2] @ [2,3].
  CHECK(matmul(a.transpose(0, 1), a).to_vector<float>() ==
        std::vector<float>{17, 22, 27, 22, 29, 36, 27, 36, 45});
  CHECK(std::string(blas_core_name()).size() > 0);
}

TEST_CASE("better_blas_core: AVX-512 kernels only when the CPU has them and nobody chose") {
  // Debian's OpenBLAS 0.3.21 on an Ice Lake Xeon or a Zen 4: restart with SkylakeX.
  CHECK(better_blas_core("Prescott", nullptr, true) == "SkylakeX");
  CHECK(better_blas_core("Haswell", nullptr, true) == "SkylakeX");
  // Already AVX-512 kernels, no AVX-512 on the CPU, or a choice in OPENBLAS_CORETYPE: keep.
  CHECK(better_blas_core("SkylakeX", nullptr, true).empty());
  CHECK(better_blas_core("Cooperlake", nullptr, true).empty());
  CHECK(better_blas_core("Haswell", nullptr, false).empty());
  CHECK(better_blas_core("Prescott", "Prescott", true).empty());
  CHECK(better_blas_core("Haswell", "", true).empty());
  // The real CPU: whatever it reports, the answer is one of the two.
  const std::string mine = better_blas_core(blas_core_name(), nullptr, cpu_has_avx512());
  CHECK((mine.empty() || mine == "SkylakeX"));
}

TEST_CASE("matmul_shape") {
  CHECK(matmul_shape({2, 3}, {3, 4}) == Shape{2, 4});
  CHECK(matmul_shape({5, 2, 3}, {5, 3, 4}) == Shape{5, 2, 4});
  CHECK(matmul_shape({5, 2, 3}, {3, 4}) == Shape{5, 2, 4});
  CHECK(matmul_shape({2, 3}, {5, 3, 4}) == Shape{5, 2, 4});
  CHECK(matmul_shape({1, 0}, {0, 1}) == Shape{1, 1});
  CHECK_THROWS_AS(matmul_shape({3}, {3, 4}), ShapeError);
  CHECK_THROWS_AS(matmul_shape({1, 2, 3, 4}, {4, 4}), ShapeError);
  CHECK_THROWS_AS(matmul_shape({2, 3}, {4, 4}), ShapeError);
  CHECK_THROWS_AS(matmul_shape({2, 2, 3}, {3, 3, 4}), ShapeError);
}

TEST_CASE_TEMPLATE("2-D products of odd and edge sizes", T, float, double) {
  const std::vector<std::int64_t> sizes = {1, 2, 3, 7, 16, 17, 33};
  for (std::int64_t m : sizes) {
    for (std::int64_t k : sizes) {
      for (std::int64_t n : {1, 5, 17}) {
        check_product(make<T>({m, k}, 0.1), make<T>({k, n}, 0.7), tol<T>());
      }
    }
  }
  // 1xN @ Nx1 (a dot product) and Nx1 @ 1xN (an outer product).
  check_product(make<T>({1, 29}), make<T>({29, 1}, 1.0), tol<T>());
  check_product(make<T>({29, 1}), make<T>({1, 29}, 1.0), tol<T>());
  check_product(make<T>({1, 1}), make<T>({1, 1}, 1.0), tol<T>());
}

TEST_CASE_TEMPLATE("transposed views give the same product as dense copies", T, float, double) {
  for (std::int64_t m : {1, 4, 9}) {
    for (std::int64_t k : {1, 6, 13}) {
      for (std::int64_t n : {1, 3, 11}) {
        CAPTURE(m);
        CAPTURE(k);
        CAPTURE(n);
        const Tensor at = make<T>({k, m}, 0.2).transpose(0, 1);  // [m,k] view
        const Tensor bt = make<T>({n, k}, 0.9).transpose(0, 1);  // [k,n] view
        const Tensor a = at.contiguous(), b = bt.contiguous();
        const Tensor dense = matmul(a, b);
        check_product(at, b, tol<T>());
        check_product(a, bt, tol<T>());
        check_product(at, bt, tol<T>());
        check_close(matmul(at, bt), dense, tol<T>());
        check_close(matmul(at, b), dense, tol<T>());
        check_close(matmul(a, bt), dense, tol<T>());
      }
    }
  }
  // The inputs of a transposed-view product are not copied or modified.
  const Tensor base = make<T>({5, 4});
  const auto before = base.to_vector<double>();
  const Tensor y = matmul(base.transpose(0, 1), base);
  CHECK(base.to_vector<double>() == before);
  CHECK_FALSE(y.shares_storage(base));
}

TEST_CASE_TEMPLATE("narrowed, selected and expanded views", T, float, double) {
  const Tensor big = make<T>({9, 12}, 0.3);
  // A block with a leading dimension larger than its width.
  check_product(big.narrow(1, 2, 5), make<T>({5, 4}, 0.5), tol<T>());
  check_product(make<T>({3, 9}, 0.5), big.narrow(1, 1, 7), tol<T>());
  // A block of a transposed matrix.
  check_product(big.transpose(0, 1).narrow(0, 3, 6), make<T>({9, 2}), tol<T>());
  // A single row / column as a 1xN / Nx1 matrix.
  check_product(big.narrow(0, 4, 1), make<T>({12, 3}), tol<T>());
  check_product(make<T>({2, 9}), big.narrow(1, 7, 1), tol<T>());
  check_product(big.transpose(0, 1).narrow(0, 5, 1), make<T>({9, 3}), tol<T>());
  check_product(make<T>({4, 12}), big.transpose(0, 1).narrow(1, 2, 1), tol<T>());
  // A column selected then unsqueezed: [9,1] with stride 12 on its long axis.
  check_product(big.select(1, 3).unsqueeze(1), make<T>({1, 4}), tol<T>());
  check_product(make<T>({3, 9}), big.select(1, 3).unsqueeze(1), tol<T>());
  // Stride-0 operands (gemm cannot read them; they are made dense first).
  check_product(make<T>({1, 6}).expand({4, 6}), make<T>({6, 3}), tol<T>());
  check_product(make<T>({4, 1}).expand({4, 6}), make<T>({6, 3}), tol<T>());
  // Both axes strided (every other row and column).
  const Tensor every_other = make<T>({8, 10}).reshape({4, 2, 5, 2}).select(3, 0).select(1, 0);
  CHECK(every_other.shape() == Shape{4, 5});
  check_product(every_other, make<T>({5, 3}), tol<T>());
  check_product(make<T>({2, 4}), every_other, tol<T>());
}

TEST_CASE_TEMPLATE("batched products", T, float, double) {
  for (std::int64_t batch : {1, 2, 5}) {
    for (std::int64_t m : {1, 3, 8}) {
      for (std::int64_t n : {1, 7}) {
        const std::int64_t k = 6;
        CAPTURE(batch);
        CAPTURE(m);
        CAPTURE(n);
        // [B,M,K] @ [B,K,N]
        check_product(make<T>({batch, m, k}, 0.1), make<T>({batch, k, n}, 0.6), tol<T>());
        // [B,M,K] @ [K,N]: the folded single-gemm path.
        check_product(make<T>({batch, m, k}, 0.2), make<T>({k, n}, 0.8), tol<T>());
        // [M,K] @ [B,K,N]
        check_product(make<T>({m, k}, 0.3), make<T>({batch, k, n}, 0.4), tol<T>());
        // Transposed inner matrices.
        const Tensor at = make<T>({batch, k, m}, 0.5).transpose(1, 2);
        const Tensor bt = make<T>({batch, n, k}, 0.1).transpose(1, 2);
        check_product(at, bt, tol<T>());
        check_product(at, make<T>({k, n}), tol<T>());
        check_product(make<T>({m, k}), bt, tol<T>());
        check_product(make<T>({k, m}).transpose(0, 1), bt, tol<T>());
        // The batch axis moved: [M,B,K] permuted to [B,M,K] (rows not evenly spaced by M).
        const Tensor ap = make<T>({m, batch, k}, 0.7).permute({1, 0, 2});
        check_product(ap, make<T>({k, n}), tol<T>());
        check_product(ap, make<T>({batch, k, n}), tol<T>());
        // A batch-expanded operand (batch stride 0).
        check_product(make<T>({1, m, k}).expand({batch, m, k}), make<T>({batch, k, n}), tol<T>());
        check_product(make<T>({batch, m, k}), make<T>({1, k, n}).expand({batch, k, n}), tol<T>());
      }
    }
  }
  // Every batch entry of a batched product equals its own 2-D product.
  const Tensor a = make<T>({3, 4, 5}, 0.2), b = make<T>({3, 5, 2}, 0.4);
  const Tensor y = matmul(a, b);
  for (std::int64_t i = 0; i < 3; ++i) {
    check_close(y.select(0, i), matmul(a.select(0, i), b.select(0, i)), tol<T>());
  }
  // Rows of a narrowed batch (batch stride not M * ld).
  const Tensor tall = make<T>({3, 7, 5}, 0.9);
  check_product(tall.narrow(1, 2, 4), make<T>({5, 3}), tol<T>());
  check_product(tall.narrow(1, 0, 1), make<T>({5, 3}), tol<T>());
  check_product(tall.narrow(2, 1, 3), make<T>({3, 3, 2}), tol<T>());
}

TEST_CASE_TEMPLATE("matmul_into scales and accumulates", T, float, double) {
  const Tensor a = make<T>({4, 6}, 0.1), b = make<T>({6, 3}, 0.2);
  const Tensor ab = matmul_reference(a, b);
  const auto abv = ab.to_vector<double>();

  // beta = 1 accumulates: out = c0 + a @ b, twice.
  Tensor out = make<T>({4, 3}, 0.5);
  const auto c0 = out.to_vector<double>();
  matmul_into(a, b, out, 1.0, 1.0);
  auto got = out.to_vector<double>();
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i] == doctest::Approx(c0[i] + abv[i]).epsilon(tol<T>()));
  }
  matmul_into(a, b, out, 1.0, 1.0);
  got = out.to_vector<double>();
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i] == doctest::Approx(c0[i] + 2 * abv[i]).epsilon(tol<T>()));
  }
  // alpha and beta: out = 0.5 * out - 2 * a @ b, with transposed views.
  const auto c1 = out.to_vector<double>();
  matmul_into(a.transpose(0, 1).contiguous().transpose(0, 1), b, out, -2.0, 0.5);
  got = out.to_vector<double>();
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i] == doctest::Approx(0.5 * c1[i] - 2 * abv[i]).epsilon(tol<T>()));
  }
  // beta = 0 ignores whatever out held (even NaN).
  Tensor junk = Tensor::full({4, 3}, std::nan(""), dtype_of<T>());
  matmul_into(a, b, junk, 1.0, 0.0);
  check_close(junk, ab, tol<T>());

  // Batched accumulation, including the folded [B,M,K] @ [K,N] path.
  const Tensor a3 = make<T>({3, 4, 6}, 0.3);
  Tensor out3 = make<T>({3, 4, 3}, 0.6);
  const auto o0 = out3.to_vector<double>();
  matmul_into(a3, b, out3, 1.0, 1.0);
  const auto r3 = matmul_reference(a3, b).to_vector<double>();
  got = out3.to_vector<double>();
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i] == doctest::Approx(o0[i] + r3[i]).epsilon(tol<T>()));
  }
  const Tensor b3 = make<T>({3, 6, 3}, 0.4);
  Tensor out4 = make<T>({3, 4, 3}, 0.7);
  const auto p0 = out4.to_vector<double>();
  matmul_into(a3, b3, out4, 1.0, 1.0);
  const auto r4 = matmul_reference(a3, b3).to_vector<double>();
  got = out4.to_vector<double>();
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i] == doctest::Approx(p0[i] + r4[i]).epsilon(tol<T>()));
  }

  // An empty inner dimension: out = beta * out.
  Tensor e = Tensor::full({2, 3}, 4.0, dtype_of<T>());
  matmul_into(Tensor::zeros({2, 0}, dtype_of<T>()), Tensor::zeros({0, 3}, dtype_of<T>()), e, 1.0,
              0.5);
  CHECK(e.to_vector<double>() == std::vector<double>(6, 2.0));
  CHECK(matmul(Tensor::zeros({2, 0}, dtype_of<T>()), Tensor::zeros({0, 3}, dtype_of<T>()))
            .template to_vector<double>() == std::vector<double>(6, 0.0));
  CHECK(
      matmul(Tensor::zeros({0, 4}, dtype_of<T>()), Tensor::zeros({4, 3}, dtype_of<T>())).shape() ==
      Shape{0, 3});

  // The output must be dense and of the product's shape and dtype.
  Tensor wrong_shape = Tensor::zeros({3, 4}, dtype_of<T>());
  CHECK_THROWS_AS(matmul_into(a, b, wrong_shape, 1, 0), ShapeError);
  Tensor strided = Tensor::zeros({3, 4}, dtype_of<T>()).transpose(0, 1);
  CHECK_THROWS_AS(matmul_into(a, b, strided, 1, 0), ShapeError);
  Tensor undefined;
  CHECK_THROWS_AS(matmul_into(a, b, undefined, 1, 0), ShapeError);
}

TEST_CASE("matmul rejects bad dtypes") {
  CHECK_THROWS_AS(matmul(Tensor::ones({2, 2}), Tensor::ones({2, 2}, DType::f64)), DTypeError);
  CHECK_THROWS_AS(matmul(Tensor::ones({2, 2}, DType::i64), Tensor::ones({2, 2}, DType::i64)),
                  DTypeError);
  CHECK_THROWS_AS(matmul(Tensor(), Tensor::ones({2, 2})), ValueError);
  Tensor out64 = Tensor::zeros({2, 2}, DType::f64);
  CHECK_THROWS_AS(matmul_into(Tensor::ones({2, 2}), Tensor::ones({2, 2}), out64, 1, 0), DTypeError);
}

// Batches of products with m, n or k equal to 1 run on SIMD loops instead of one gemm call per
// entry (attention's shapes); every transposition of both operands, sizes around the SIMD width,
// and beta = 1 accumulation.
TEST_CASE_TEMPLATE("batched products with a unit dimension", T, float, double) {
  const std::int64_t B = 3;
  for (std::int64_t big : {1, 5, 17, 40}) {
    for (auto [m, n, k] : {std::array<std::int64_t, 3>{1, big, 7},
                           {big, 1, 9},
                           {big, 6, 1},
                           {1, 1, big},
                           {1, big, 1}}) {
      CAPTURE(m);
      CAPTURE(n);
      CAPTURE(k);
      for (int t = 0; t < 4; ++t) {
        // A dense [B,m,k] or the transposed view of a dense [B,k,m]; likewise B.
        const Tensor a = t & 1 ? make<T>({B, k, m}, 0.3).transpose(1, 2) : make<T>({B, m, k}, 0.3);
        const Tensor b = t & 2 ? make<T>({B, n, k}, 1.1).transpose(1, 2) : make<T>({B, k, n}, 1.1);
        check_product(a, b, tol<T>());
        Tensor out = make<T>({B, m, n}, 2.0);
        const Tensor before = out.clone();
        matmul_into(a, b, out, -0.5, 1.0);
        const Tensor want = matmul_reference(a, b).astype(DType::f64);
        const auto o = out.to_vector<double>(), w = want.to_vector<double>(),
                   p = before.to_vector<double>();
        for (std::size_t i = 0; i < o.size(); ++i) {
          CHECK(o[i] == doctest::Approx(p[i] - 0.5 * w[i]).epsilon(tol<T>()));
        }
      }
    }
  }
}

TEST_CASE("GemmRecording lists the products issued while it lives") {
  const Tensor a = make<float>({4, 6}), b = make<float>({6, 5});
  const Tensor batch = make<float>({3, 1, 6}), keys = make<float>({3, 6, 5});
  (void)matmul(a, b);  // not recorded
  GemmRecording rec;
  (void)matmul(a, b.transpose(0, 1).contiguous().transpose(0, 1));
  (void)matmul(batch, keys);  // three tiny products on SIMD loops
  REQUIRE(rec.calls().size() == 4);
  const GemmCall& c = rec.calls()[0];
  CHECK(c.m == 4);
  CHECK(c.n == 5);
  CHECK(c.k == 6);
  CHECK_FALSE(c.trans_a);
  CHECK(c.trans_b);
  CHECK_FALSE(c.accumulate);
  CHECK_FALSE(c.tiny);
  for (int i = 1; i < 4; ++i) {
    CHECK(rec.calls()[i].tiny);
    CHECK(rec.calls()[i].m == 1);
    CHECK(rec.calls()[i].k == 6);
  }
  CHECK_THROWS_AS(GemmRecording(), std::logic_error);
}

// The packed kernel covers row counts across its tile height (8 rows with AVX-512, 4 otherwise)
// and column counts across its panel width (3 vectors), so every tail is taken.
TEST_CASE_TEMPLATE("PackedMatrix products equal gemm's for every tail", T, float, double) {
  for (const std::int64_t m : {1, 3, 7, 8, 9, 17, 33, 96, 97}) {
    for (const std::int64_t n : {1, 5, 47, 48, 49, 100}) {
      const std::int64_t k = m % 2 == 0 ? 37 : 64;
      const Tensor a = make<T>({m, k}, 0.1 * m), b = make<T>({k, n}, 0.2 * n);
      CAPTURE(m);
      CAPTURE(n);
      const PackedMatrix p(b);
      CHECK(p.packed() == std::is_same_v<T, float>);
      const Tensor want = matmul_reference(a, b);
      check_close(matmul(a, p), want, tol<T>());
      // From a transposed view of a row-major [N,K] matrix, as a layer's W^T.
      const PackedMatrix pt(b.transpose(0, 1).contiguous().transpose(0, 1));
      check_close(matmul(a, pt), want, tol<T>());
      // Accumulating (beta 1), scaling (beta 0.5), and ignoring junk (beta 0).
      Tensor out = make<T>({m, n}, 0.7);
      const auto c0 = out.to_vector<double>(), ab = want.to_vector<double>();
      matmul_into(a, p, out, 1.0);
      auto got = out.to_vector<double>();
      for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i] == doctest::Approx(c0[i] + ab[i]).epsilon(tol<T>()));
      }
      matmul_into(a, p, out, 0.5);
      const auto c1 = got;
      got = out.to_vector<double>();
      for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i] == doctest::Approx(0.5 * c1[i] + ab[i]).epsilon(tol<T>()));
      }
      Tensor junk = Tensor::full({m, n}, std::nan(""), dtype_of<T>());
      matmul_into(a, p, junk, 0.0);
      check_close(junk, want, tol<T>());
    }
  }
}

TEST_CASE("PackedMatrix: strided left operands, records, copies and errors") {
  const Tensor b = make<float>({6, 20}, 0.4);
  const PackedMatrix p(b);
  // Rows of a wider matrix (lda > K) and a transposed view (made dense first).
  const Tensor wide = make<float>({5, 9}, 0.2);
  const Tensor rows = wide.narrow(1, 2, 6);
  check_close(matmul(rows, p), matmul_reference(rows, b), tol<float>());
  const Tensor at = make<float>({6, 5}, 0.3).transpose(0, 1);
  check_close(matmul(at, p), matmul_reference(at, b), tol<float>());
  // The copy is made once: writing into b afterwards does not change the packed products.
  Tensor c = make<float>({6, 20}, 0.4);
  const PackedMatrix pc(c);
  const Tensor before = matmul(rows, pc);
  c.fill_(0.0);
  CHECK(matmul(rows, pc).to_vector<float>() == before.to_vector<float>());
  // Recorded as the gemm it replaces.
  {
    GemmRecording rec;
    (void)matmul(rows, p);
    REQUIRE(rec.calls().size() == 1);
    CHECK(rec.calls()[0].m == 5);
    CHECK(rec.calls()[0].n == 20);
    CHECK(rec.calls()[0].k == 6);
    CHECK_FALSE(rec.calls()[0].trans_b);
  }
  CHECK_THROWS_WITH_AS(matmul(make<float>({5, 7}), p),
                       "matmul: [5,7] @ [6,20]: inner dimensions differ (7 vs 6)", ShapeError);
  CHECK_THROWS_AS(matmul(make<double>({5, 6}), p), DTypeError);
  CHECK_THROWS_WITH_AS(PackedMatrix(make<float>({2, 3, 4})),
                       "PackedMatrix: float32[2,3,4] must be a 2-D float matrix [K,N]", ShapeError);
  CHECK_THROWS_AS(PackedMatrix(Tensor::zeros({2, 2}, DType::i64)), ShapeError);
  Tensor wrong = Tensor::empty({5, 19});
  CHECK_THROWS_AS(matmul_into(rows, p, wrong, 0.0), ShapeError);
}
