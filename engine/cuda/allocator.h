// The caching CUDA allocator. cudaMalloc/cudaFree synchronise the device and cost tens of
// microseconds, so freed blocks are kept in size buckets and handed out again. All engine
// work runs on one stream (cuda::stream()), so a block freed by the host may be reused by
// the next op on that stream without waiting: stream order keeps the old work first.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vimoe::cuda {

struct MemoryStats {
  size_t allocated_bytes = 0;       // held by live tensors (rounded sizes)
  size_t reserved_bytes = 0;        // obtained from cudaMalloc, live + cached
  size_t peak_allocated_bytes = 0;  // max of allocated_bytes since the last reset
  size_t peak_reserved_bytes = 0;
  uint64_t num_allocs = 0;          // device_alloc calls
  uint64_t num_cache_hits = 0;      // served from the cache without cudaMalloc
  uint64_t num_device_mallocs = 0;  // cudaMalloc calls
};

// Throws vimoe::Error naming the request and the allocator's state when memory runs out
// even after the cache is released. Size 0 returns nullptr.
void* device_alloc(size_t nbytes, int device = 0);
void device_free(void* ptr);

MemoryStats memory_stats();
void reset_peak_stats();
// Returns every cached (unused) block to the driver.
void empty_cache();

// The size a request is rounded up to: 512 B granules below 1 MiB, 2 MiB above, so a
// cached block fits many nearby sizes without splitting.
size_t round_allocation(size_t nbytes);

}  // namespace vimoe::cuda
