// Element types. float32 trains, float64 checks gradients, int64 holds token ids and indices,
// boolean (one byte a value) holds masks from comparisons.
#pragma once

#include <cstdint>
#include <string_view>

#include "tensor/errors.h"

namespace seqgrad {

enum class DType : std::uint8_t { f32, f64, i64, boolean };

constexpr std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::i64:
      return 8;
    case DType::boolean:
      return 1;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i64:
      return "int64";
    case DType::boolean:
      return "bool";
  }
  return "?";
}

constexpr bool is_floating(DType d) {
  return d == DType::f32 || d == DType::f64;
}

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::i64;
}
template <>
constexpr DType dtype_of<bool>() {
  return DType::boolean;
}

// Calls f.template operator()<T>() with T the C++ type of a floating dtype; `op` names the caller
// in the error for any other dtype.
template <class F>
decltype(auto) dispatch_floating(DType d, std::string_view op, F&& f);

}  // namespace seqgrad

#include "tensor/dtype_dispatch.h"
