// Scaled dot-product attention, the Transformer's attention primitive (Vaswani et al. 2017):
// y = softmax(q k^T * scale, keep) v over the last two axes, for 3-D [N,T,D] or 4-D [B,H,T,D]
// operands. One fused node (tensor/sdpa.h): the tape keeps q, k, v, the weights P and the
// dropout keep-mask, never the raw scores. Masking follows softmax's convention, so a fully
// masked query row gives y = 0 with a zero gradient.
// Shape legend: B batch, H heads, Tq queries, Tk keys, D head size, Dv value size.
#include <fmt/format.h>

#include <cmath>

#include "autograd/ops.h"
#include "tensor/elementwise.h"
#include "tensor/sdpa.h"

namespace seqgrad {

namespace {

// Whether `mask` broadcasts to `to` (NumPy's rule, aligned from the right, never growing `to`).
bool broadcasts_to(const Shape& mask, const Shape& to) {
  if (mask.size() > to.size()) return false;
  const std::size_t lead = to.size() - mask.size();
  for (std::size_t d = 0; d < mask.size(); ++d) {
    if (mask[d] != 1 && mask[d] != to[lead + d]) return false;
  }
  return true;
}

void check_sdpa(const Variable& q, const Variable& k, const Variable& v, const SdpaOptions& o) {
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
  if (!is_floating(q.dtype()) || k.dtype() != q.dtype() || v.dtype() != q.dtype()) {
    throw DTypeError(fmt::format("{}: q {}{}, k {}{}, v {}{} must share one float dtype", op,
                                 dtype_name(q.dtype()), shape_str(q.shape()), dtype_name(k.dtype()),
                                 shape_str(k.shape()), dtype_name(v.dtype()),
                                 shape_str(v.shape())));
  }
  if (o.mask.defined()) {
    Shape scores = q.shape();
    scores.back() = k.size(-2);
    if (o.mask.dtype() != DType::boolean) {
      throw DTypeError(fmt::format("{}: the mask must be bool (true keeps), got {}{}", op,
                                   dtype_name(o.mask.dtype()), shape_str(o.mask.shape())));
    }
    if (!broadcasts_to(o.mask.shape(), scores)) {
      throw ShapeError(fmt::format(
          "{}: mask {} does not broadcast to the scores {} of q {}, k {}, v {} (HINT: a key "
          "padding mask is [B,1,1,Tk] for 4-D operands, [N,1,Tk] for 3-D)",
          op, shape_str(o.mask.shape()), shape_str(scores), shape_str(q.shape()),
          shape_str(k.shape()), shape_str(v.shape())));
    }
  }
  if (!(o.dropout >= 0 && o.dropout < 1)) {
    throw ValueError(fmt::format("{}: dropout {} is outside [0, 1)", op, o.dropout));
  }
}

// softmax's keep-mask of the scores [..,Tq,Tk]: the given mask and, if causal, key j <= query
// i + (Tk - Tq).
Tensor composite_keep(const Shape& scores, const SdpaOptions& o) {
  if (!o.causal) return o.mask;
  const std::int64_t Tq = scores[scores.size() - 2], Tk = scores.back();
  Tensor causal = Tensor::zeros({Tq, Tk}, DType::boolean);
  auto* c = static_cast<std::uint8_t*>(causal.raw_data());
  for (std::int64_t i = 0; i < Tq; ++i) {
    for (std::int64_t j = 0; j < Tk; ++j) c[i * Tk + j] = j <= i + (Tk - Tq);
  }
  if (!o.mask.defined()) return causal;
  return where(o.mask, causal, Tensor::zeros({1}, DType::boolean));
}

// a [..,n,m] @ b [..,m,p] for 3-D or 4-D operands (matmul's batch is one leading axis).
Variable batched_matmul(const Variable& a, const Variable& b) {
  if (a.dim() == 3) return matmul(a, b);
  const std::int64_t B = a.size(0), H = a.size(1);
  const Variable y =
      matmul(reshape(a, {B * H, a.size(2), a.size(3)}), reshape(b, {B * H, b.size(2), b.size(3)}));
  return reshape(y, {B, H, y.size(1), y.size(2)});
}

// The same attention from ops that each have their own backward, keeping S and P.
SdpaResult traced_attention(const Variable& q, const Variable& k, const Variable& v,
                            const SdpaOptions& o, double scale) {
  if (o.dropout > 0) {
    throw ValueError(fmt::format("{}: a traced call takes no dropout (got {}; HINT: eval mode)",
                                 op_name(Op::scaled_dot_product_attention), o.dropout));
  }
  SdpaTrace& t = *o.trace;
  t.scores = batched_matmul(q, transpose(k, -2, -1)) * scale;
  t.weights = softmax(t.scores, -1, composite_keep(t.scores.shape(), o));
  SdpaResult r;
  if (o.need_weights) r.weights = t.weights.data();
  r.out = batched_matmul(t.weights, v);
  return r;
}

}  // namespace

// S = scale q k^T, P = softmax(S, mask), Pd = P * keep / (1 - p) (dropout), y = Pd v;
// dv = Pd^T dy, dS = P * (dP - rowsum(dP * P)) with dP = (dy v^T) * keep / (1 - p),
// dq = scale dS k, dk = scale dS^T q
SdpaResult scaled_dot_product_attention(const Variable& q, const Variable& k, const Variable& v,
                                        const SdpaOptions& o) {
  check_sdpa(q, k, v, o);
  const double scale = o.scale > 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  if (o.trace != nullptr) return traced_attention(q, k, v, o, scale);
  SdpaForward f = sdpa_forward(
      q.data(), k.data(), v.data(),
      {.mask = o.mask, .causal = o.causal, .scale = scale, .dropout = o.dropout, .gen = o.gen});
  SdpaResult r;
  if (o.need_weights) r.weights = f.weights;
  r.out = make_result(std::move(f.out), Op::scaled_dot_product_attention, {&q, &k, &v},
                      [tq = q.data(), tk = k.data(), tv = v.data(), w = f.weights, keep = f.keep,
                       p = o.dropout, scale](const Tensor& dy, const GradSink& g) {
                        // In the forward pass y = Pd v with Pd = P * keep / (1 - p) and P the
                        // masked softmax of S = scale q k^T; so now, as tensor/sdpa.h writes out:
                        //   dv = Pd^T dy;  dPd = dy v^T;  dP = dPd * keep / (1 - p);
                        //   dS = P * (dP - rowsum(dP * P));  dq = scale dS k;  dk = scale dS^T q.
                        // NOTE: for self-attention (q, k, v one Variable) the three shares add up
                        // in its gradient: the sink accumulates.
                        SdpaGrads d = sdpa_backward(tq, tk, tv, w, keep, p, scale, dy, g.needs(0),
                                                    g.needs(1), g.needs(2));
                        if (g.needs(0)) g.add(0, d.q);
                        if (g.needs(1)) g.add(1, d.k);
                        if (g.needs(2)) g.add(2, d.v);
                      });
  return r;
}

}  // namespace seqgrad
