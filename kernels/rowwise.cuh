// Device helpers shared by the row-wise kernel families (layernorm, gelu): 16-byte packed
// loads and stores, warp sums, and the deterministic second stage of a column sum.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/dispatch.cuh"

namespace vimoe::kernels::rowwise {

// Elements of T in one 16-byte pack: the widest load a thread can issue.
template <typename T> constexpr int pack_width() { return static_cast<int>(16 / sizeof(T)); }

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Loads N consecutive elements into the compute type. N is 1 or pack_width<T>(); for a pack,
// p must be 16-byte aligned (callers check aligned16 on every base pointer and keep every
// offset a multiple of N).
template <int N, typename T>
__device__ __forceinline__ void load_pack(const T* p, acc_t<T> (&out)[N]) {
  if constexpr (N == 1) {
    out[0] = load_acc(p);
  } else {
    static_assert(N * sizeof(T) == 16, "a pack is 16 bytes");
    const uint4 bits = *reinterpret_cast<const uint4*>(p);  // one 128-bit transaction
    T vals[N];
    memcpy(vals, &bits, 16);
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = load_acc(&vals[i]);
  }
}

template <int N, typename T>
__device__ __forceinline__ void store_pack(T* p, const acc_t<T> (&in)[N]) {
  if constexpr (N == 1) {
    store_acc(p, in[0]);
  } else {
    static_assert(N * sizeof(T) == 16, "a pack is 16 bytes");
    T vals[N];
#pragma unroll
    for (int i = 0; i < N; ++i) store_acc(&vals[i], in[i]);
    uint4 bits;
    memcpy(&bits, vals, 16);
    *reinterpret_cast<uint4*>(p) = bits;
  }
}

// Sum over the 32 lanes of a fully active warp. The xor butterfly leaves the identical total
// in every lane (each step adds the same two values, in either order), so lanes agree bitwise.
template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// out[c] = sum over p of partial[p * cols + c], always in the same order, so a backward that
// reduces through per-block partials gives bitwise identical results run after run.
// Launch with block (32, 32) and grid ceil(cols / 32); out may be any floating type.
template <typename A, typename T>
__global__ void column_sums_kernel(const A* __restrict__ partial, int64_t parts, int64_t cols,
                                   T* __restrict__ out) {
  __shared__ A part[32][33];  // padded: the final loop reads a column of it
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  A s = 0;
  if (c < cols)
    for (int64_t p = threadIdx.y; p < parts; p += 32) s += partial[p * cols + c];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    A total = 0;
    for (int j = 0; j < 32; ++j) total += part[j][threadIdx.x];
    out[c] = convert<T>(total);
  }
}

template <typename A, typename T>
inline void launch_column_sums(const A* partial, int64_t parts, int64_t cols, T* out,
                               cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>((cols + 31) / 32);
  column_sums_kernel<<<grid, dim3(32, 32), 0, stream>>>(partial, parts, cols, out);
}

}  // namespace vimoe::kernels::rowwise
