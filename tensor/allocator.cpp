// The storage cache: size classes of four steps per power of two (at most 25% slack), a free
// list per class, and two caps on what the lists may hold: 2 GiB, and what keeps the blocks in
// use plus the cached ones within 1.25x the most ever in use at once. Without the second, a
// phase that allocates other sizes (decoding after training) would add its own peak on top of
// the cached blocks of the first.
#include "tensor/allocator.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/errors.h"

namespace seqgrad {

namespace {

constexpr std::size_t kAlignment = 64;              // a cache line; enough for any SIMD load
constexpr std::size_t kSmall = 4096;                // below this, malloc's own bins are as good
constexpr std::size_t kCap = std::size_t{2} << 30;  // cached bytes at most (2 GiB)

#if defined(SEQGRAD_NO_STORAGE_CACHE)
constexpr bool kCacheOn = false;
#else
constexpr bool kCacheOn = true;
#endif

// The size a block of nbytes is allocated at: 2^e, 1.25 * 2^e, 1.5 * 2^e or 1.75 * 2^e.
std::size_t size_class(std::size_t nbytes) {
  const int e = std::bit_width(nbytes - 1) - 1;  // 2^e < nbytes <= 2^(e+1)
  const std::size_t step = std::size_t{1} << (e - 2);
  return (nbytes + step - 1) / step * step;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<std::size_t, std::vector<void*>> free;  // by size class
  StorageCacheStats stats;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: storages may be freed during static teardown
  return *c;
}

void* raw_alloc(std::size_t bytes) {
  const std::size_t rounded =
      std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) {
    throw RuntimeError(fmt::format("Storage: out of memory allocating {} bytes", bytes));
  }
  return p;
}

// Frees cached blocks until in-use plus cached bytes, with `incoming` more about to be used, fit
// 1.25x the peak in use. Called with the lock held, on a miss.
void trim_locked(Cache& c, std::size_t incoming) {
  c.stats.peak_in_use = std::max(c.stats.peak_in_use, c.stats.in_use + incoming);
  const std::size_t limit = c.stats.peak_in_use + c.stats.peak_in_use / 4;
  for (auto& [cls, blocks] : c.free) {
    while (!blocks.empty() && c.stats.in_use + incoming + c.stats.cached_bytes > limit) {
      std::free(blocks.back());
      blocks.pop_back();
      c.stats.cached_bytes -= cls;
    }
  }
}

}  // namespace

void* allocate_storage(std::size_t nbytes) {
  if (!kCacheOn || nbytes < kSmall) return raw_alloc(nbytes);
  const std::size_t cls = size_class(nbytes);
  Cache& c = cache();
  {
    std::lock_guard lock(c.mu);
    auto it = c.free.find(cls);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.cached_bytes -= cls;
      c.stats.in_use += cls;
      ++c.stats.hits;
      return p;
    }
    ++c.stats.misses;
    trim_locked(c, cls);
  }
  void* p = raw_alloc(cls);
  std::lock_guard lock(c.mu);
  c.stats.in_use += cls;
  return p;
}

void release_storage(void* p, std::size_t nbytes) noexcept {
  if (p == nullptr) return;
  if (!kCacheOn || nbytes < kSmall) {
    std::free(p);
    return;
  }
  const std::size_t cls = size_class(nbytes);
  Cache& c = cache();
  {
    std::lock_guard lock(c.mu);
    c.stats.in_use -= cls;
    if (c.stats.cached_bytes + cls <= kCap) {
      try {
        c.free[cls].push_back(p);
        c.stats.cached_bytes += cls;
        return;
      } catch (...) {  // no memory for the list itself: free the block instead
      }
    }
  }
  std::free(p);
}

StorageCacheStats storage_cache_stats() {
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  return c.stats;
}

bool storage_cache_enabled() {
  return kCacheOn;
}

void storage_cache_clear() {
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  for (auto& [cls, blocks] : c.free) {
    for (void* p : blocks) std::free(p);
    blocks.clear();
  }
  c.stats.cached_bytes = 0;
  c.stats.peak_in_use = c.stats.in_use;  // the cap's reference starts over
}

}  // namespace seqgrad
