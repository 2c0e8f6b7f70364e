// Process-wide tuning of the C library's allocator for this workload, called once by the
// programs (vimoe-train, vimoe-eval, vimoe-bench) at start-up, not by the library itself.
//
// glibc serves every block of 128 KB and more (dynamically up to 32 MB) with its own mmap and
// returns it with munmap on free, and trims freed memory at the top of the heap back to the
// system. A training process frees and reallocates the same large buffers over and over
// (decoded images and their float copies in the loader, activations on the CPU backend), so
// each reuse paid for fresh pages: zeroing and one page fault per 4 KB. Keeping large blocks
// in the heap and the heap mapped removes that cost (the loader decodes and augments about
// 1.8x more images per second per worker at 224x224).
#pragma once

namespace vimoe::cpu {

// With glibc: blocks up to 32 MB come from the heap, and up to 256 MB of free heap stay
// mapped. Nothing changes when the user tuned malloc through the environment (user_tuned()),
// or without glibc. Returns whether it applied.
bool tune_host_allocator();

// Whether MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or a glibc.malloc.* entry of
// GLIBC_TUNABLES is set.
bool user_tuned();

}  // namespace vimoe::cpu
