// Median-of-repeats timing for the benchmarks. Machines are noisy (other jobs, frequency steps,
// page-cache state), so every figure runs a few warm-up calls first and then reports the median
// of the timed repeats, with min and max to show the spread. Candidates that are compared with
// each other are timed interleaved (a, b, a, b, ...) so a slow phase of the machine hits both
// sides of a ratio rather than only one.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <vector>

namespace seqgrad::bench {

struct Timing {
  double median = 0;  // seconds per call
  double min = 0;
  double max = 0;
};

// Makes the optimizer assume `p` (and the memory behind it) is read, so a copy into a buffer
// that is freed right after is not removed as dead code.
inline void escape(const void* p) {
  asm volatile("" : : "g"(p) : "memory");
}

inline double now_seconds() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

inline Timing summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const std::size_t n = samples.size();
  const double median = n % 2 == 1 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
  return Timing{median, samples.front(), samples.back()};
}

// Times each function `reps` times after `warmup` untimed calls, interleaving the functions.
// One sample runs a function `inner` times back to back (for calls too short to time alone) and
// counts as its mean.
inline std::vector<Timing> time_interleaved(int warmup, int reps, int inner,
                                            const std::vector<std::function<void()>>& fns) {
  for (int w = 0; w < warmup; ++w) {
    for (const auto& f : fns) f();
  }
  std::vector<std::vector<double>> samples(fns.size());
  for (int r = 0; r < reps; ++r) {
    for (std::size_t i = 0; i < fns.size(); ++i) {
      const double t0 = now_seconds();
      for (int k = 0; k < inner; ++k) fns[i]();
      samples[i].push_back((now_seconds() - t0) / inner);
    }
  }
  std::vector<Timing> out;
  for (auto& s : samples) out.push_back(summarize(std::move(s)));
  return out;
}

}  // namespace seqgrad::bench
