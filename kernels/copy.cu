#include "kernels/copy.h"
#include "kernels/dispatch.cuh"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;

template <typename S, typename D>
__global__ void copy_kernel(const S* __restrict__ src, StridedLayout sl, D* __restrict__ dst,
                            StridedLayout dl, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    dst[strided_offset(dl, i)] = convert<D>(src[strided_offset(sl, i)]);
  }
}

// Same dtype, both contiguous: a plain vectorisable copy.
template <typename T>
__global__ void copy_contiguous_kernel(const T* __restrict__ src, T* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

template <typename T>
__global__ void fill_kernel(T* dst, StridedLayout dl, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[strided_offset(dl, i)] = value;
}

bool is_dense(const StridedLayout& l) {
  int64_t expect = 1;
  for (int d = l.ndim - 1; d >= 0; --d) {
    if (l.sizes[d] != 1 && l.strides[d] != expect) return false;
    expect *= l.sizes[d];
  }
  return true;
}

}  // namespace

cudaError_t copy_strided(const void* src, DType src_dtype, const StridedLayout& src_layout,
                         void* dst, DType dst_dtype, const StridedLayout& dst_layout, int64_t n,
                         cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const unsigned grid = grid_for(n, kBlock);
  if (src_dtype == dst_dtype && is_dense(src_layout) && is_dense(dst_layout)) {
    VIMOE_KERNEL_DISPATCH(src_dtype, {
      copy_contiguous_kernel<<<grid, kBlock, 0, stream>>>(
          static_cast<const scalar_t*>(src) + src_layout.offset,
          static_cast<scalar_t*>(dst) + dst_layout.offset, n);
    });
    return cudaGetLastError();
  }
  VIMOE_KERNEL_DISPATCH(src_dtype, {
    using S = scalar_t;
    VIMOE_KERNEL_DISPATCH(dst_dtype, {
      copy_kernel<<<grid, kBlock, 0, stream>>>(static_cast<const S*>(src), src_layout,
                                               static_cast<scalar_t*>(dst), dst_layout, n);
    });
  });
  return cudaGetLastError();
}

cudaError_t fill(void* dst, DType dtype, const StridedLayout& dst_layout, int64_t n, double value,
                 cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH(dtype, {
    const scalar_t v = from_double<scalar_t>(value);
    fill_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<scalar_t*>(dst),
                                                            dst_layout, n, v);
  });
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
