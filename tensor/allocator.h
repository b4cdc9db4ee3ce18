// Memory for tensor storage. Blocks of 4 KiB and more are kept on free lists by size class when
// released and handed out again, so a training step that allocates the same shapes every time
// stops paying for mmap, munmap and the kernel's zeroing of fresh pages (first-touch faults were
// most of a large elementwise op's time). Smaller blocks go straight to malloc, which already
// recycles them. Thread-safe (one mutex); sanitizer builds bypass the cache so AddressSanitizer
// sees every use after free.
#pragma once

#include <cstddef>

namespace seqgrad {

// An aligned block of at least `nbytes` (64-byte alignment); throws RuntimeError when out of
// memory.
void* allocate_storage(std::size_t nbytes);
// Returns a block from allocate_storage of the same `nbytes`.
void release_storage(void* p, std::size_t nbytes) noexcept;

struct StorageCacheStats {
  std::size_t cached_bytes = 0;  // held on free lists now
  std::size_t hits = 0, misses = 0;
  std::size_t in_use = 0, peak_in_use = 0;  // bytes of cache-sized blocks handed out
};
StorageCacheStats storage_cache_stats();
// False in sanitizer builds, where every block goes straight back to the system.
bool storage_cache_enabled();
// Frees every cached block (the memory goes back to the system) and starts the peak in use over
// from what is in use now (the cap on cached bytes follows the new peak).
void storage_cache_clear();

}  // namespace seqgrad
