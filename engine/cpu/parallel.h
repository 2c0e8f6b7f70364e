// A small persistent thread pool for the CPU reference ops.
//
// parallel_for(begin, end, grain, fn) splits [begin, end) into contiguous chunks of at least
// `grain` indices and runs fn(chunk_begin, chunk_end) on them concurrently, the calling thread
// taking part; it returns when every chunk is done and rethrows the first exception a chunk
// threw. Ranges of at most `grain` indices, a pool of one thread, and calls made from inside
// a parallel_for (nested) or while another thread is using the pool run fn(begin, end) on the
// calling thread. No thread is created per call.
//
// Determinism: callers split only independent outputs (rows, elements) across chunks and
// never a floating-point sum, so a result does not depend on the number of threads or on
// where the chunk boundaries fall.
//
// The pool has num_threads() - 1 workers: hardware_concurrency by default, or
// VIMOE_CPU_THREADS when set (read once, on first use). It is the CPU backend's only source
// of parallelism: the GEMMs run on it too (cpu::gemm keeps OpenBLAS single-threaded), so two
// pools never compete for the cores.
#pragma once
#include <cstdint>
#include <functional>

namespace vimoe::cpu {

// Threads a parallel_for may use, the caller included (>= 1).
int num_threads();
// Resizes the pool (n >= 1). Must not be called while a parallel_for is running.
void set_num_threads(int n);
// True on a pool worker, or on a thread that is inside a parallel_for.
bool in_parallel_region();

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

// A grain for loops whose per-index cost is about `work` simple operations: chunks of
// roughly 32k operations, below which handing work to another thread costs more than it saves.
inline int64_t grain_for(int64_t work) {
  constexpr int64_t kChunkWork = 1 << 15;
  return work >= kChunkWork ? 1 : kChunkWork / (work > 0 ? work : 1);
}

}  // namespace vimoe::cpu
