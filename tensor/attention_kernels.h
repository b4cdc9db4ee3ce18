// Fused additive (Bahdanau) attention scores. Composed from elementwise ops, each decoder step
// would materialise the [B,S,A] sum uk + wq and its tanh (and both gradients); these kernels
// keep neither: the forward reduces each row as it goes, the backward recomputes tanh.
//
// Shape legend: B batch, S source length, A attention size.
#pragma once

#include "tensor/tensor.h"

namespace seqgrad {

// score[b,s] = sum_a v[a] * tanh(uk[b,s,a] + wq[b,a])
// uk [B,S,A], wq [B,A], v with A elements ([A], [1,A] or [A,1]), one floating dtype; the
// autograd op checks this and names itself in the errors. Any layout (dense inputs are used in
// place). Returns [B,S].
Tensor additive_scores_forward(const Tensor& uk, const Tensor& wq, const Tensor& v);

struct AdditiveScoresGrads {
  Tensor uk;  // [B,S,A], undefined unless asked for
  Tensor wq;  // [B,A], likewise
  Tensor v;   // v's shape, likewise
};

// With t = tanh(uk + wq) recomputed row by row and the upstream gradient dscore [B,S]:
//   duk[b,s,:] = dscore[b,s] * v * (1 - t^2),  dwq[b,:] = sum_s duk[b,s,:],
//   dv = sum_{b,s} dscore[b,s] * t[b,s,:]
AdditiveScoresGrads additive_scores_backward(const Tensor& uk, const Tensor& wq, const Tensor& v,
                                             const Tensor& dscore, bool need_uk, bool need_wq,
                                             bool need_v);

}  // namespace seqgrad
