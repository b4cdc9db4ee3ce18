// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Integer sampling and shuffling on seqgrad::Generator. <random>'s uniform_int_distribution and
// std::shuffle are free to differ between standard libraries, so the generated tasks and the
// batch order would change from one machine to another; these are written out here instead.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/random.h"

namespace seqgrad {

// Uniform in [0, n), without modulo bias (rejection sampling). n must be positive.
std::uint64_t uniform_below(Generator& gen, std::uint64_t n);

// Uniform in [low, high], both included; ValueError when low > high.
std::int64_t uniform_int(Generator& gen, std::int64_t low, std::int64_t high);

// A seed for stream `stream` of `seed` (e.g. the train / valid / test splits, or one epoch),
// well mixed so that nearby seeds and streams give unrelated generators.
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream);

// Fisher-Yates, from the last element down.
template <class T>
void shuffle(std::vector<T>& values, Generator& gen) {
  for (std::size_t i = values.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(uniform_below(gen, i));
    using std::swap;
    swap(values[i - 1], values[j]);
  }
}

}  // namespace seqgrad
