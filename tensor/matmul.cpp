// gemm dispatch: work out, for each operand, whether its last two axes are row-major (NoTrans)
// or column-major (Trans) with some leading dimension, then call cblas_?gemm once for a 2-D
// product, once for a batch that folds into rows, or once per batch entry.
#include "tensor/matmul.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "tensor/simd.h"

namespace seqgrad {

namespace {

struct GemmView {
  CBLAS_TRANSPOSE trans;
  blasint ld;
};

// How gemm can read a rows x cols matrix with strides (sr, sc), if it can: row-major
// (NoTrans, ld = sr) or column-major (Trans, ld = sc). An axis of size 1 may carry any stride.
std::optional<GemmView> gemm_view(std::int64_t rows, std::int64_t cols, std::int64_t sr,
                                  std::int64_t sc) {
  if (sc == 1 || cols == 1) {
    const std::int64_t ld = rows == 1 ? std::max<std::int64_t>(cols, 1) : sr;
    if (ld >= std::max<std::int64_t>(cols, 1))
      return GemmView{CblasNoTrans, static_cast<blasint>(ld)};
  }
  if (sr == 1 || rows == 1) {
    const std::int64_t ld = cols == 1 ? std::max<std::int64_t>(rows, 1) : sc;
    if (ld >= std::max<std::int64_t>(rows, 1))
      return GemmView{CblasTrans, static_cast<blasint>(ld)};
  }
  return std::nullopt;
}

thread_local GemmRecording* g_recording = nullptr;

GemmCall describe(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, std::int64_t m, std::int64_t n,
                  std::int64_t k, std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool beta,
                  bool f64) {
  return {.trans_a = ta == CblasTrans,
          .trans_b = tb == CblasTrans,
          .m = m,
          .n = n,
          .k = k,
          .lda = lda,
          .ldb = ldb,
          .ldc = ldc,
          .accumulate = beta,
          .f64 = f64,
          .tiny = false};
}

template <class T>
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, T alpha,
          const T* a, blasint lda, const T* b, blasint ldb, T beta, T* c, blasint ldc) {
  if (g_recording != nullptr) {
    record_gemm(describe(ta, tb, m, n, k, lda, ldb, ldc, beta != T(0), sizeof(T) == 8));
  }
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

// sum_p x[p * sx] * y[p] for p < n, y dense: SIMD lanes as partial sums.
template <class T>
T dot_row(const T* x, std::int64_t sx, const T* y, std::int64_t n) {
  using V = simd::Batch<T>;
  constexpr std::int64_t W = V::size;
  std::int64_t p = 0;
  T total = 0;
  if (sx == 1 && n >= W) {
    V acc(T(0));
    for (; p + W <= n; p += W)
      acc = xsimd::fma(V::load_unaligned(x + p), V::load_unaligned(y + p), acc);
    total = xsimd::hadd(acc);
  }
  for (; p < n; ++p) total += x[p * sx] * y[p];
  return total;
}

// c[j] = beta c[j] + s x[j] for j < n, x and c dense (beta 0: c is not read, so junk is fine).
template <class T>
void scale_add_row(T* c, T beta, T s, const T* x, std::int64_t n) {
  using V = simd::Batch<T>;
  constexpr std::int64_t W = V::size;
  std::int64_t j = 0;
  const V vs(s), vb(beta);
  if (beta == T(0)) {
    for (; j + W <= n; j += W) (vs * V::load_unaligned(x + j)).store_unaligned(c + j);
    for (; j < n; ++j) c[j] = s * x[j];
  } else {
    for (; j + W <= n; j += W) {
      xsimd::fma(vs, V::load_unaligned(x + j), vb * V::load_unaligned(c + j))
          .store_unaligned(c + j);
    }
    for (; j < n; ++j) c[j] = beta * c[j] + s * x[j];
  }
}

// One product C[m,n] = alpha A[m,k] B[k,n] + beta C with m, n or k equal to 1 (the shapes of
// attention's per-example products: a [1,S] @ [S,H] context, [S,H] @ [H,1] scores, their
// backward outer products). A batch of these is B tiny gemm calls, whose fixed cost per call is
// larger than the arithmetic; these loops do the same sums on SIMD rows. `tmp` holds k (or n)
// values: a strided vector operand is gathered there first.
template <class T>
void tiny_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
               const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
               std::vector<T>& tmp) {
  // Element strides of A (i, p) and B (p, j).
  const std::int64_t sai = ta ? 1 : lda, sap = ta ? lda : 1;
  const std::int64_t sbp = tb ? 1 : ldb, sbj = tb ? ldb : 1;
  auto gather = [&](const T* x, std::int64_t sx, std::int64_t len) {
    tmp.resize(static_cast<std::size_t>(len));
    for (std::int64_t p = 0; p < len; ++p) tmp[static_cast<std::size_t>(p)] = x[p * sx];
    return tmp.data();
  };
  if (k == 1) {  // C = alpha a b^T + beta C: rows are scaled copies of B's row
    const T* brow = sbj == 1 ? b : gather(b, sbj, n);
    for (std::int64_t i = 0; i < m; ++i)
      scale_add_row(c + i * n, beta, alpha * a[i * sai], brow, n);
  } else if (m == 1) {  // c[j] = sum_p a[p] B[p,j]
    if (sbj == 1) {     // rows of B are dense: accumulate scaled rows
      for (std::int64_t p = 0; p < k; ++p) {
        scale_add_row(c, p == 0 ? beta : T(1), alpha * a[p * sap], b + p * sbp, n);
      }
    } else {  // columns of B are dense: one dot product per output
      const T* av = sap == 1 ? a : gather(a, sap, k);
      for (std::int64_t j = 0; j < n; ++j) {
        const T d = alpha * dot_row(b + j * sbj, sbp, av, k);
        c[j] = beta == T(0) ? d : beta * c[j] + d;
      }
    }
  } else {           // n == 1: c[i] = sum_p A[i,p] b[p]
    if (sap == 1) {  // rows of A are dense: one dot product per output
      const T* bv = sbp == 1 ? b : gather(b, sbp, k);
      for (std::int64_t i = 0; i < m; ++i) {
        const T d = alpha * dot_row(a + i * sai, 1, bv, k);
        c[i] = beta == T(0) ? d : beta * c[i] + d;
      }
    } else {  // columns of A are dense: accumulate scaled columns
      for (std::int64_t p = 0; p < k; ++p) {
        scale_add_row(c, p == 0 ? beta : T(1), alpha * b[p * sbp], a + p * sap, m);
      }
    }
  }
}

void check_inputs(const Tensor& a, const Tensor& b, std::string_view op) {
  if (!a.defined() || !b.defined()) {
    throw ValueError(fmt::format("{}: input tensor is undefined", op));
  }
  if (a.dtype() != b.dtype()) {
    throw DTypeError(fmt::format("{}: dtypes differ ({}{} @ {}{})", op, dtype_name(a.dtype()),
                                 shape_str(a.shape()), dtype_name(b.dtype()),
                                 shape_str(b.shape())));
  }
}

// A matrix operand: batch stride (0 when shared) and the gemm layout of its last two axes.
struct Operand {
  Tensor t;  // possibly made dense
  std::int64_t batch_stride = 0;
  GemmView view{};
  std::int64_t rows = 0, cols = 0;
};

Operand prepare(const Tensor& x) {
  Operand o;
  o.t = x;
  const std::int64_t d = x.dim();
  o.rows = x.shape()[d - 2];
  o.cols = x.shape()[d - 1];
  auto v = gemm_view(o.rows, o.cols, x.strides()[d - 2], x.strides()[d - 1]);
  if (!v) {
    o.t = x.contiguous();
    v = gemm_view(o.rows, o.cols, o.t.strides()[d - 2], o.t.strides()[d - 1]);
  }
  o.view = *v;
  o.batch_stride = d == 3 && x.shape()[0] > 1 ? o.t.strides()[0] : 0;
  return o;
}

}  // namespace

Shape matmul_shape(const Shape& a, const Shape& b) {
  const char* op = "matmul";
  if (a.size() < 2 || a.size() > 3 || b.size() < 2 || b.size() > 3) {
    throw ShapeError(
        fmt::format("{}: {} @ {}: operands must be 2-D or 3-D", op, shape_str(a), shape_str(b)));
  }
  const std::int64_t k1 = a[a.size() - 1], k2 = b[b.size() - 2];
  if (k1 != k2) {
    throw ShapeError(fmt::format("{}: {} @ {}: inner dimensions differ ({} vs {})", op,
                                 shape_str(a), shape_str(b), k1, k2));
  }
  const std::int64_t ba = a.size() == 3 ? a[0] : -1, bb = b.size() == 3 ? b[0] : -1;
  if (ba >= 0 && bb >= 0 && ba != bb) {
    throw ShapeError(fmt::format("{}: {} @ {}: batch sizes differ ({} vs {})", op, shape_str(a),
                                 shape_str(b), ba, bb));
  }
  const std::int64_t m = a[a.size() - 2], n = b[b.size() - 1];
  const std::int64_t batch = std::max(ba, bb);
  return batch >= 0 ? Shape{batch, m, n} : Shape{m, n};
}

void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, double alpha, double beta) {
  check_inputs(a, b, "matmul");
  const Shape shape = matmul_shape(a.shape(), b.shape());
  if (!out.defined() || out.shape() != shape || !out.is_contiguous()) {
    throw ShapeError(fmt::format("matmul_into: output {} must be a dense {}{}",
                                 out.defined() ? shape_str(out.shape()) : "undefined",
                                 dtype_name(a.dtype()), shape_str(shape)));
  }
  if (out.dtype() != a.dtype()) {
    throw DTypeError(fmt::format("matmul_into: output is {}{}, the inputs are {}",
                                 dtype_name(out.dtype()), shape_str(out.shape()),
                                 dtype_name(a.dtype())));
  }
  dispatch_floating(a.dtype(), "matmul", [&]<class T>() {
    const Operand A = prepare(a), B = prepare(b);
    const std::int64_t m = A.rows, k = A.cols, n = B.cols;
    T* pc = out.data<T>();
    const T* pa = A.t.data<T>();
    const T* pb = B.t.data<T>();
    if (m == 0 || n == 0) return;
    if (k == 0) {  // empty sum: out = beta * out
      for (std::int64_t i = 0; i < out.numel(); ++i) pc[i] = beta == 0 ? T(0) : T(beta) * pc[i];
      return;
    }
    const std::int64_t batch = shape.size() == 3 ? shape[0] : 1;
    // [B,M,K] @ [K,N] with A's rows evenly spaced across the batch: one gemm of B*M rows.
    const bool fold = batch > 1 && B.batch_stride == 0 && A.view.trans == CblasNoTrans &&
                      (A.batch_stride == m * A.view.ld);
    if (fold || batch == 1) {
      gemm<T>(A.view.trans, B.view.trans, static_cast<blasint>(fold ? batch * m : m),
              static_cast<blasint>(n), static_cast<blasint>(k), T(alpha), pa, A.view.ld, pb,
              B.view.ld, T(beta), pc, static_cast<blasint>(n));
      return;
    }
    if (std::min({m, n, k}) == 1) {
      std::vector<T> tmp;
      for (std::int64_t i = 0; i < batch; ++i) {
        if (g_recording != nullptr) {
          GemmCall call = describe(A.view.trans, B.view.trans, m, n, k, A.view.ld, B.view.ld, n,
                                   beta != 0, sizeof(T) == 8);
          call.tiny = true;
          record_gemm(call);
        }
        tiny_gemm<T>(A.view.trans == CblasTrans, B.view.trans == CblasTrans, m, n, k, T(alpha),
                     pa + i * A.batch_stride, A.view.ld, pb + i * B.batch_stride, B.view.ld,
                     T(beta), pc + i * m * n, tmp);
      }
      return;
    }
    for (std::int64_t i = 0; i < batch; ++i) {
      gemm<T>(A.view.trans, B.view.trans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), T(alpha), pa + i * A.batch_stride, A.view.ld,
              pb + i * B.batch_stride, B.view.ld, T(beta), pc + i * m * n, static_cast<blasint>(n));
    }
  });
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_inputs(a, b, __func__);
  Tensor out = Tensor::empty(matmul_shape(a.shape(), b.shape()), a.dtype());
  matmul_into(a, b, out, 1.0, 0.0);
  return out;
}

Tensor matmul_reference(const Tensor& a, const Tensor& b) {
  check_inputs(a, b, __func__);
  const Shape shape = matmul_shape(a.shape(), b.shape());
  const Tensor a3 =
      a.dim() == 3
          ? a
          : a.unsqueeze(0).expand({shape.size() == 3 ? shape[0] : 1, a.size(0), a.size(1)});
  const Tensor b3 =
      b.dim() == 3
          ? b
          : b.unsqueeze(0).expand({shape.size() == 3 ? shape[0] : 1, b.size(0), b.size(1)});
  const std::int64_t batch = a3.size(0), m = a3.size(1), k = a3.size(2), n = b3.size(2);
  Tensor out = Tensor::empty({batch, m, n}, DType::f64);
  auto* po = out.data<double>();
  for (std::int64_t bi = 0; bi < batch; ++bi) {
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (std::int64_t p = 0; p < k; ++p) s += a3.at({bi, i, p}) * b3.at({bi, p, j});
        po[(bi * m + i) * n + j] = s;
      }
    }
  }
  return out.reshape(shape).astype(a.dtype());
}

GemmRecording::GemmRecording() {
  if (g_recording != nullptr) throw std::logic_error("GemmRecording: recordings do not nest");
  g_recording = this;
}
GemmRecording::~GemmRecording() {
  g_recording = nullptr;
}
void record_gemm(const GemmCall& call) {
  if (g_recording != nullptr) g_recording->calls_.push_back(call);
}

const char* blas_core_name() {
  return openblas_get_corename();
}

std::string better_blas_core(const char* current, const char* coretype_env, bool avx512) {
  if (coretype_env != nullptr || !avx512 || current == nullptr) return "";
  const std::string_view core(current);
  for (std::string_view wide : {"SkylakeX", "Cooperlake", "SapphireRapids"}) {
    if (core == wide) return "";
  }
  return "SkylakeX";
}

bool cpu_has_avx512() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // libgcc's feature bits include the OS check (XGETBV): a kernel that does not save the
  // AVX-512 registers reports the features as absent.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

}  // namespace seqgrad
