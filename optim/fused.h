// Internal to optim/: one loop for the fused per-element update rules. An update touches three or
// four buffers per element (parameter, gradient, one or two moments); doing it in a single pass
// reads each once and allocates nothing, where a chain of tensor ops would make temporaries.
//
// The body is a generic lambda over the value type V (an xsimd batch for the dense part, the
// scalar T for the tail), so each rule is written once; load/store/vsqrt hide the difference.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "tensor/simd.h"

namespace seqgrad::optim_detail {

template <class V, class T>
inline V load(const T* p) {
  if constexpr (std::is_same_v<V, T>) {
    return *p;
  } else {
    return V::load_unaligned(p);
  }
}

template <class V, class T>
inline void store(T* p, const V& v) {
  if constexpr (std::is_same_v<V, T>) {
    *p = v;
  } else {
    v.store_unaligned(p);
  }
}

template <class V>
inline V vsqrt(const V& v) {
  if constexpr (std::is_arithmetic_v<V>) {
    return std::sqrt(v);
  } else {
    return xsimd::sqrt(v);
  }
}

// Calls body.template operator()<V>(i) for V = Batch<T> over whole batches, then V = T for the
// tail; `i` is the first element the call handles.
template <class T, class Body>
inline void fused_loop(std::int64_t n, const Body& body) {
  using B = simd::Batch<T>;
  constexpr std::int64_t W = B::size;
  std::int64_t i = 0;
  for (; i + W <= n; i += W) body.template operator()<B>(i);
  for (; i < n; ++i) body.template operator()<T>(i);
}

}  // namespace seqgrad::optim_detail
