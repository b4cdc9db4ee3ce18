// Implementation of dispatch_floating (kept apart so dtype.h reads as a list of facts).
#pragma once

#include <fmt/format.h>

namespace seqgrad {

template <class F>
decltype(auto) dispatch_floating(DType d, std::string_view op, F&& f) {
  switch (d) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    default:
      throw DTypeError(fmt::format("{}: expected a float32 or float64 tensor, got {}", op,
                                   dtype_name(d)));
  }
}

}  // namespace seqgrad

namespace seqgrad {

// Like dispatch_floating, for every dtype (bool maps to std::uint8_t storage).
template <class F>
decltype(auto) dispatch_all(DType d, F&& f) {
  switch (d) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::i64: return f.template operator()<std::int64_t>();
    case DType::boolean: break;
  }
  return f.template operator()<std::uint8_t>();
}

}  // namespace seqgrad
