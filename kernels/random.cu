#include "kernels/dispatch.cuh"
#include "kernels/random.h"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;

// Every kernel is a grid-stride loop over the logical (row-major) index i, which is also the
// Philox counter: the values do not depend on the launch shape.

template <typename T>
__global__ void uniform_kernel(T* __restrict__ base, StridedLayout layout, int64_t n,
                               uint64_t seed, uint64_t offset, double lo, double hi,
                               T below_hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    T v = from_double<T>(uniform_value(seed, offset, static_cast<uint64_t>(i), lo, hi));
    if (to_double(v) >= hi) v = below_hi;
    base[strided_offset(layout, i)] = v;
  }
}

template <typename T>
__global__ void normal_kernel(T* __restrict__ base, StridedLayout layout, int64_t n,
                              uint64_t seed, uint64_t offset, double mean, double std) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    base[strided_offset(layout, i)] =
        from_double<T>(normal_value(seed, offset, static_cast<uint64_t>(i), mean, std));
}

template <typename T>
__global__ void trunc_normal_kernel(T* __restrict__ base, StridedLayout layout, int64_t n,
                                    uint64_t seed, uint64_t offset, TruncNormalParams params) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    base[strided_offset(layout, i)] =
        from_double<T>(trunc_normal_value(seed, offset, static_cast<uint64_t>(i), params));
}

template <typename T>
__global__ void dropout_kernel(const T* __restrict__ x, StridedLayout lx, T* __restrict__ out,
                               int64_t n, int64_t group, uint64_t seed, uint32_t threshold,
                               acc_t<T> scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t counter = static_cast<uint64_t>(group == 1 ? i : i / group);
    // A dropped element is an exact zero, even where x is inf or NaN.
    if (dropout_keep(seed, counter, threshold))
      store_acc(out + i, load_acc(x + strided_offset(lx, i)) * scale);
    else
      store_acc(out + i, acc_t<T>(0));
  }
}

}  // namespace

cudaError_t fill_uniform(DType dtype, void* base, const StridedLayout& layout, int64_t n,
                         uint64_t seed, uint64_t offset, double lo, double hi, double below_hi,
                         cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    uniform_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(
        static_cast<scalar_t*>(base), layout, n, seed, offset, lo, hi,
        from_double<scalar_t>(below_hi));
  });
  return cudaGetLastError();
}

cudaError_t fill_normal(DType dtype, void* base, const StridedLayout& layout, int64_t n,
                        uint64_t seed, uint64_t offset, double mean, double std,
                        cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    normal_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<scalar_t*>(base),
                                                              layout, n, seed, offset, mean, std);
  });
  return cudaGetLastError();
}

cudaError_t fill_trunc_normal(DType dtype, void* base, const StridedLayout& layout, int64_t n,
                              uint64_t seed, uint64_t offset, const TruncNormalParams& params,
                              cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    trunc_normal_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(
        static_cast<scalar_t*>(base), layout, n, seed, offset, params);
  });
  return cudaGetLastError();
}

cudaError_t dropout_apply(DType dtype, const void* x, const StridedLayout& lx, void* out,
                          int64_t n, int64_t group, uint64_t seed, uint32_t threshold,
                          double scale, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (group < 1) return cudaErrorInvalidValue;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    dropout_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(
        static_cast<const scalar_t*>(x), lx, static_cast<scalar_t*>(out), n, group, seed,
        threshold, static_cast<acc_t<scalar_t>>(scale));
  });
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
