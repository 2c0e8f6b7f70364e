#include "engine/cuda/allocator.h"

#include <map>
#include <mutex>
#include <unordered_map>

#include "engine/cuda/runtime.h"
#include "engine/error.h"

namespace vimoe::cuda {

size_t round_allocation(size_t nbytes) {
  constexpr size_t kSmall = 512, kLarge = 2u << 20, kSmallLimit = 1u << 20;
  if (nbytes <= kSmallLimit) return (nbytes + kSmall - 1) / kSmall * kSmall;
  return (nbytes + kLarge - 1) / kLarge * kLarge;
}

#ifdef VIMOE_WITH_CUDA

namespace {

class CachingAllocator {
 public:
  void* allocate(size_t nbytes, int device) {
    if (nbytes == 0) return nullptr;
    VIMOE_CHECK(is_available(), "CUDA tensor requested: ", unavailable_reason());
    VIMOE_CHECK(device >= 0 && device < device_count(), "CUDA device ", device,
                " requested, ", device_count(), " available");
    const size_t size = round_allocation(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.num_allocs;
    // Best fit among cached blocks, but never more than twice the request: a huge block
    // must not be pinned down by a small tensor.
    auto it = free_.lower_bound(size);
    if (it != free_.end() && it->first <= 2 * size) {
      void* p = it->second;
      const size_t got = it->first;
      free_.erase(it);
      live_[p] = got;
      ++stats_.num_cache_hits;
      note_alloc(got);
      return p;
    }
    VIMOE_CUDA_CHECK(cudaSetDevice(device));
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached();
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      VIMOE_FAIL("CUDA out of memory: requested ", nbytes, " bytes (", size, " rounded); ",
                 stats_.allocated_bytes, " bytes allocated by live tensors, ",
                 stats_.reserved_bytes, " reserved (", cudaGetErrorString(err), ")");
    }
    ++stats_.num_device_mallocs;
    stats_.reserved_bytes += size;
    if (stats_.reserved_bytes > stats_.peak_reserved_bytes)
      stats_.peak_reserved_bytes = stats_.reserved_bytes;
    live_[p] = size;
    note_alloc(size);
    return p;
  }

  void release(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: a bug elsewhere; never free twice
    stats_.allocated_bytes -= it->second;
    free_.emplace(it->second, p);
    live_.erase(it);
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached();
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void reset_peaks() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
    stats_.peak_reserved_bytes = stats_.reserved_bytes;
  }

 private:
  void note_alloc(size_t size) {
    stats_.allocated_bytes += size;
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes)
      stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }
  // Caller holds mu_. Waits for queued work so no kernel still uses a block being freed.
  void release_cached() {
    if (free_.empty()) return;
    cudaStreamSynchronize(stream());
    for (auto& [size, p] : free_) {
      cudaFree(p);
      stats_.reserved_bytes -= size;
    }
    free_.clear();
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> live_;
  MemoryStats stats_;
};

// Intentionally leaked: tensors with static lifetime may be freed after main returns,
// when a destroyed allocator (or a torn-down CUDA context) would crash the exit path.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

void* device_alloc(size_t nbytes, int device) { return allocator().allocate(nbytes, device); }
void device_free(void* ptr) { allocator().release(ptr); }
MemoryStats memory_stats() { return allocator().stats(); }
void reset_peak_stats() { allocator().reset_peaks(); }
void empty_cache() { allocator().empty(); }

#else  // CPU-only build

void* device_alloc(size_t, int) { VIMOE_FAIL("CUDA tensor requested: ", unavailable_reason()); }
void device_free(void*) {}
MemoryStats memory_stats() { return {}; }
void reset_peak_stats() {}
void empty_cache() {}

#endif

}  // namespace vimoe::cuda
