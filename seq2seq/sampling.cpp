// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Integer sampling and shuffling on seqgrad::Generator (see sampling.h for why not <random>).
#include "seq2seq/sampling.h"

#include <fmt/format.h>

#include <cassert>

#include "tensor/errors.h"

namespace seqgrad {

std::uint64_t uniform_below(Generator& gen, std::uint64_t n) {
  assert(n > 0);
  // Values below `threshold` (= 2^64 mod n) would make the low residues a little more likely;
  // drawing again when one comes up leaves every residue exactly equally likely.
  const std::uint64_t threshold = (0 - n) % n;
  while (true) {
    const std::uint64_t r = gen.next_u64();
    if (r >= threshold) return r % n;
  }
}

std::int64_t uniform_int(Generator& gen, std::int64_t low, std::int64_t high) {
  if (low > high) {
    throw ValueError(fmt::format("uniform_int: empty range [{}, {}]", low, high));
  }
  const std::uint64_t span = static_cast<std::uint64_t>(high) - static_cast<std::uint64_t>(low) + 1;
  if (span == 0) return static_cast<std::int64_t>(gen.next_u64());  // the full 64-bit range
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(low) + uniform_below(gen, span));
}

std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) {
  // Two rounds of splitmix64's finalizer: mixing the stream before it meets the seed keeps
  // (seed, stream) pairs from colliding the way seed + stream would.
  const auto mix = [](std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return mix(seed ^ mix(stream));
}

}  // namespace seqgrad
