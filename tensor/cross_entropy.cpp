// Cross-entropy row kernels: a row of V logits is read twice in the forward (max, then the
// exp-sum) and twice in the backward (recomputed softmax, target entry), on xsimd batches with
// a scalar tail.
#include "tensor/cross_entropy.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <limits>
#include <utility>

#include "tensor/simd.h"

namespace seqgrad {

namespace {

template <class T>
T row_max(const T* x, std::int64_t V) {
  using B = simd::Batch<T>;
  constexpr std::int64_t W = B::size;
  T m = -std::numeric_limits<T>::infinity();
  std::int64_t j = 0;
  if (V >= W) {
    B lanes = B::load_unaligned(x);
    for (j = W; j + W <= V; j += W) lanes = xsimd::max(lanes, B::load_unaligned(x + j));
    std::array<T, W> a{};
    lanes.store_unaligned(a.data());
    m = *std::max_element(a.begin(), a.end());
  }
  for (; j < V; ++j) m = std::max(m, x[j]);
  return m;
}

// sum_j exp(x_j - m) and, when `shifted` is set, sum_j (x_j - m).
template <class T>
std::pair<T, T> exp_and_shift_sums(const T* x, std::int64_t V, T m, bool shifted) {
  using B = simd::Batch<T>;
  constexpr std::int64_t W = B::size;
  const B vm(m);
  B e(T(0)), d(T(0));
  std::int64_t j = 0;
  for (; j + W <= V; j += W) {
    const B z = B::load_unaligned(x + j) - vm;
    e += xsimd::exp(z);
    if (shifted) d += z;
  }
  T se = xsimd::hadd(e), sd = shifted ? xsimd::hadd(d) : T(0);
  for (; j < V; ++j) {
    se += std::exp(x[j] - m);
    if (shifted) sd += x[j] - m;
  }
  return {se, sd};
}

[[maybe_unused]] bool inputs_fit(const Tensor& logits, const Tensor& targets) {
  return logits.dim() == 2 && targets.dim() == 1 && targets.size(0) == logits.size(0) &&
         targets.dtype() == DType::i64;
}

}  // namespace

CrossEntropyRows cross_entropy_forward(const Tensor& logits_in, const Tensor& targets_in,
                                       std::int64_t ignore_index, double eps_in) {
  assert(inputs_fit(logits_in, targets_in));
  const Tensor logits = logits_in.contiguous(), targets = targets_in.contiguous();
  const std::int64_t N = logits.size(0), V = logits.size(1);
  CrossEntropyRows r{Tensor::empty({N}, logits.dtype()), Tensor::empty({N}, logits.dtype()),
                     Tensor::empty({N}, logits.dtype())};
  dispatch_floating(logits.dtype(), __func__, [&]<class T>() {
    const T eps = static_cast<T>(eps_in);
    const std::int64_t* pt = targets.data<std::int64_t>();
    T* loss = r.loss.data<T>();
    T* mx = r.max.data<T>();
    T* ls = r.logsum.data<T>();
    for (std::int64_t n = 0; n < N; ++n) {
      const T* x = logits.data<T>() + n * V;
      const std::int64_t t = pt[n];
      if (t == ignore_index) {  // padding: weighted 0, and the backward skips the row too
        loss[n] = mx[n] = ls[n] = 0;
        continue;
      }
      assert(t >= 0 && t < V);
      const T m = row_max(x, V);
      const auto [se, sd] = exp_and_shift_sums(x, V, m, eps > 0);
      const T logsum = std::log(se);
      mx[n] = m;
      ls[n] = logsum;
      ++r.count;
      // NOTE: log p = (x - m) - logsum, not x - (m + logsum), which would round at the scale
      // of the largest logit.
      const T nll = -((x[t] - m) - logsum);
      // mean_j log p_j = sum_j (x_j - m) / V - logsum
      loss[n] = eps > 0 ? (1 - eps) * nll - eps * (sd / static_cast<T>(V) - logsum) : nll;
    }
  });
  return r;
}

Tensor cross_entropy_backward(const Tensor& logits_in, const Tensor& targets_in,
                              const Tensor& max_in, const Tensor& logsum_in, const Tensor& dloss_in,
                              double scale, std::int64_t ignore_index, double eps_in) {
  assert(inputs_fit(logits_in, targets_in));
  const Tensor logits = logits_in.contiguous(), targets = targets_in.contiguous();
  const Tensor mx = max_in.contiguous(), ls = logsum_in.contiguous(), dloss = dloss_in.contiguous();
  const std::int64_t N = logits.size(0), V = logits.size(1);
  assert(mx.numel() == N && ls.numel() == N && (dloss.numel() == N || dloss.numel() == 1));
  const std::int64_t dstride = dloss.numel() == 1 ? 0 : 1;
  Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype());
  dispatch_floating(logits.dtype(), __func__, [&]<class T>() {
    using B = simd::Batch<T>;
    constexpr std::int64_t W = B::size;
    const T eps = static_cast<T>(eps_in);
    const T uniform = eps / static_cast<T>(V);  // the smoothed target's mass on every class
    const std::int64_t* pt = targets.data<std::int64_t>();
    const T* pd = dloss.data<T>();
    for (std::int64_t n = 0; n < N; ++n) {
      const T* x = logits.data<T>() + n * V;
      T* dx = dlogits.data<T>() + n * V;
      const std::int64_t t = pt[n];
      if (t == ignore_index) {  // weighted 0 in the forward
        std::fill(dx, dx + V, T(0));
        continue;
      }
      // In the forward pass loss = (1 - eps) (-log p_t) - eps mean_j log p_j, and
      // d(-log p_t)/dx_j = p_j - [j == t], d(-mean_k log p_k)/dx_j = p_j - 1/V.
      const T c = static_cast<T>(scale) * pd[n * dstride];
      const T m = mx.data<T>()[n], logsum = ls.data<T>()[n];
      const B vm(m), vls(logsum), vc(c), vu(uniform);
      std::int64_t j = 0;
      for (; j + W <= V; j += W) {
        const B p = xsimd::exp((B::load_unaligned(x + j) - vm) - vls);
        (vc * (p - vu)).store_unaligned(dx + j);
      }
      for (; j < V; ++j) dx[j] = c * (std::exp((x[j] - m) - logsum) - uniform);
      dx[t] -= c * (1 - eps);
    }
  });
  return dlogits;
}

}  // namespace seqgrad
