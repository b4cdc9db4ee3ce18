// What the libFuzzer harnesses share. A loader of untrusted bytes may refuse its input only with
// the exceptions it documents (the std::invalid_argument and std::runtime_error families, and
// nlohmann::json::exception for JSON it was handed); those are the expected end of most fuzz
// inputs and are swallowed here. Anything else escaping (std::out_of_range, std::bad_alloc, a
// stray std::logic_error) reaches libFuzzer as an uncaught exception, which it reports as a
// crash with the input that caused it, as it does sanitizer reports and FUZZ_CHECK failures.
//
// To add a harness: write tests/fuzz/fuzz_<name>.cpp defining LLVMFuzzerTestOneInput, add
// <name> to seqgrad_fuzz_harnesses in the root CMakeLists.txt and a few small real inputs to
// tests/fuzz/corpus/<name>/; scripts/fuzz then builds and runs it.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>

namespace seqgrad::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

template <class Fn>
void expect_typed_errors(Fn&& fn) {
  try {
    fn();
  } catch (const std::invalid_argument&) {
  } catch (const std::runtime_error&) {
  } catch (const nlohmann::json::exception&) {
  }
}

[[noreturn]] inline void check_failed(const char* file, int line, const char* what) {
  fmt::print(stderr, "{}:{}: FUZZ_CHECK({}) failed\n", file, line, what);
  std::abort();
}

}  // namespace seqgrad::fuzz

// A documented property of a successful load does not hold: abort, so libFuzzer keeps the input.
#define FUZZ_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::seqgrad::fuzz::check_failed(__FILE__, __LINE__, #cond))
