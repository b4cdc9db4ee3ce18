// Matrix products through CBLAS (OpenBLAS). A transposed view is passed to gemm as a transpose
// flag with its leading dimension, never copied; only layouts gemm cannot express (neither
// axis of unit stride) are made dense first.
//
// Shapes: [M,K] @ [K,N] -> [M,N]; [B,M,K] @ [B,K,N] -> [B,M,N]; a 2-D operand is shared by
// every batch entry of a 3-D one ([B,M,K] @ [K,N] -> [B,M,N], [M,K] @ [B,K,N] -> [B,M,N]).
#pragma once

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

// Name of the OpenBLAS kernel family in use ("Prescott", "SkylakeX", ...).
const char* blas_core_name();

}  // namespace seqgrad
