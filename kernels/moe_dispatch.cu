#include "kernels/dispatch.cuh"
#include "kernels/moe_dispatch.h"

namespace vimoe::kernels {
namespace {

constexpr int kSortThreads = 1024;
constexpr int kSortWarps = kSortThreads / 32;
constexpr int kMaxExperts = 1024;

// One block sorts all slots. Pass 1 counts ids per expert; a scan gives segment starts;
// pass 2 walks the slots in tiles of 1024 and places each at its segment start + the number
// of earlier slots with the same expert (earlier tiles, earlier warps, earlier lanes), which
// keeps slots in their original order within an expert.
__global__ void plan_kernel(const int32_t* __restrict__ ids, int64_t slots, int experts,
                            int32_t* __restrict__ order, int32_t* __restrict__ position,
                            int64_t* __restrict__ offsets) {
  __shared__ int64_t start[kMaxExperts + 1];   // running placement cursor per expert
  __shared__ int warp_counts[kSortWarps][64];  // per tile: slots of expert e in warp w (e < 64)
  __shared__ unsigned long long bad;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int e = tid; e <= experts; e += kSortThreads) start[e] = 0;
  if (tid == 0) bad = 0;
  __syncthreads();
  for (int64_t s = tid; s < slots; s += kSortThreads) {
    const int e = ids[s];
    if (e >= 0 && e < experts) atomicAdd(reinterpret_cast<unsigned long long*>(&start[e + 1]), 1ull);
    else atomicAdd(&bad, 1ull);
  }
  __syncthreads();
  if (tid == 0) {
    for (int e = 0; e < experts; ++e) start[e + 1] += start[e];
    for (int e = 0; e <= experts; ++e) offsets[e] = start[e];
    offsets[experts + 1] = static_cast<int64_t>(bad);
  }
  __syncthreads();
  // Pass 2, for up to 64 experts with the warp-count table; more experts fall back to a
  // serial placement by thread 0 (still stable, only slower).
  if (experts > 64) {
    if (tid == 0)
      for (int64_t s = 0; s < slots; ++s) {
        const int e = ids[s];
        if (e < 0 || e >= experts) continue;
        const int64_t i = start[e]++;
        order[i] = static_cast<int32_t>(s);
        position[s] = static_cast<int32_t>(i);
      }
    return;
  }
  for (int64_t base = 0; base < slots; base += kSortThreads) {
    const int64_t s = base + tid;
    const int e = s < slots ? ids[s] : -1;
    const bool valid = e >= 0 && e < experts;
    for (int i = tid; i < kSortWarps * 64; i += kSortThreads) (&warp_counts[0][0])[i] = 0;
    __syncthreads();
    const unsigned same = __match_any_sync(0xffffffffu, valid ? e : -1);
    const int rank_in_warp = __popc(same & ((1u << lane) - 1));
    if (valid && rank_in_warp == 0) warp_counts[warp][e] = __popc(same);
    __syncthreads();
    if (valid) {
      int64_t i = start[e] + rank_in_warp;
      for (int w = 0; w < warp; ++w) i += warp_counts[w][e];
      order[i] = static_cast<int32_t>(s);
      position[s] = static_cast<int32_t>(i);
    }
    __syncthreads();  // every thread has read start[] before it moves on
    if (tid < experts) {
      int total = 0;
      for (int w = 0; w < kSortWarps; ++w) total += warp_counts[w][tid];
      start[tid] += total;
    }
    __syncthreads();
  }
}

template <typename S> __device__ __forceinline__ float scale_at(const void* p, int64_t i) {
  return static_cast<float>(static_cast<const S*>(p)[i]);
}

template <typename T, typename A>
__global__ void gather_kernel(const T* __restrict__ x, const int32_t* __restrict__ order,
                              int64_t n, int64_t k, int64_t width, const A* __restrict__ scale,
                              T* __restrict__ out) {
  const int64_t total = n * width;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx / width, c = idx - i * width;
    const int32_t slot = order[i];
    const T v = x[(slot / k) * width + c];
    if (scale == nullptr) out[idx] = v;
    else store_acc(out + idx, static_cast<acc_t<T>>(static_cast<A>(scale[slot]) * static_cast<A>(load_acc(&v))));
  }
}

template <typename T, typename A>
__global__ void combine_kernel(const T* __restrict__ src, const int32_t* __restrict__ position,
                               int64_t rows, int64_t k, int64_t width, const A* __restrict__ gates,
                               T* __restrict__ y) {
  const int64_t total = rows * width;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = idx / width, c = idx - r * width;
    A acc = 0;
    for (int64_t j = 0; j < k; ++j) {
      const A g = gates ? gates[r * k + j] : A(1);
      acc += g * static_cast<A>(load_acc(src + position[r * k + j] * width + c));
    }
    store_acc(y + idx, static_cast<acc_t<T>>(acc));
  }
}

// One block per slot: a block-wide dot product of two rows.
template <typename T, typename A>
__global__ void gates_grad_kernel(const T* __restrict__ dy, const T* __restrict__ src,
                                  const int32_t* __restrict__ position, int64_t slots, int64_t k,
                                  int64_t width, A* __restrict__ dgates) {
  __shared__ A part[32];
  for (int64_t s = blockIdx.x; s < slots; s += gridDim.x) {
    const T* a = dy + (s / k) * width;
    const T* b = src + int64_t(position[s]) * width;
    A acc = 0;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x)
      acc += static_cast<A>(load_acc(a + c)) * static_cast<A>(load_acc(b + c));
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x < 32) {
      acc = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : A(0);
      for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
      if (threadIdx.x == 0) dgates[s] = acc;
    }
    __syncthreads();  // part[] is reused by the next slot
  }
}

constexpr int kBlock = 256;

}  // namespace

cudaError_t plan_dispatch(const int32_t* ids, int64_t slots, int experts, int32_t* order,
                          int32_t* position, int64_t* offsets, cudaStream_t stream) {
  if (experts < 1 || experts > kMaxExperts) return cudaErrorInvalidValue;
  plan_kernel<<<1, kSortThreads, 0, stream>>>(ids, slots, experts, order, position, offsets);
  return cudaGetLastError();
}

cudaError_t gather_rows(DType dtype, const void* x, const int32_t* order, int64_t n, int64_t k,
                        int64_t width, const void* scale, DType scale_dtype, void* out,
                        cudaStream_t stream) {
  if (n * width == 0) return cudaSuccess;
  const unsigned grid = grid_for(n * width, kBlock);
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    if (scale_dtype == DType::F64) {
      gather_kernel<scalar_t, double><<<grid, kBlock, 0, stream>>>(
          static_cast<const scalar_t*>(x), order, n, k, width, static_cast<const double*>(scale),
          static_cast<scalar_t*>(out));
    } else {
      gather_kernel<scalar_t, float><<<grid, kBlock, 0, stream>>>(
          static_cast<const scalar_t*>(x), order, n, k, width, static_cast<const float*>(scale),
          static_cast<scalar_t*>(out));
    }
  });
  return cudaGetLastError();
}

cudaError_t combine_rows(DType dtype, const void* src, const int32_t* position, int64_t rows,
                         int64_t k, int64_t width, const void* gates, DType gate_dtype, void* y,
                         cudaStream_t stream) {
  if (rows * width == 0) return cudaSuccess;
  const unsigned grid = grid_for(rows * width, kBlock);
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    if (gate_dtype == DType::F64) {
      combine_kernel<scalar_t, double><<<grid, kBlock, 0, stream>>>(
          static_cast<const scalar_t*>(src), position, rows, k, width,
          static_cast<const double*>(gates), static_cast<scalar_t*>(y));
    } else {
      combine_kernel<scalar_t, float><<<grid, kBlock, 0, stream>>>(
          static_cast<const scalar_t*>(src), position, rows, k, width,
          static_cast<const float*>(gates), static_cast<scalar_t*>(y));
    }
  });
  return cudaGetLastError();
}

cudaError_t gates_grad(DType dtype, const void* dy, const void* src, const int32_t* position,
                       int64_t rows, int64_t k, int64_t width, void* dgates, DType gate_dtype,
                       cudaStream_t stream) {
  const int64_t slots = rows * k;
  if (slots == 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(slots < 65535 * 16 ? slots : 65535 * 16);
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    if (gate_dtype == DType::F64) {
      gates_grad_kernel<scalar_t, double><<<grid, kBlock, 0, stream>>>(
          static_cast<const scalar_t*>(dy), static_cast<const scalar_t*>(src), position, slots, k,
          width, static_cast<double*>(dgates));
    } else {
      gates_grad_kernel<scalar_t, float><<<grid, kBlock, 0, stream>>>(
          static_cast<const scalar_t*>(dy), static_cast<const scalar_t*>(src), position, slots, k,
          width, static_cast<float*>(dgates));
    }
  });
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
