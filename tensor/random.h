// A seeded random generator whose streams are identical on every machine and compiler: the
// bits come from xoshiro256** (seeded through splitmix64), and uniform/normal are computed from
// them here rather than by <random>'s distributions, whose outputs the standard leaves free.
#pragma once

#include <array>
#include <cstdint>

#include "tensor/tensor.h"

namespace seqgrad {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) { manual_seed(seed); }
  void manual_seed(std::uint64_t seed);
  std::uint64_t next_u64();
  // n draws of next_u64 into out, the state kept in registers meanwhile (the same numbers).
  void fill_u64(std::uint64_t* out, std::int64_t n);
  double next_double();  // uniform in [0, 1) with 53 random bits
  double next_normal();  // standard normal (Box-Muller; the second value is cached)
  // The whole state, for checkpoints; set_state restores it exactly.
  std::array<std::uint64_t, 5> state() const;
  void set_state(const std::array<std::uint64_t, 5>& s);

 private:
  std::array<std::uint64_t, 4> s_{};
  bool has_spare_ = false;
  double spare_ = 0;
};

// The process-wide generator used when none is passed.
Generator& default_generator();
void manual_seed(std::uint64_t seed);

Tensor uniform(const Shape& shape, double low, double high, DType dtype = DType::f32,
               Generator& gen = default_generator());
Tensor normal(const Shape& shape, double mean, double std, DType dtype = DType::f32,
              Generator& gen = default_generator());
// Boolean mask: true with probability p.
Tensor bernoulli(const Shape& shape, double p, Generator& gen = default_generator());
// Inverted dropout's mask in `dtype`: 1 / (1 - p) where bernoulli(shape, 1 - p, gen) would be
// true, else 0 (the same draws), in one pass.
Tensor dropout_mask(const Shape& shape, double p, DType dtype,
                    Generator& gen = default_generator());

}  // namespace seqgrad
