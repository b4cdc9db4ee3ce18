#include "tensor/random.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <numbers>

namespace seqgrad {

namespace {
std::uint64_t rotl(std::uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}
}  // namespace

void Generator::manual_seed(std::uint64_t seed) {
  // splitmix64 spreads any seed (0 included) over the 256-bit state.
  std::uint64_t z = seed;
  for (auto& word : s_) {
    z += 0x9e3779b97f4a7c15ULL;
    std::uint64_t x = z;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    word = x ^ (x >> 31);
  }
  has_spare_ = false;
  spare_ = 0;
}

std::uint64_t Generator::next_u64() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

void Generator::fill_u64(std::uint64_t* out, std::int64_t n) {
  std::uint64_t s0 = s_[0], s1 = s_[1], s2 = s_[2], s3 = s_[3];
  for (std::int64_t i = 0; i < n; ++i) {  // next_u64, on locals
    out[i] = rotl(s1 * 5, 7) * 9;
    const std::uint64_t t = s1 << 17;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 45);
  }
  s_ = {s0, s1, s2, s3};
}

double Generator::next_double() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

double Generator::next_normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  const double u1 = 1.0 - next_double();  // (0, 1]: log is finite
  const double u2 = next_double();
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
  has_spare_ = true;
  return r * std::cos(2.0 * std::numbers::pi * u2);
}

std::array<std::uint64_t, 5> Generator::state() const {
  std::uint64_t spare_bits = 0;
  std::memcpy(&spare_bits, &spare_, sizeof spare_bits);
  // The fifth word holds the cached normal bit for bit, or ~0 (a NaN pattern Box-Muller never
  // yields) when there is none.
  return {s_[0], s_[1], s_[2], s_[3], has_spare_ ? spare_bits : ~0ULL};
}

void Generator::set_state(const std::array<std::uint64_t, 5>& s) {
  for (int i = 0; i < 4; ++i) s_[i] = s[i];
  has_spare_ = s[4] != ~0ULL;
  if (has_spare_) {
    std::memcpy(&spare_, &s[4], sizeof spare_);
  } else {
    spare_ = 0;
  }
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(std::uint64_t seed) {
  default_generator().manual_seed(seed);
}

Tensor uniform(const Shape& shape, double low, double high, DType dtype, Generator& gen) {
  if (!(low <= high)) {
    throw ValueError(fmt::format("uniform: low {} must not exceed high {}", low, high));
  }
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_floating(dtype, __func__, [&]<class T>() {
    T* p = t.data<T>();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      p[i] = static_cast<T>(low + (high - low) * gen.next_double());
    }
  });
  return t;
}

Tensor normal(const Shape& shape, double mean, double std, DType dtype, Generator& gen) {
  if (!(std >= 0)) throw ValueError(fmt::format("normal: std {} must be >= 0", std));
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_floating(dtype, __func__, [&]<class T>() {
    T* p = t.data<T>();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      p[i] = static_cast<T>(mean + std * gen.next_normal());
    }
  });
  return t;
}

namespace {

// f(i, keep_i) for i < n, keep_i = (gen.next_double() < p) from the same draws: with u a draw,
// next_double() is (u >> 11) * 2^-53, and (u >> 11) * 2^-53 < p exactly when (u >> 11) < p * 2^53
// (both sides scaled by a power of two, so nothing rounds).
template <class F>
void for_each_keep(std::int64_t n, double p, Generator& gen, F&& f) {
  constexpr std::int64_t kChunk = 512;
  std::array<std::uint64_t, kChunk> draws{};
  const double threshold = p * 0x1.0p53;
  for (std::int64_t first = 0; first < n; first += kChunk) {
    const std::int64_t m = std::min(kChunk, n - first);
    gen.fill_u64(draws.data(), m);
    for (std::int64_t j = 0; j < m; ++j) {
      f(first + j, static_cast<double>(draws[static_cast<std::size_t>(j)] >> 11) < threshold);
    }
  }
}

}  // namespace

Tensor bernoulli(const Shape& shape, double p, Generator& gen) {
  if (!(p >= 0 && p <= 1)) {
    throw ValueError(fmt::format("bernoulli: probability {} is outside [0, 1]", p));
  }
  Tensor t = Tensor::empty(shape, DType::boolean);
  auto* q = static_cast<std::uint8_t*>(t.raw_data());
  for_each_keep(t.numel(), p, gen, [q](std::int64_t i, bool keep) { q[i] = keep; });
  return t;
}

Tensor dropout_mask(const Shape& shape, double p, DType dtype, Generator& gen) {
  if (!(p >= 0 && p < 1)) {
    throw ValueError(fmt::format("dropout_mask: probability {} is outside [0, 1)", p));
  }
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_floating(dtype, __func__, [&]<class T>() {
    T* m = t.data<T>();
    const auto scale = static_cast<T>(1.0 / (1.0 - p));
    for_each_keep(t.numel(), 1.0 - p, gen,
                  [m, scale](std::int64_t i, bool keep) { m[i] = keep ? scale : T(0); });
  });
  return t;
}

}  // namespace seqgrad
