#include "kernels/dispatch.cuh"
#include "kernels/reduce.h"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;

template <typename T> struct SumAcc { using type = acc_t<T>; };
template <> struct SumAcc<int32_t> { using type = int64_t; };
template <> struct SumAcc<uint8_t> { using type = int64_t; };

template <typename A>
__device__ A block_sum(A v) {
  __shared__ A warp_part[kBlock / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_part[warp] = v;
  __syncthreads();
  v = threadIdx.x < kBlock / 32 ? warp_part[threadIdx.x] : A(0);
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// One block per row; blocks stride over rows when there are more than the grid holds.
template <typename T, typename O>
__global__ void sum_rows_kernel(const T* __restrict__ in, O* __restrict__ out, int64_t rows,
                                int64_t cols) {
  using A = typename SumAcc<T>::type;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = in + r * cols;
    A acc = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) acc += static_cast<A>(load_acc(row + c));
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[r] = convert<O>(acc);
    __syncthreads();  // warp_part is reused by the next row
  }
}

}  // namespace

cudaError_t reduce_rows(ReduceOp op, DType in_dtype, const void* in, DType out_dtype, void* out,
                        int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (op != ReduceOp::Sum) return cudaErrorInvalidValue;
  const unsigned grid = static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
  VIMOE_KERNEL_DISPATCH(in_dtype, {
    using T = scalar_t;
    VIMOE_KERNEL_DISPATCH(out_dtype, {
      sum_rows_kernel<<<grid, kBlock, 0, stream>>>(static_cast<const T*>(in),
                                                   static_cast<scalar_t*>(out), rows, cols);
    });
  });
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
