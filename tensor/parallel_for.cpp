#include "tensor/parallel_for.h"

#include <exception>
#include <numeric>
#include <system_error>
#include <thread>
#include <vector>

namespace seqgrad {

void run_threads(int n, const std::function<void(int)>& f) {
  if (n <= 1) {
    f(0);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  auto guarded = [&](int w) {
    try {
      f(w);
    } catch (...) {
      errors[static_cast<std::size_t>(w)] = std::current_exception();
    }
  };
  {
    std::vector<std::jthread> threads;
    int started = 1;
    try {
      for (; started < n; ++started) threads.emplace_back(guarded, started);
    } catch (const std::system_error&) {
      // No thread to be had: the caller runs the rest, so every f(w) still runs once.
    }
    guarded(0);
    for (int w = started; w < n; ++w) guarded(w);
  }  // the jthreads join here
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

void parallel_ranges(std::span<const std::int64_t> costs, int threads,
                     const std::function<void(std::size_t, std::size_t)>& f,
                     std::int64_t min_cost) {
  const std::size_t n = costs.size();
  const std::int64_t total = std::accumulate(costs.begin(), costs.end(), std::int64_t{0});
  if (threads <= 1 || n <= 1 || total < min_cost) {
    f(0, n);
    return;
  }
  // Range r ends at the first item where the running cost reaches (r + 1) / threads of the total.
  // A range costs something: items of no cost join the range before them (or the first range).
  std::vector<std::size_t> cuts{0};
  std::int64_t running = 0;
  std::int64_t at_last_cut = 0;
  for (std::size_t i = 0; i < n && static_cast<int>(cuts.size()) < threads; ++i) {
    running += costs[i];
    const auto r = static_cast<std::int64_t>(cuts.size());
    if (running > at_last_cut && running * threads >= r * total) {
      cuts.push_back(i + 1);
      at_last_cut = running;
    }
  }
  if (cuts.size() > 1 && at_last_cut == total) {
    cuts.back() = n;
  } else if (cuts.back() != n) {
    cuts.push_back(n);
  }
  const int ranges = static_cast<int>(cuts.size()) - 1;
  run_threads(ranges, [&](int r) {  // cuts rise strictly: at most one per item
    const auto w = static_cast<std::size_t>(r);
    f(cuts[w], cuts[w + 1]);
  });
}

}  // namespace seqgrad
