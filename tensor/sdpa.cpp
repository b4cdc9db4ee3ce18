// Scaled dot-product attention kernels. The four products per direction go through matmul_into
// (one gemm per batch entry, no operand copied: transposes are gemm flags, strided heads are
// leading dimensions); the row work (mask, softmax, its backward) runs on SIMD rows of the dense
// [.., Tq, Tk] buffers.
#include "tensor/sdpa.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "tensor/matmul.h"
#include "tensor/simd.h"

namespace seqgrad {

namespace {

// The preconditions the autograd op has already turned into typed errors.
[[maybe_unused]] bool shapes_fit(const Tensor& q, const Tensor& k, const Tensor& v) {
  if ((q.dim() != 3 && q.dim() != 4) || k.dim() != q.dim() || v.dim() != q.dim()) return false;
  for (std::int64_t d = 0; d + 2 < q.dim(); ++d) {
    if (q.size(d) != k.size(d) || q.size(d) != v.size(d)) return false;
  }
  return q.size(-1) == k.size(-1) && k.size(-2) == v.size(-2) && q.dtype() == k.dtype() &&
         q.dtype() == v.dtype();
}

// x, or x with its last two axes swapped (a view).
Tensor maybe_t(const Tensor& x, bool t) {
  return t ? x.transpose(x.dim() - 2, x.dim() - 1) : x;
}

// out = alpha * op(a) @ op(b) for every batch entry of 3-D or 4-D operands with equal leading
// axes, op a transpose where asked; out is dense. 3-D operands are one matmul_into (one gemm per
// entry); 4-D ones fold [B,H] into one batch axis when both are dense, and otherwise go one b at
// a time over their [H,..] views, so a head split by permute is read in place.
void bmm_into(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& out, double alpha) {
  if (a.dim() == 3) {
    matmul_into(maybe_t(a, ta), maybe_t(b, tb), out, alpha, 0.0);
    return;
  }
  const std::int64_t B = a.size(0), H = a.size(1);
  if (a.is_contiguous() && b.is_contiguous()) {
    Tensor out3 = out.reshape({B * H, out.size(2), out.size(3)});
    matmul_into(maybe_t(a.reshape({B * H, a.size(2), a.size(3)}), ta),
                maybe_t(b.reshape({B * H, b.size(2), b.size(3)}), tb), out3, alpha, 0.0);
    return;
  }
  for (std::int64_t i = 0; i < B; ++i) {
    Tensor oi = out.select(0, i);
    matmul_into(maybe_t(a.select(0, i), ta), maybe_t(b.select(0, i), tb), oi, alpha, 0.0);
  }
}

// Walks the rows of a dense [.., Tq, Tk] buffer: body(row, n, i) for batch entry n and query i.
template <class Body>
void for_each_score_row(const Shape& shape, const Body& body) {
  const std::int64_t Tq = shape[shape.size() - 2];
  const std::int64_t N = shape_numel(shape) / std::max<std::int64_t>(Tq * shape.back(), 1);
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t i = 0; i < Tq; ++i) body(n * Tq + i, n, i);
  }
}

// The caller's mask, expanded (a stride-0 view where it broadcasts) to the scores' shape and
// addressed by batch entry and query: row(n, i)[j * stride] is key j's keep flag.
struct MaskRows {
  const std::uint8_t* base = nullptr;
  Shape strides;
  std::int64_t H = 1;  // heads, for 4-D
  bool four_d = false;

  MaskRows(const Tensor& mask, const Shape& scores) {
    if (!mask.defined()) return;
    const Tensor m = mask.expand(scores);
    base = static_cast<const std::uint8_t*>(m.raw_data());
    strides = m.strides();
    four_d = scores.size() == 4;
    if (four_d) H = scores[1];
  }
  const std::uint8_t* row(std::int64_t n, std::int64_t i) const {
    if (base == nullptr) return nullptr;
    const std::int64_t lead = four_d ? (n / H) * strides[0] + (n % H) * strides[1] : n * strides[0];
    return base + lead + i * strides[four_d ? 2 : 1];
  }
  std::int64_t stride() const { return base == nullptr ? 0 : strides.back(); }
};

// In place over one row of scores s[0..n): keys at or past `allowed` and keys the mask drops
// are removed, the rest normalised: s = exp(s - max) / sum. A row that keeps no key becomes 0.
template <class T>
void softmax_row(T* s, std::int64_t n, std::int64_t allowed, const std::uint8_t* keep,
                 std::int64_t ks) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  if (keep != nullptr) {
    for (std::int64_t j = 0; j < allowed; ++j) {
      if (!keep[j * ks]) s[j] = kNegInf;
    }
  }
  T m = kNegInf;
  for (std::int64_t j = 0; j < allowed; ++j) m = std::max(m, s[j]);
  if (m == kNegInf) {  // fully masked: defined as weight 0 everywhere (as tensor/softmax.h)
    std::fill(s, s + n, T(0));
    return;
  }
  // exp(-inf - m) is 0, so removed keys drop out of the sum without a branch.
  simd::unary_row(s, 1, s, allowed, [m](auto x) { return xsimd::exp(x - decltype(x)(m)); });
  const T inv = T(1) / simd::sum_row(s, 1, allowed);
  simd::unary_row(s, 1, s, allowed, [inv](auto x) { return x * decltype(x)(inv); });
  std::fill(s + allowed, s + n, T(0));
}

// sum_j x[j] y[j], dense rows, SIMD lanes as partial sums.
template <class T>
T dot_row(const T* x, const T* y, std::int64_t n) {
  using B = simd::Batch<T>;
  constexpr std::int64_t W = B::size;
  std::int64_t j = 0;
  T total = 0;
  if (n >= W) {
    B acc(T(0));
    for (; j + W <= n; j += W)
      acc = xsimd::fma(B::load_unaligned(x + j), B::load_unaligned(y + j), acc);
    total = xsimd::hadd(acc);
  }
  for (; j < n; ++j) total += x[j] * y[j];
  return total;
}

// Pd = P * keep / (1 - p): the weights dropout leaves, rescaled.
template <class T>
Tensor dropped(const Tensor& P, const Tensor& keep, double p) {
  Tensor Pd = Tensor::empty(P.shape(), P.dtype());
  const T* pp = P.data<T>();
  const auto* pk = static_cast<const std::uint8_t*>(keep.raw_data());
  T* pd = Pd.data<T>();
  const T inv = T(1 / (1 - p));
  for (std::int64_t e = 0; e < P.numel(); ++e) pd[e] = pk[e] ? pp[e] * inv : T(0);
  return Pd;
}

Shape with_last_two(const Shape& lead_from, std::int64_t a, std::int64_t b) {
  Shape s = lead_from;
  s[s.size() - 2] = a;
  s[s.size() - 1] = b;
  return s;
}

}  // namespace

SdpaForward sdpa_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                         const SdpaConfig& config) {
  assert(shapes_fit(q, k, v));
  const std::int64_t Tq = q.size(-2), Tk = k.size(-2);
  const Shape scores = with_last_two(q.shape(), Tq, Tk);
  SdpaForward f;
  f.weights = Tensor::empty(scores, q.dtype());
  f.out = Tensor::empty(with_last_two(q.shape(), Tq, v.size(-1)), q.dtype());
  dispatch_floating(q.dtype(), __func__, [&]<class T>() {
    // S = scale q k^T, written where P goes.
    bmm_into(q, false, k, true, f.weights, config.scale);
    // P = softmax of each row over the keys it keeps.
    const MaskRows mask(config.mask, scores);
    T* P = f.weights.data<T>();
    for_each_score_row(scores, [&](std::int64_t r, std::int64_t n, std::int64_t i) {
      // Causal, bottom-right aligned: query i sees keys j <= i + (Tk - Tq).
      const std::int64_t allowed =
          config.causal ? std::clamp<std::int64_t>(i + (Tk - Tq) + 1, 0, Tk) : Tk;
      softmax_row(P + r * Tk, Tk, allowed, mask.row(n, i), mask.stride());
    });
    // out = Pd v
    if (config.dropout > 0) {
      f.keep = bernoulli(scores, 1.0 - config.dropout,
                         config.gen != nullptr ? *config.gen : default_generator());
      bmm_into(dropped<T>(f.weights, f.keep, config.dropout), false, v, false, f.out, 1.0);
    } else {
      bmm_into(f.weights, false, v, false, f.out, 1.0);
    }
  });
  return f;
}

SdpaGrads sdpa_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& weights,
                        const Tensor& keep, double dropout, double scale, const Tensor& dout,
                        bool need_q, bool need_k, bool need_v) {
  assert(shapes_fit(q, k, v));
  assert(weights.is_contiguous() &&
         weights.shape() == with_last_two(q.shape(), q.size(-2), k.size(-2)));
  assert(dout.shape() == with_last_two(q.shape(), q.size(-2), v.size(-1)));
  SdpaGrads d;
  dispatch_floating(q.dtype(), __func__, [&]<class T>() {
    // In the forward pass out = Pd v with Pd = P * keep / (1 - p), so dv = Pd^T dout.
    const Tensor Pd = keep.defined() ? dropped<T>(weights, keep, dropout) : weights;
    if (need_v) {
      d.v = Tensor::empty(v.shape(), v.dtype());
      bmm_into(Pd, true, dout, false, d.v, 1.0);
    }
    if (!need_q && !need_k) return;
    // dPd = dout v^T, then in place, row by row: dP = dPd * keep / (1 - p), and through the
    // softmax dS = P * (dP - rowsum(dP * P)). A masked weight is 0, so its dS is 0 too: the mask
    // is not needed again.
    Tensor dS = Tensor::empty(weights.shape(), weights.dtype());
    bmm_into(dout, false, v, true, dS, 1.0);
    const std::int64_t Tk = weights.size(-1);
    const T* P = weights.data<T>();
    T* ds = dS.data<T>();
    const auto* pk = keep.defined() ? static_cast<const std::uint8_t*>(keep.raw_data()) : nullptr;
    const T inv_keep = T(1 / (1 - dropout));
    for_each_score_row(weights.shape(), [&](std::int64_t r, std::int64_t, std::int64_t) {
      T* row = ds + r * Tk;
      const T* p = P + r * Tk;
      if (pk != nullptr) {
        const std::uint8_t* kr = pk + r * Tk;
        for (std::int64_t j = 0; j < Tk; ++j) row[j] = kr[j] ? row[j] * inv_keep : T(0);
      }
      const T dot = dot_row(row, p, Tk);
      simd::binary_row(p, 1, row, 1, row, Tk,
                       [dot](auto pj, auto dj) { return pj * (dj - decltype(pj)(dot)); });
    });
    // S = scale q k^T: dq = scale dS k, dk = scale dS^T q.
    if (need_q) {
      d.q = Tensor::empty(q.shape(), q.dtype());
      bmm_into(dS, false, k, false, d.q, scale);
    }
    if (need_k) {
      d.k = Tensor::empty(k.shape(), k.dtype());
      bmm_into(dS, true, q, false, d.k, scale);
    }
  });
  return d;
}

}  // namespace seqgrad
