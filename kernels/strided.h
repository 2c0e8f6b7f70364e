// A plain description of a strided tensor, small enough to pass to a kernel by value.
// Offsets are in elements. Kernels that accept arbitrary views (broadcast inputs,
// permuted operands) map a linear output index to an input offset with it.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define VIMOE_HOST_DEVICE __host__ __device__
#else
#define VIMOE_HOST_DEVICE
#endif

namespace vimoe::kernels {

constexpr int kMaxDims = 8;

struct StridedLayout {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  int64_t offset = 0;
};

// Element offset of the `linear`-th element in row-major order of `sizes`.
VIMOE_HOST_DEVICE inline int64_t strided_offset(const StridedLayout& l, int64_t linear) {
  int64_t off = l.offset;
  for (int d = l.ndim - 1; d >= 0; --d) {
    const int64_t size = l.sizes[d];
    off += (linear % size) * l.strides[d];
    linear /= size;
  }
  return off;
}

}  // namespace vimoe::kernels
