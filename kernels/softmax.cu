#include "kernels/dispatch.cuh"
#include "kernels/reduce_ops.h"
#include "kernels/softmax.h"

namespace vimoe::kernels {
namespace {

// Three layouts of a row, one kernel shape each:
//   warp kernel   inner == 1, n <= kWarpMaxN: a warp per row, shuffles only;
//   block kernel  inner == 1, n >  kWarpMaxN: a block per row, looping over the row;
//   column kernel inner >  1: a thread per row (elements `inner` apart), so a warp reads
//                 32 neighbouring rows' elements at once (coalesced).
// Every kernel reads the row once for its statistics and once more to write the output.
constexpr int kBlock = 256;
constexpr int kWarps = kBlock / 32;
constexpr int64_t kWarpMaxN = 1024;
constexpr unsigned kFullMask = 0xffffffffu;

// The output from an element and the row statistics. `aux` is 1/s for softmax, log(s) for
// log_softmax.
template <bool kLog, typename A>
__device__ __forceinline__ A softmax_value(A x, A m, A aux) {
  if constexpr (kLog) return (x - m) - aux;
  else return exp_of(x - m) * aux;
}
template <bool kLog, typename A>
__device__ __forceinline__ A softmax_aux(A s) {
  if constexpr (kLog) return log_of(s);
  else return A(1) / s;
}

// Backward: the per-row reduction term, and dx from it.
template <bool kLog, typename A>
__device__ __forceinline__ A backward_term(A dy, A y) {
  if constexpr (kLog) return dy;
  else return dy * y;
}
template <bool kLog, typename A>
__device__ __forceinline__ A backward_value(A dy, A y, A total) {
  if constexpr (kLog) return dy - exp_of(y) * total;
  else return y * (dy - total);
}

template <typename A>
__device__ __forceinline__ void warp_merge_stats(A& m, A& s) {
  for (int o = 16; o > 0; o >>= 1) {
    const A m2 = __shfl_xor_sync(kFullMask, m, o);
    const A s2 = __shfl_xor_sync(kFullMask, s, o);
    softmax_stats_merge(m, s, m2, s2);
  }
}

template <typename A>
__device__ __forceinline__ A warp_allsum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// ---- forward -------------------------------------------------------------------------

template <typename T, bool kLog>
__global__ void softmax_warp_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                    int64_t n) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t stride = int64_t(gridDim.x) * kWarps;
  // r is the same for the whole warp, so the full-mask shuffles below see all 32 lanes.
  for (int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); r < rows; r += stride) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    A m = -A(INFINITY), s = A(0);
    for (int64_t c = lane; c < n; c += 32) softmax_stats_add(m, s, load_acc(xr + c));
    warp_merge_stats(m, s);
    const A aux = softmax_aux<kLog>(s);
    for (int64_t c = lane; c < n; c += 32) store_acc(yr + c, softmax_value<kLog>(load_acc(xr + c), m, aux));
  }
}

template <typename T, bool kLog>
__global__ void softmax_block_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                     int64_t n) {
  using A = acc_t<T>;
  __shared__ A s_m[kWarps], s_s[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    A m = -A(INFINITY), s = A(0);
    for (int64_t c = threadIdx.x; c < n; c += kBlock) softmax_stats_add(m, s, load_acc(xr + c));
    warp_merge_stats(m, s);
    if (lane == 0) {
      s_m[warp] = m;
      s_s[warp] = s;
    }
    __syncthreads();
    // Every thread merges the warp partials in the same order: identical statistics.
    m = s_m[0];
    s = s_s[0];
    for (int w = 1; w < kWarps; ++w) softmax_stats_merge(m, s, s_m[w], s_s[w]);
    __syncthreads();  // s_m / s_s are rewritten for the next row
    const A aux = softmax_aux<kLog>(s);
    for (int64_t c = threadIdx.x; c < n; c += kBlock)
      store_acc(yr + c, softmax_value<kLog>(load_acc(xr + c), m, aux));
  }
}

template <typename T, bool kLog>
__global__ void softmax_column_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer,
                                      int64_t n, int64_t inner) {
  using A = acc_t<T>;
  const int64_t rows = outer * inner;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < rows;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = k / inner, i = k - o * inner;
    const T* xr = x + o * n * inner + i;
    T* yr = y + o * n * inner + i;
    A m = -A(INFINITY), s = A(0);
    for (int64_t c = 0; c < n; ++c) softmax_stats_add(m, s, load_acc(xr + c * inner));
    const A aux = softmax_aux<kLog>(s);
    for (int64_t c = 0; c < n; ++c)
      store_acc(yr + c * inner, softmax_value<kLog>(load_acc(xr + c * inner), m, aux));
  }
}

// ---- backward ------------------------------------------------------------------------

template <typename T, bool kLog>
__global__ void softmax_backward_warp_kernel(const T* __restrict__ dy, const T* __restrict__ y,
                                             T* __restrict__ dx, int64_t rows, int64_t n) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t stride = int64_t(gridDim.x) * kWarps;
  for (int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); r < rows; r += stride) {
    const int64_t base = r * n;
    A total = A(0);
    for (int64_t c = lane; c < n; c += 32)
      total += backward_term<kLog>(load_acc(dy + base + c), load_acc(y + base + c));
    total = warp_allsum(total);
    for (int64_t c = lane; c < n; c += 32)
      store_acc(dx + base + c,
                backward_value<kLog>(load_acc(dy + base + c), load_acc(y + base + c), total));
  }
}

template <typename T, bool kLog>
__global__ void softmax_backward_block_kernel(const T* __restrict__ dy, const T* __restrict__ y,
                                              T* __restrict__ dx, int64_t rows, int64_t n) {
  using A = acc_t<T>;
  __shared__ A s_part[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t base = r * n;
    A total = A(0);
    for (int64_t c = threadIdx.x; c < n; c += kBlock)
      total += backward_term<kLog>(load_acc(dy + base + c), load_acc(y + base + c));
    total = warp_allsum(total);
    if (lane == 0) s_part[warp] = total;
    __syncthreads();
    total = s_part[0];
    for (int w = 1; w < kWarps; ++w) total += s_part[w];
    __syncthreads();  // s_part is rewritten for the next row
    for (int64_t c = threadIdx.x; c < n; c += kBlock)
      store_acc(dx + base + c,
                backward_value<kLog>(load_acc(dy + base + c), load_acc(y + base + c), total));
  }
}

template <typename T, bool kLog>
__global__ void softmax_backward_column_kernel(const T* __restrict__ dy, const T* __restrict__ y,
                                               T* __restrict__ dx, int64_t outer, int64_t n,
                                               int64_t inner) {
  using A = acc_t<T>;
  const int64_t rows = outer * inner;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < rows;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = k / inner, i = k - o * inner;
    const int64_t base = o * n * inner + i;
    A total = A(0);
    for (int64_t c = 0; c < n; ++c)
      total += backward_term<kLog>(load_acc(dy + base + c * inner), load_acc(y + base + c * inner));
    for (int64_t c = 0; c < n; ++c) {
      const int64_t e = base + c * inner;
      store_acc(dx + e, backward_value<kLog>(load_acc(dy + e), load_acc(y + e), total));
    }
  }
}

unsigned block_grid(int64_t rows) {
  return static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
}

template <bool kLog>
cudaError_t launch_forward(DType dtype, const void* x, void* y, int64_t outer, int64_t n,
                           int64_t inner, cudaStream_t stream) {
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    const auto* xp = static_cast<const scalar_t*>(x);
    auto* yp = static_cast<scalar_t*>(y);
    if (inner > 1) {
      softmax_column_kernel<scalar_t, kLog>
          <<<grid_for(outer * inner, kBlock), kBlock, 0, stream>>>(xp, yp, outer, n, inner);
    } else if (n <= kWarpMaxN) {
      softmax_warp_kernel<scalar_t, kLog>
          <<<grid_for(outer, kWarps), kBlock, 0, stream>>>(xp, yp, outer, n);
    } else {
      softmax_block_kernel<scalar_t, kLog>
          <<<block_grid(outer), kBlock, 0, stream>>>(xp, yp, outer, n);
    }
  });
  return cudaGetLastError();
}

template <bool kLog>
cudaError_t launch_backward(DType dtype, const void* dy, const void* y, void* dx, int64_t outer,
                            int64_t n, int64_t inner, cudaStream_t stream) {
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    const auto* dyp = static_cast<const scalar_t*>(dy);
    const auto* yp = static_cast<const scalar_t*>(y);
    auto* dxp = static_cast<scalar_t*>(dx);
    if (inner > 1) {
      softmax_backward_column_kernel<scalar_t, kLog>
          <<<grid_for(outer * inner, kBlock), kBlock, 0, stream>>>(dyp, yp, dxp, outer, n, inner);
    } else if (n <= kWarpMaxN) {
      softmax_backward_warp_kernel<scalar_t, kLog>
          <<<grid_for(outer, kWarps), kBlock, 0, stream>>>(dyp, yp, dxp, outer, n);
    } else {
      softmax_backward_block_kernel<scalar_t, kLog>
          <<<block_grid(outer), kBlock, 0, stream>>>(dyp, yp, dxp, outer, n);
    }
  });
  return cudaGetLastError();
}

}  // namespace

cudaError_t softmax_forward(DType dtype, const void* x, void* y, int64_t outer, int64_t n,
                            int64_t inner, bool log, cudaStream_t stream) {
  if (outer * n * inner == 0) return cudaSuccess;
  return log ? launch_forward<true>(dtype, x, y, outer, n, inner, stream)
             : launch_forward<false>(dtype, x, y, outer, n, inner, stream);
}

cudaError_t softmax_backward(DType dtype, const void* dy, const void* y, void* dx, int64_t outer,
                             int64_t n, int64_t inner, bool log, cudaStream_t stream) {
  if (outer * n * inner == 0) return cudaSuccess;
  return log ? launch_backward<true>(dtype, dy, y, dx, outer, n, inner, stream)
             : launch_backward<false>(dtype, dy, y, dx, outer, n, inner, stream);
}

}  // namespace vimoe::kernels
