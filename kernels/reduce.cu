#include "kernels/dispatch.cuh"
#include "kernels/reduce.h"

namespace vimoe::kernels {
namespace {

// One block of kBlock threads per row; blocks stride over rows beyond the grid. Every
// helper below assumes blockDim.x == kBlock (a multiple of 32).
constexpr int kBlock = 256;
constexpr int kWarps = kBlock / 32;
constexpr unsigned kFullMask = 0xffffffffu;

unsigned row_grid(int64_t rows) {
  return static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
}

template <typename T> struct SumAcc { using type = acc_t<T>; };
template <> struct SumAcc<int32_t> { using type = int64_t; };
template <> struct SumAcc<uint8_t> { using type = int64_t; };

// Comparisons happen in the compute type; integers widen to i64 (exact) so every case
// shuffles a type __shfl_xor_sync has an overload for.
template <typename T>
using max_acc_t = std::conditional_t<std::is_integral_v<T>, int64_t, acc_t<T>>;

// The sum of v over the block, returned to every thread. The warp partials are added in a
// fixed order, so the result is deterministic. The trailing barrier lets the caller reuse
// `scratch` (kWarps entries) right away.
template <typename A>
__device__ A block_allsum(A v, A* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  A total = scratch[0];
  for (int w = 1; w < kWarps; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

template <typename T, typename O>
__global__ void sum_rows_kernel(const T* __restrict__ in, O* __restrict__ out, int64_t rows,
                                int64_t cols, bool mean) {
  using A = typename SumAcc<T>::type;
  __shared__ A scratch[kWarps];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = in + r * cols;
    A acc = 0;
    for (int64_t c = threadIdx.x; c < cols; c += kBlock) acc += static_cast<A>(load_acc(row + c));
    acc = block_allsum(acc, scratch);
    if (mean) acc /= static_cast<A>(cols);
    if (threadIdx.x == 0) out[r] = convert<O>(acc);
  }
}

template <typename T>
__global__ void max_rows_kernel(const T* __restrict__ in, T* __restrict__ values,
                                int64_t* __restrict__ indices, int64_t rows, int64_t cols) {
  using A = max_acc_t<T>;
  __shared__ A s_val[kWarps];
  __shared__ int64_t s_idx[kWarps];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = in + r * cols;
    // Each thread scans its columns in increasing order, so strict max_beats keeps its first.
    A best = A(0);
    int64_t bi = -1;
    for (int64_t c = threadIdx.x; c < cols; c += kBlock) {
      const A v = static_cast<A>(load_acc(row + c));
      if (bi < 0 || max_beats(v, best)) {
        best = v;
        bi = c;
      }
    }
    // Butterfly: max_pair_beats is a total order, so every lane ends with the warp's winner.
    for (int o = 16; o > 0; o >>= 1) {
      const A ov = __shfl_xor_sync(kFullMask, best, o);
      const int64_t oi = __shfl_xor_sync(kFullMask, bi, o);
      if (max_pair_beats(ov, oi, best, bi)) {
        best = ov;
        bi = oi;
      }
    }
    if ((threadIdx.x & 31) == 0) {
      s_val[threadIdx.x >> 5] = best;
      s_idx[threadIdx.x >> 5] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      best = s_val[0];
      bi = s_idx[0];
      for (int w = 1; w < kWarps; ++w)
        if (max_pair_beats(s_val[w], s_idx[w], best, bi)) {
          best = s_val[w];
          bi = s_idx[w];
        }
      if (values) values[r] = convert<T>(best);
      if (indices) indices[r] = bi;
    }
    __syncthreads();  // s_val / s_idx are rewritten for the next row
  }
}

template <typename T>
__global__ void var_rows_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t rows,
                                int64_t cols, int64_t correction) {
  using A = acc_t<T>;
  __shared__ A scratch[kWarps];
  const int64_t dof = cols - correction > 0 ? cols - correction : 0;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = in + r * cols;
    A s = 0;
    for (int64_t c = threadIdx.x; c < cols; c += kBlock) s += load_acc(row + c);
    const A mean = block_allsum(s, scratch) / static_cast<A>(cols);
    A ss = 0;
    for (int64_t c = threadIdx.x; c < cols; c += kBlock) {
      const A d = load_acc(row + c) - mean;
      ss += d * d;
    }
    ss = block_allsum(ss, scratch);
    // dof 0 gives ss/0: +inf, or NaN for a constant row, like torch.var.
    if (threadIdx.x == 0) store_acc(out + r, ss / static_cast<A>(dof));
  }
}

template <typename T>
__global__ void max_backward_kernel(const T* __restrict__ grad, const int64_t* __restrict__ index,
                                    T* __restrict__ out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t total = outer * n * inner;
  const T zero = from_double<T>(0.0);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % inner, t = e / inner;
    const int64_t c = t % n, o = t / n;
    const int64_t r = o * inner + i;
    out[e] = index[r] == c ? grad[r] : zero;
  }
}

}  // namespace

cudaError_t reduce_rows(ReduceOp op, DType in_dtype, const void* in, DType out_dtype, void* out,
                        int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  const bool mean = op == ReduceOp::Mean;
  const bool integral = in_dtype == DType::I32 || in_dtype == DType::I64 || in_dtype == DType::U8;
  if (mean && integral) return cudaErrorInvalidValue;  // an empty row would divide by zero
  VIMOE_KERNEL_DISPATCH(in_dtype, {
    using T = scalar_t;
    VIMOE_KERNEL_DISPATCH(out_dtype, {
      sum_rows_kernel<<<row_grid(rows), kBlock, 0, stream>>>(
          static_cast<const T*>(in), static_cast<scalar_t*>(out), rows, cols, mean);
    });
  });
  return cudaGetLastError();
}

cudaError_t max_rows(DType dtype, const void* in, void* values, int64_t* indices, int64_t rows,
                     int64_t cols, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (cols < 1) return cudaErrorInvalidValue;
  VIMOE_KERNEL_DISPATCH(dtype, {
    max_rows_kernel<<<row_grid(rows), kBlock, 0, stream>>>(
        static_cast<const scalar_t*>(in), static_cast<scalar_t*>(values), indices, rows, cols);
  });
  return cudaGetLastError();
}

cudaError_t var_rows(DType dtype, const void* in, void* out, int64_t rows, int64_t cols,
                     int64_t correction, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    var_rows_kernel<<<row_grid(rows), kBlock, 0, stream>>>(
        static_cast<const scalar_t*>(in), static_cast<scalar_t*>(out), rows, cols, correction);
  });
  return cudaGetLastError();
}

cudaError_t max_backward(DType dtype, const void* grad, const int64_t* index, void* out,
                         int64_t outer, int64_t n, int64_t inner, cudaStream_t stream) {
  const int64_t total = outer * n * inner;
  if (total == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    max_backward_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(
        static_cast<const scalar_t*>(grad), index, static_cast<scalar_t*>(out), outer, n, inner);
  });
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
