// Splitting work over threads: run_threads runs one function per thread, parallel_ranges splits a
// loop over independent items (the parameters of an optimizer update, say) into contiguous
// ranges of about equal cost. Each item is handled by exactly one thread, so a loop whose items
// do not touch each other gives the same result, bit for bit, at every thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace seqgrad {

// f(w) for w in [0, n) on n threads, w = 0 on the caller's (and any w whose thread could not be
// started). Returns when all have finished, then rethrows the exception of the lowest w that
// threw, if any.
void run_threads(int n, const std::function<void(int)>& f);

// f(begin, end) over ranges that together cover [0, costs.size()) once, on at most `threads`
// threads; the cuts balance the sum of costs[i] (e.g. element counts) per range, and when there is
// more than one range each costs something (items of no cost join a neighbour's range). With
// threads <= 1, or a total cost below min_cost (where starting threads costs more than it saves),
// f(0, costs.size()) runs on the caller's thread.
void parallel_ranges(std::span<const std::int64_t> costs, int threads,
                     const std::function<void(std::size_t, std::size_t)>& f,
                     std::int64_t min_cost = std::int64_t{1} << 16);

}  // namespace seqgrad
