// Implementation of dispatch_floating (kept apart so dtype.h reads as a list of facts).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <type_traits>

namespace seqgrad {

template <class F>
decltype(auto) dispatch_floating(DType d, std::string_view op, F&& f) {
  switch (d) {
    case DType::f32:
      return f.template operator()<float>();
    case DType::f64:
      return f.template operator()<double>();
    default:
      throw DTypeError(
          fmt::format("{}: expected a float32 or float64 tensor, got {}", op, dtype_name(d)));
  }
}

}  // namespace seqgrad

namespace seqgrad {

// Converts v to the storage type T of a dispatch_all branch. bool storage (std::uint8_t) holds
// 1 for any nonzero v, as a C++ bool conversion would: a plain cast turns 0.5 into 0 (false) and
// is undefined for negative values.
template <class T, class S>
constexpr T convert_to(S v) {
  if constexpr (std::is_same_v<T, std::uint8_t>) {
    return v != S(0);
  } else {
    return static_cast<T>(v);
  }
}

// Like dispatch_floating, for every dtype (bool maps to std::uint8_t storage).
template <class F>
decltype(auto) dispatch_all(DType d, F&& f) {
  switch (d) {
    case DType::f32:
      return f.template operator()<float>();
    case DType::f64:
      return f.template operator()<double>();
    case DType::i64:
      return f.template operator()<std::int64_t>();
    case DType::boolean:
      break;
  }
  return f.template operator()<std::uint8_t>();
}

}  // namespace seqgrad
