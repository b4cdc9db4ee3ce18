// The packed kernel: b's columns are copied once into panels of NR columns, each panel holding
// its K rows of NR floats one after another, so the kernel reads a panel as one dense stream.
// A tile of MR rows of a and one panel accumulates in MR * NV registers (NV vectors of W lanes
// make NR): per k it loads NV vectors of the panel, broadcasts MR values of a and does MR * NV
// fused multiply-adds. Panels run in the outer loop, so a panel (K * NR floats) stays in cache
// while every row tile passes over it.
#include "tensor/packed_matmul.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <string>

#include "tensor/matmul.h"
#include "tensor/simd.h"

namespace seqgrad {

namespace {

using V = simd::Batch<float>;
constexpr std::int64_t W = V::size;
// Accumulators fill most of the vector registers: 24 of AVX-512's 32, 12 of AVX2's (or SSE's)
// 16, leaving room for the panel's vectors and the broadcast value.
#if defined(__AVX512F__)
constexpr int MR = 8;
#else
constexpr int MR = 4;
#endif
constexpr int NV = 3;
constexpr std::int64_t NR = NV * W;

std::int64_t panel_count(std::int64_t n) {
  return (n + NR - 1) / NR;
}

// c[R, cols] = a[R,K] @ panel + beta c, a's rows lda apart and dense along k.
template <int R>
void tile(std::int64_t K, const float* a, std::int64_t lda, const float* panel, float* c,
          std::int64_t ldc, std::int64_t cols, float beta) {
  std::array<std::array<V, NV>, R> acc;
  for (auto& row : acc) row.fill(V(0.0f));
  for (std::int64_t k = 0; k < K; ++k) {
    std::array<V, NV> b;
    for (int v = 0; v < NV; ++v) b[v] = V::load_aligned(panel + k * NR + v * W);
    for (int r = 0; r < R; ++r) {
      const V x(a[r * lda + k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(x, b[v], acc[r][v]);
    }
  }
  const V vbeta(beta);
  for (int r = 0; r < R; ++r) {
    float* row = c + r * ldc;
    if (cols == NR) {
      for (int v = 0; v < NV; ++v) {
        V y = acc[r][v];
        if (beta != 0.0f) y = xsimd::fma(vbeta, V::load_unaligned(row + v * W), y);
        y.store_unaligned(row + v * W);
      }
      continue;
    }
    alignas(64) std::array<float, NR> part;
    for (int v = 0; v < NV; ++v) acc[r][v].store_aligned(part.data() + v * W);
    for (std::int64_t j = 0; j < cols; ++j) {
      row[j] = beta != 0.0f ? beta * row[j] + part[j] : part[j];
    }
  }
}

// The last rows (fewer than MR): a tile of exactly `rows` rows.
template <int R>
void tail_tile(int rows, std::int64_t K, const float* a, std::int64_t lda, const float* panel,
               float* c, std::int64_t ldc, std::int64_t cols, float beta) {
  if constexpr (R > 0) {
    if (rows == R) {
      tile<R>(K, a, lda, panel, c, ldc, cols, beta);
    } else {
      tail_tile<R - 1>(rows, K, a, lda, panel, c, ldc, cols, beta);
    }
  }
}

void packed_product(std::int64_t M, std::int64_t N, std::int64_t K, const float* a,
                    std::int64_t lda, const float* panels, float* c, float beta) {
  for (std::int64_t p = 0; p < panel_count(N); ++p) {
    const float* panel = panels + p * K * NR;
    const std::int64_t j0 = p * NR, cols = std::min(NR, N - j0);
    std::int64_t i = 0;
    for (; i + MR <= M; i += MR)
      tile<MR>(K, a + i * lda, lda, panel, c + i * N + j0, N, cols, beta);
    if (i < M) {
      tail_tile<MR - 1>(static_cast<int>(M - i), K, a + i * lda, lda, panel, c + i * N + j0, N,
                        cols, beta);
    }
  }
}

}  // namespace

PackedMatrix::PackedMatrix(const Tensor& b) : b_(b) {
  if (!b.defined() || b.dim() != 2 || !is_floating(b.dtype())) {
    throw ShapeError(fmt::format("PackedMatrix: {} must be a 2-D float matrix [K,N]",
                                 b.defined()
                                     ? std::string(dtype_name(b.dtype())) + shape_str(b.shape())
                                     : std::string("an undefined tensor")));
  }
  if (b.dtype() != DType::f32 || b.numel() == 0) return;
  // copy_from copies a transposed view (a layer's W^T) in tiles; columns past N are zeros.
  const std::int64_t K = b.size(0), N = b.size(1);
  panels_ = Tensor::empty({panel_count(N), K, NR});
  for (std::int64_t p = 0; p < panel_count(N); ++p) {
    const std::int64_t cols = std::min(NR, N - p * NR);
    Tensor panel = panels_.select(0, p);
    panel.narrow(1, 0, cols).copy_from(b.narrow(1, p * NR, cols));
    if (cols < NR) panel.narrow(1, cols, NR - cols).fill_(0.0);
  }
}

void matmul_into(const Tensor& a, const PackedMatrix& b, Tensor& out, double beta) {
  if (!a.defined() || !b.defined()) {
    throw ValueError("matmul: packed product of an undefined tensor");
  }
  const Shape shape = matmul_shape(a.shape(), b.b_.shape());
  if (a.dim() != 2) {
    throw ShapeError(fmt::format("matmul: {} @ packed {}: the left operand must be 2-D",
                                 shape_str(a.shape()), shape_str(b.b_.shape())));
  }
  const std::int64_t M = shape[0], N = shape[1], K = a.size(1);
  if (!b.packed() || a.dtype() != DType::f32 || M > PackedMatrix::kMaxPackedRows || K == 0 ||
      !out.defined() || !out.is_contiguous() || out.dtype() != DType::f32 || out.shape() != shape) {
    matmul_into(a, b.b_, out, 1.0, beta);  // gemm, which also checks dtypes and out
    return;
  }
  const Tensor dense = a.strides()[1] == 1 ? a : a.contiguous();
  if (M == 0 || N == 0) return;
  record_gemm({.trans_a = false,
               .trans_b = b.b_.strides()[0] == 1 && b.b_.strides()[1] != 1,
               .m = M,
               .n = N,
               .k = K,
               .lda = dense.strides()[0],
               .ldb = std::max(b.b_.strides()[0], b.b_.strides()[1]),
               .ldc = N,
               .accumulate = beta != 0.0,
               .f64 = false,
               .tiny = false});
  packed_product(M, N, K, dense.data<float>(), M == 1 ? K : dense.strides()[0],
                 b.panels_.data<float>(), out.data<float>(), static_cast<float>(beta));
}

Tensor matmul(const Tensor& a, const PackedMatrix& b) {
  if (!a.defined() || !b.defined()) {
    throw ValueError("matmul: packed product of an undefined tensor");
  }
  Tensor out = Tensor::empty(matmul_shape(a.shape(), b.matrix().shape()), a.dtype());
  matmul_into(a, b, out, 0.0);
  return out;
}

}  // namespace seqgrad
