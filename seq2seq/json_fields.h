// Integer fields of a configuration's JSON, read strictly. nlohmann's get<std::int64_t>() of a
// number that does not fit (1e300, or an integer literal too long for 64 bits, which it parses
// as a float) is undefined behaviour, and of 2^64 - 1 wraps to -1: both were found by
// tests/fuzz/fuzz_run_config.cpp. A field takes a JSON integer in range, else ValueError.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>

#include "tensor/errors.h"

namespace seqgrad {

inline std::int64_t json_integer(const nlohmann::json& v, std::string_view key,
                                 std::int64_t lo = std::numeric_limits<std::int64_t>::min(),
                                 std::int64_t hi = std::numeric_limits<std::int64_t>::max()) {
  auto refuse = [&] {
    std::string text = v.dump();
    if (text.size() > 40) text = text.substr(0, 40) + "...";
    return ValueError(
        fmt::format("'{}' must be an integer in [{}, {}], not {}", key, lo, hi, text));
  };
  std::int64_t n = 0;
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(hi)) throw refuse();
    n = static_cast<std::int64_t>(u);
  } else if (v.is_number_integer()) {
    n = v.get<std::int64_t>();
  } else {
    throw refuse();
  }
  if (n < lo || n > hi) throw refuse();
  return n;
}

}  // namespace seqgrad
