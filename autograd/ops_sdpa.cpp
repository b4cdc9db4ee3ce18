// Scaled dot-product attention, the Transformer's attention primitive (Vaswani et al. 2017):
// y = softmax(q k^T * scale, keep) v over the last two axes, for 3-D [N,T,D] or 4-D [B,H,T,D]
// operands. Written here from matmul and softmax (a composite: the tape holds the [.., Tq, Tk]
// scores and weights); masking follows softmax's convention, so a fully masked query row gives
// y = 0 with a zero gradient.
// Shape legend: B batch, H heads, Tq queries, Tk keys, D head size, Dv value size.
#include <fmt/format.h>

#include <cmath>

#include "autograd/ops.h"
#include "tensor/random.h"

namespace seqgrad {

namespace {

void check_sdpa(const Variable& q, const Variable& k, const Variable& v) {
  const auto op = op_name(Op::scaled_dot_product_attention);
  const bool ranks = (q.dim() == 3 || q.dim() == 4) && k.dim() == q.dim() && v.dim() == q.dim();
  bool ok = ranks;
  for (std::int64_t d = 0; ok && d + 2 < q.dim(); ++d) {
    ok = q.size(d) == k.size(d) && q.size(d) == v.size(d);
  }
  ok = ok && q.size(-1) == k.size(-1) && k.size(-2) == v.size(-2);
  if (!ok) {
    throw ShapeError(fmt::format(
        "{}: q {}, k {}, v {} must be [..,Tq,D], [..,Tk,D] and [..,Tk,Dv] with the same leading "
        "axes (3-D or 4-D)",
        op, shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape())));
  }
}

// The keep mask of the scores [.., Tq, Tk]: the caller's mask (broadcast) and, when causal, key
// j <= query i + (Tk - Tq). Undefined when nothing is masked.
Tensor keep_mask(const Shape& scores, const SdpaOptions& o) {
  if (!o.causal) return o.mask;
  const std::int64_t Tq = scores[scores.size() - 2], Tk = scores.back();
  Tensor causal = Tensor::zeros({Tq, Tk}, DType::boolean);
  auto* c = static_cast<std::uint8_t*>(causal.raw_data());
  for (std::int64_t i = 0; i < Tq; ++i) {
    for (std::int64_t j = 0; j < Tk; ++j) c[i * Tk + j] = j <= i + (Tk - Tq);
  }
  if (!o.mask.defined()) return causal;
  const Shape shape = broadcast_shapes(o.mask.shape(), scores, "scaled_dot_product_attention");
  Tensor both = o.mask.expand(shape).contiguous();
  const Tensor cb = causal.expand(shape).contiguous();
  auto* b = static_cast<std::uint8_t*>(both.raw_data());
  const auto* cc = static_cast<const std::uint8_t*>(cb.raw_data());
  for (std::int64_t i = 0; i < both.numel(); ++i) b[i] = b[i] && cc[i];
  return both;
}

// a @ b for 3-D or 4-D operands (4-D folds its two leading axes into matmul's batch).
Variable batched_matmul(const Variable& a, const Variable& b) {
  if (a.dim() == 3) return matmul(a, b);
  const std::int64_t B = a.size(0), H = a.size(1);
  const Variable y =
      matmul(reshape(a, {B * H, a.size(2), a.size(3)}), reshape(b, {B * H, b.size(2), b.size(3)}));
  return reshape(y, {B, H, y.size(1), y.size(2)});
}

}  // namespace

SdpaResult scaled_dot_product_attention(const Variable& q, const Variable& k, const Variable& v,
                                        const SdpaOptions& o) {
  check_sdpa(q, k, v);
  if (o.dropout < 0 || o.dropout >= 1) {
    throw ValueError(fmt::format("{}: dropout {} is outside [0, 1)",
                                 op_name(Op::scaled_dot_product_attention), o.dropout));
  }
  const double scale = o.scale > 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const Variable scores = batched_matmul(q, transpose(k, -2, -1)) * scale;
  Variable w = softmax(scores, -1, keep_mask(scores.shape(), o));
  SdpaResult r;
  if (o.need_weights) r.weights = w.data();
  if (o.dropout > 0) {
    // inverted dropout of the weights: keep each with probability 1 - p, scaled by 1/(1 - p)
    const Tensor keep =
        bernoulli(w.shape(), 1.0 - o.dropout, o.gen != nullptr ? *o.gen : default_generator());
    w = mul(w, Variable(keep.astype(w.dtype()))) * (1.0 / (1.0 - o.dropout));
  }
  r.out = batched_matmul(w, v);
  return r;
}

}  // namespace seqgrad
