// Matrix products through CBLAS (OpenBLAS). A transposed view is passed to gemm as a transpose
// flag with its leading dimension, never copied; only layouts gemm cannot express (neither
// axis of unit stride) are made dense first.
//
// Shapes: [M,K] @ [K,N] -> [M,N]; [B,M,K] @ [B,K,N] -> [B,M,N]; a 2-D operand is shared by
// every batch entry of a 3-D one ([B,M,K] @ [K,N] -> [B,M,N], [M,K] @ [B,K,N] -> [B,M,N]).
#pragma once

#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace seqgrad {

// y = a @ b
Tensor matmul(const Tensor& a, const Tensor& b);
// out = alpha * (a @ b) + beta * out, with out dense and of the product's shape. Backward
// passes use it to accumulate into an existing gradient without a temporary.
void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, double alpha, double beta);
// The product's shape, or ShapeError naming both shapes.
Shape matmul_shape(const Shape& a, const Shape& b);
// Triple loop in double precision: the reference the tests compare gemm against.
Tensor matmul_reference(const Tensor& a, const Tensor& b);

// One gemm the tensor layer issued: row-major C[m,n] = A[m,k] @ B[k,n] (either operand possibly
// transposed), with leading dimensions and whether it accumulated (beta != 0).
struct GemmCall {
  bool trans_a = false, trans_b = false;
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
  bool accumulate = false;
  bool f64 = false;
  bool tiny = false;  // one of a batch of products with m, n or k = 1, done by SIMD loops
};

// While a GemmRecording is alive, every gemm this thread issues through matmul / matmul_into is
// appended to it (benchmarks replay the list as raw cblas calls: a step's matmul-only time).
// Recordings do not nest; the products a batch of tiny matrices turns into SIMD loops instead
// of gemm (see matmul_into) are recorded too, as the gemm calls they replace.
class GemmRecording {
 public:
  GemmRecording();
  ~GemmRecording();
  GemmRecording(const GemmRecording&) = delete;
  GemmRecording& operator=(const GemmRecording&) = delete;
  const std::vector<GemmCall>& calls() const { return calls_; }

 private:
  friend void record_gemm(const GemmCall& call);
  std::vector<GemmCall> calls_;
};
void record_gemm(const GemmCall& call);

// Name of the OpenBLAS kernel family in use ("Prescott", "SkylakeX", ...).
const char* blas_core_name();

// Debian's OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs (Ice Lake and later Xeons,
// AMD Zen 4) and falls back to "Prescott" (SSE3) or "Haswell" (AVX2) kernels; its AVX-512
// "SkylakeX" kernels run these CPUs' sgemm 1.5-5x faster. OpenBLAS picks its kernels when it is
// loaded, from the environment variable OPENBLAS_CORETYPE, so a program can only switch by
// starting again with that variable set.
//
// The kernel family worth restarting with, or "" to keep the current one: "SkylakeX" when the
// CPU and OS support AVX-512 (F, CD, BW, DQ, VL), the current family is not an AVX-512 one, and
// the user has not chosen one (`coretype_env` is OPENBLAS_CORETYPE's value, nullptr if unset).
std::string better_blas_core(const char* current, const char* coretype_env, bool cpu_has_avx512);
// Whether this CPU and its OS support the AVX-512 subsets OpenBLAS's SkylakeX kernels use.
bool cpu_has_avx512();

}  // namespace seqgrad
