// Additive attention score kernels: each [A] row of uk is walked once, on xsimd batches with a
// scalar tail, by the same templated body; no [B,S,A] temporary is allocated in the forward.
#include "tensor/attention_kernels.h"

#include <cassert>
#include <cmath>

#include "tensor/simd.h"

namespace seqgrad {

namespace {

using simd::for_each_column;
using simd::get;
using simd::put;

// The preconditions the autograd op has already turned into typed errors.
[[maybe_unused]] bool shapes_fit(const Tensor& uk, const Tensor& wq, const Tensor& v) {
  return uk.dim() == 3 && wq.dim() == 2 && uk.size(0) == wq.size(0) && uk.size(2) == wq.size(1) &&
         v.numel() == uk.size(2) && uk.dtype() == wq.dtype() && uk.dtype() == v.dtype();
}

}  // namespace

Tensor additive_scores_forward(const Tensor& uk_in, const Tensor& wq_in, const Tensor& v_in) {
  assert(shapes_fit(uk_in, wq_in, v_in));
  const Tensor uk = uk_in.contiguous(), wq = wq_in.contiguous(), v = v_in.contiguous();
  const std::int64_t B = uk.size(0), S = uk.size(1), A = uk.size(2);
  Tensor score = Tensor::empty({B, S}, uk.dtype());
  dispatch_floating(uk.dtype(), __func__, [&]<class T>() {
    const T* pv = v.data<T>();
    T* out = score.data<T>();
    for (std::int64_t b = 0; b < B; ++b) {
      const T* w = wq.data<T>() + b * A;
      for (std::int64_t s = 0; s < S; ++s) {
        const T* u = uk.data<T>() + (b * S + s) * A;
        // Lane-wise partial sums of v * tanh(u + w), added up once at the end of the row.
        simd::Batch<T> lanes(T(0));
        T tail = 0;
        for_each_column<T>(A, [&]<class V>(std::int64_t a) {
          const V term = get<V>(pv + a) * xsimd::tanh(get<V>(u + a) + get<V>(w + a));
          if constexpr (std::is_arithmetic_v<V>) {
            tail += term;
          } else {
            lanes += term;
          }
        });
        out[b * S + s] = xsimd::hadd(lanes) + tail;
      }
    }
  });
  return score;
}

AdditiveScoresGrads additive_scores_backward(const Tensor& uk_in, const Tensor& wq_in,
                                             const Tensor& v_in, const Tensor& dscore_in,
                                             bool need_uk, bool need_wq, bool need_v) {
  assert(shapes_fit(uk_in, wq_in, v_in));
  assert(dscore_in.shape() == (Shape{uk_in.size(0), uk_in.size(1)}));
  const Tensor uk = uk_in.contiguous(), wq = wq_in.contiguous(), v = v_in.contiguous();
  const Tensor dscore = dscore_in.contiguous();
  const std::int64_t B = uk.size(0), S = uk.size(1), A = uk.size(2);
  AdditiveScoresGrads d;
  if (need_uk) d.uk = Tensor::empty(uk.shape(), uk.dtype());
  if (need_wq) d.wq = Tensor::zeros(wq.shape(), wq.dtype());
  if (need_v) d.v = Tensor::zeros(v_in.shape(), v.dtype());
  if (!need_uk && !need_wq && !need_v) return d;
  dispatch_floating(uk.dtype(), __func__, [&]<class T>() {
    const T* pv = v.data<T>();
    const T* ds = dscore.data<T>();
    T* dv = need_v ? d.v.data<T>() : nullptr;
    for (std::int64_t b = 0; b < B; ++b) {
      const T* w = wq.data<T>() + b * A;
      T* dw = need_wq ? d.wq.data<T>() + b * A : nullptr;
      for (std::int64_t s = 0; s < S; ++s) {
        const T* u = uk.data<T>() + (b * S + s) * A;
        T* du = need_uk ? d.uk.data<T>() + (b * S + s) * A : nullptr;
        const T g = ds[b * S + s];
        // In the forward pass score = v . t with t = tanh(u + w), so dt = g v and the
        // pre-activation's gradient g v (1 - t^2) goes to u itself and, summed over s, to w.
        for_each_column<T>(A, [&]<class V>(std::int64_t a) {
          const V t = xsimd::tanh(get<V>(u + a) + get<V>(w + a));
          const V vg(g);
          if (dv != nullptr) put(dv + a, V(get<V>(dv + a) + vg * t));
          if (du == nullptr && dw == nullptr) return;
          const V dpre = vg * get<V>(pv + a) * (V(1) - t * t);
          if (du != nullptr) put(du + a, dpre);
          if (dw != nullptr) put(dw + a, V(get<V>(dw + a) + dpre));
        });
      }
    }
  });
  return d;
}

}  // namespace seqgrad
