// Shared SIMD row kernels. An op is a functor whose call operator is a template, so the same
// body runs on an xsimd batch (the dense part of a row) and on a scalar (tail and strided rows).
#pragma once

#include <cstdint>
#include <type_traits>
#include <xsimd/xsimd.hpp>

namespace seqgrad::simd {

template <class T>
using Batch = xsimd::batch<T>;

template <class V>
struct ScalarOf {
  using type = typename V::value_type;
};
template <class V>
requires std::is_arithmetic_v<V>
struct ScalarOf<V> {
  using type = V;
};
template <class V>
using scalar_of = typename ScalarOf<V>::type;

// 1 / (1 + e^-x) on a batch or a scalar: for very negative x, e^-x is +inf and the result a
// clean 0.
template <class V>
inline V sigmoid(V x) {
  return V(1) / (V(1) + xsimd::exp(-x));
}

// Loads W lanes (a batch) or one value (a scalar) from p. Not named load/store: for a batch
// argument, lookup would also find xsimd::store, which requires aligned memory.
template <class V, class T>
inline V get(const T* p) {
  if constexpr (std::is_arithmetic_v<V>) {
    return *p;
  } else {
    return V::load_unaligned(p);
  }
}
template <class V, class T>
inline void put(T* p, V v) {
  if constexpr (std::is_arithmetic_v<V>) {
    *p = v;
  } else {
    v.store_unaligned(p);
  }
}

// Calls body.template operator()<V>(j) for j = 0, W, 2W, ... < n on batches, then on scalars
// for the tail: one templated body serves both.
template <class T, class Body>
inline void for_each_column(std::int64_t n, const Body& body) {
  constexpr std::int64_t W = Batch<T>::size;
  std::int64_t j = 0;
  for (; j + W <= n; j += W) body.template operator()<Batch<T>>(j);
  for (; j < n; ++j) body.template operator()<T>(j);
}

// y[i] = op(x[i * sx]) for i < n; y is dense.
template <class T, class Op>
inline void unary_row(const T* x, std::int64_t sx, T* y, std::int64_t n, const Op& op) {
  constexpr std::int64_t W = Batch<T>::size;
  std::int64_t i = 0;
  if (sx == 1) {
    for (; i + W <= n; i += W) op(Batch<T>::load_unaligned(x + i)).store_unaligned(y + i);
  }
  for (; i < n; ++i) y[i] = op(x[i * sx]);
}

// y[i] = op(a[i * sa], b[i * sb]) for i < n; y is dense. A stride of 0 is a broadcast scalar.
template <class T, class Op>
inline void binary_row(const T* a, std::int64_t sa, const T* b, std::int64_t sb, T* y,
                       std::int64_t n, const Op& op) {
  using B = Batch<T>;
  constexpr std::int64_t W = B::size;
  std::int64_t i = 0;
  if (sa == 1 && sb == 1) {
    for (; i + W <= n; i += W) {
      op(B::load_unaligned(a + i), B::load_unaligned(b + i)).store_unaligned(y + i);
    }
  } else if (sa == 0 && sb == 1) {
    const B va(a[0]);
    for (; i + W <= n; i += W) op(va, B::load_unaligned(b + i)).store_unaligned(y + i);
  } else if (sa == 1 && sb == 0) {
    const B vb(b[0]);
    for (; i + W <= n; i += W) op(B::load_unaligned(a + i), vb).store_unaligned(y + i);
  }
  for (; i < n; ++i) y[i] = op(a[i * sa], b[i * sb]);
}

// Sum of x[i * sx] for i < n, with SIMD lanes as partial sums when dense.
template <class T>
inline T sum_row(const T* x, std::int64_t sx, std::int64_t n) {
  using B = Batch<T>;
  constexpr std::int64_t W = B::size;
  std::int64_t i = 0;
  T total = 0;
  if (sx == 1 && n >= W) {
    B acc(T(0));
    for (; i + W <= n; i += W) acc += B::load_unaligned(x + i);
    total = xsimd::hadd(acc);
  }
  for (; i < n; ++i) total += x[i * sx];
  return total;
}

}  // namespace seqgrad::simd
