// Fused scaled dot-product attention kernels on plain tensors, a forward/backward pair. The
// forward writes the scores straight into the weights buffer P (gemm with alpha = scale),
// masks and normalises each row of P in place, and multiplies by v; of the [.., Tq, Tk] values
// only P (and the dropout keep-mask) outlive it, never the raw scores. Masks are read through
// broadcast views and causal masking is a per-row key limit: no [.., Tq, Tk] mask is built.
//
// Shape legend: 3-D operands [N,T,..] or 4-D [B,H,T,..] (N = B*H batch entries), Tq queries,
// Tk keys, D query/key size, Dv value size.
#pragma once

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace seqgrad {

struct SdpaConfig {
  Tensor mask;               // boolean keep-mask broadcastable to [.., Tq, Tk] (true keeps)
  bool causal = false;       // also drop key j > query i + (Tk - Tq) (bottom-right aligned)
  double scale = 1;          // multiplies q k^T
  double dropout = 0;        // probability of dropping a weight, in [0, 1)
  Generator* gen = nullptr;  // draws the keep-mask; nullptr: the default generator
};

struct SdpaForward {
  Tensor out;      // [.., Tq, Dv], dense
  Tensor weights;  // P [.., Tq, Tk], dense: the masked softmax, before dropout
  Tensor keep;     // boolean [.., Tq, Tk] when dropout > 0 (true: the weight is kept)
};

// S = scale q k^T;  P = softmax(S) over the keys each query keeps (a row that keeps none is 0);
// Pd = P * keep / (1 - p);  out = Pd v.
// q [.., Tq, D], k [.., Tk, D], v [.., Tk, Dv] with equal leading axes (3-D or 4-D), one
// floating dtype, any layout (views are read in place). The autograd op checks all of this and
// names itself in the errors; here it is asserted.
SdpaForward sdpa_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                         const SdpaConfig& config);

struct SdpaGrads {
  Tensor q, k, v;  // dense, of q's, k's and v's shapes; undefined unless asked for
};

// With P and keep from the forward and the upstream gradient dout [.., Tq, Dv]:
//   dv = Pd^T dout;  dPd = dout v^T;  dP = dPd * keep / (1 - p);
//   dS = P * (dP - rowsum(dP * P));  dq = scale dS k;  dk = scale dS^T q.
SdpaGrads sdpa_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& weights,
                        const Tensor& keep, double dropout, double scale, const Tensor& dout,
                        bool need_q, bool need_k, bool need_v);

}  // namespace seqgrad
