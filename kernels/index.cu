#include <algorithm>

#include "kernels/dispatch.cuh"
#include "kernels/index.h"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;

// ---- shared helpers ------------------------------------------------------------------

__device__ __forceinline__ void report_bad(unsigned long long* bad, int64_t position) {
  atomicMin(bad, static_cast<unsigned long long>(position));
}

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  // There is no signed 64-bit atomicAdd; two's-complement addition is the same operation.
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

// strided_offset() without its per-dimension modulo for the common dense case
// (ops::kernel_layout collapses a contiguous operand to one unit-stride dimension).
__device__ __forceinline__ int64_t element_offset(const StridedLayout& l, int64_t linear) {
  if (l.ndim == 1 && l.strides[0] == 1) return l.offset + linear;
  return strided_offset(l, linear);
}

template <typename A, typename S> struct AccPair {
  using acc = A;
  using src = S;
};

// Calls launch(AccPair<A, S>{}) for the accumulator / source pairs the atomic kernels
// support (see index.h); any other pair is invalid.
template <typename Launch>
cudaError_t dispatch_accumulate(DType acc, DType src, Launch&& launch) {
  if (acc == DType::F32 && src == DType::F32) return launch(AccPair<float, float>{});
  if (acc == DType::F32 && src == DType::BF16) return launch(AccPair<float, __nv_bfloat16>{});
  if (acc == DType::F32 && src == DType::F16) return launch(AccPair<float, __half>{});
  if (acc == DType::F64 && src == DType::F64) return launch(AccPair<double, double>{});
  if (acc == DType::I32 && src == DType::I32) return launch(AccPair<int32_t, int32_t>{});
  if (acc == DType::I64 && src == DType::I64) return launch(AccPair<int64_t, int64_t>{});
  return cudaErrorInvalidValue;
}

template <typename I> struct IndexTag { using type = I; };

template <typename Launch>
cudaError_t dispatch_index(DType index_dtype, Launch&& launch) {
  if (index_dtype == DType::I32) return launch(IndexTag<int32_t>{});
  if (index_dtype == DType::I64) return launch(IndexTag<int64_t>{});
  return cudaErrorInvalidValue;
}

cudaError_t reset_bad(unsigned long long* bad, cudaStream_t stream) {
  // All bits set == kNoBadIndex.
  return cudaMemsetAsync(bad, 0xff, sizeof(unsigned long long), stream);
}

// ---- concat --------------------------------------------------------------------------

struct ConcatBatch {
  ConcatSource sources[kConcatMaxSources];
  int64_t numel[kConcatMaxSources];
};

// blockIdx.y picks the source; the x-dimension of the grid strides over its elements.
// Source element i = (o, r) with r in [0, size * inner) lands at out[o, start * inner + r]
// (out rows being out_size * inner long).
template <typename T>
__global__ void concat_kernel(ConcatBatch batch, T* __restrict__ out, int64_t out_size,
                              int64_t inner) {
  const ConcatSource& s = batch.sources[blockIdx.y];
  const int64_t n = batch.numel[blockIdx.y];
  const T* src = static_cast<const T*>(s.data);
  const int64_t chunk = s.size * inner;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = i / chunk, r = i - o * chunk;
    out[(o * out_size + s.start) * inner + r] = src[element_offset(s.layout, i)];
  }
}

// ---- index_select / index_add --------------------------------------------------------

template <typename T, typename I>
__global__ void index_select_kernel(const T* __restrict__ x, StridedLayout xl,
                                    const I* __restrict__ index, int64_t n, T* __restrict__ out,
                                    int64_t total, int64_t bound, int64_t inner,
                                    unsigned long long* bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % inner, t = i / inner;
    const int64_t j = t % n, o = t / n;
    const int64_t idx = static_cast<int64_t>(index[j]);
    if (idx < 0 || idx >= bound) {
      report_bad(bad, j);
      continue;
    }
    out[i] = x[element_offset(xl, (o * bound + idx) * inner + k)];
  }
}

template <typename A, typename S, typename I>
__global__ void index_add_kernel(A* __restrict__ out, const S* __restrict__ src, StridedLayout sl,
                                 const I* __restrict__ index, int64_t n, int64_t total,
                                 int64_t bound, int64_t inner, unsigned long long* bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % inner, t = i / inner;
    const int64_t j = t % n, o = t / n;
    const int64_t idx = static_cast<int64_t>(index[j]);
    if (idx < 0 || idx >= bound) {
      report_bad(bad, j);
      continue;
    }
    atomic_add(out + (o * bound + idx) * inner + k,
               static_cast<A>(load_acc(src + element_offset(sl, i))));
  }
}

// ---- gather / scatter_add ------------------------------------------------------------

// Position i of `shape` is decomposed innermost-first; the coordinate along `dim` is
// replaced by the index value when addressing the indexed tensor.
template <typename T, typename I>
__global__ void gather_kernel(const T* __restrict__ x, StridedLayout xl,
                              const I* __restrict__ index, IndexShape shape, int dim,
                              T* __restrict__ out, int64_t total, unsigned long long* bad) {
  const int64_t bound = xl.sizes[dim];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t idx = static_cast<int64_t>(index[i]);
    if (idx < 0 || idx >= bound) {
      report_bad(bad, i);
      continue;
    }
    int64_t rem = i, off = xl.offset;
    for (int d = shape.ndim - 1; d >= 0; --d) {
      const int64_t c = rem % shape.sizes[d];
      rem /= shape.sizes[d];
      off += (d == dim ? idx : c) * xl.strides[d];
    }
    out[i] = x[off];
  }
}

template <typename A, typename S, typename I>
__global__ void scatter_add_kernel(A* __restrict__ out, StridedLayout ol,
                                   const S* __restrict__ src, StridedLayout sl,
                                   const I* __restrict__ index, IndexShape shape, int dim,
                                   int64_t total, unsigned long long* bad) {
  const int64_t bound = ol.sizes[dim];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t idx = static_cast<int64_t>(index[i]);
    if (idx < 0 || idx >= bound) {
      report_bad(bad, i);
      continue;
    }
    int64_t rem = i, so = sl.offset, oo = ol.offset;
    for (int d = shape.ndim - 1; d >= 0; --d) {
      const int64_t c = rem % shape.sizes[d];
      rem /= shape.sizes[d];
      so += c * sl.strides[d];
      oo += (d == dim ? idx : c) * ol.strides[d];
    }
    atomic_add(out + oo, static_cast<A>(load_acc(src + so)));
  }
}

// ---- one_hot -------------------------------------------------------------------------

// One thread per output element, so every element is written (no separate zero fill).
template <typename T, typename I>
__global__ void one_hot_kernel(const I* __restrict__ index, int64_t classes, T* __restrict__ out,
                               int64_t total, unsigned long long* bad) {
  const T one = from_double<T>(1.0), zero = from_double<T>(0.0);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / classes, c = i - r * classes;
    const int64_t v = static_cast<int64_t>(index[r]);
    if (v < 0 || v >= classes) {
      if (c == 0) report_bad(bad, r);
      out[i] = zero;
      continue;
    }
    out[i] = v == c ? one : zero;
  }
}

// ---- topk ----------------------------------------------------------------------------
//
// One block per row and k rounds of a block-wide argmax. Entries are totally ordered by
// (value, then lower column first), so round s picks the best entry ranking strictly after
// the one picked in round s - 1: nothing is marked or moved, and the row is only read.
// Cost per row: k passes over the row (k * cols / blockDim loads per thread, served from
// L1/L2 after the first pass for the short rows this is for) plus k block reductions
// (two barriers each). That is ideal for routing (k = 1, 2, rows of 8-64 experts) and top-5
// accuracy; a large k on long rows is quadratic but still correct.

// Comparison keys: half types compare as f32, integers as i64 (exact).
template <typename T> struct TopkKey { using type = acc_t<T>; };
template <> struct TopkKey<int32_t> { using type = long long; };
template <> struct TopkKey<int64_t> { using type = long long; };
template <> struct TopkKey<uint8_t> { using type = long long; };

// True when (a, ia) ranks before (b, ib): the larger (smaller) value first, NaN above every
// number, equal values by the lower index. Must match cpu::topk's ordering exactly.
template <typename K>
__device__ __forceinline__ bool ranks_before(K a, int64_t ia, K b, int64_t ib, bool largest) {
  const bool na = a != a, nb = b != b;  // NaN tests; false for integer keys
  if (na || nb) {
    if (na && nb) return ia < ib;
    return largest ? na : nb;
  }
  if (a == b) return ia < ib;
  return largest ? a > b : a < b;
}

template <typename K> struct Cand {
  K v;
  int64_t i;  // column; -1 when the thread has no candidate
};

template <typename K>
__device__ __forceinline__ Cand<K> best_of(Cand<K> a, Cand<K> b, bool largest) {
  if (a.i < 0) return b;
  if (b.i < 0) return a;
  return ranks_before(b.v, b.i, a.v, a.i, largest) ? b : a;
}

template <typename K>
__device__ __forceinline__ Cand<K> warp_best(Cand<K> c, bool largest) {
  for (int o = 16; o > 0; o >>= 1) {
    Cand<K> other;
    other.v = __shfl_down_sync(0xffffffffu, c.v, o);
    other.i = __shfl_down_sync(0xffffffffu, c.i, o);
    c = best_of(c, other, largest);
  }
  return c;
}

// blockDim.x must be a multiple of 32 (full warps for the shuffles) and at most 1024.
template <typename T>
__global__ void topk_kernel(const T* __restrict__ in, int64_t rows, int64_t cols, int64_t k,
                            bool largest, T* __restrict__ values, int64_t* __restrict__ indices) {
  using K = typename TopkKey<T>::type;
  __shared__ K warp_v[32];
  __shared__ int64_t warp_i[32];
  __shared__ K chosen_v;
  __shared__ int64_t chosen_i;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = in + r * cols;
    Cand<K> prev{K(0), -1};
    for (int64_t s = 0; s < k; ++s) {
      Cand<K> c{K(0), -1};
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const K v = static_cast<K>(load_acc(row + j));
        if (s > 0 && !ranks_before(prev.v, prev.i, v, j, largest)) continue;  // picked already
        c = best_of(c, Cand<K>{v, j}, largest);
      }
      c = warp_best(c, largest);
      if (lane == 0) {
        warp_v[warp] = c.v;
        warp_i[warp] = c.i;
      }
      // Barrier A: every warp's candidate is in shared memory. (The previous round's
      // readers of warp_v / chosen_* all passed barrier B before anyone gets here.)
      __syncthreads();
      if (warp == 0) {
        c = lane < nwarps ? Cand<K>{warp_v[lane], warp_i[lane]} : Cand<K>{K(0), -1};
        c = warp_best(c, largest);
        if (lane == 0) {
          chosen_v = c.v;
          chosen_i = c.i;
        }
      }
      // Barrier B: the round's winner is visible to all. k <= cols guarantees one exists.
      __syncthreads();
      prev = Cand<K>{chosen_v, chosen_i};
      if (threadIdx.x == 0) {
        values[r * k + s] = row[prev.i];  // the stored value itself: exact in every dtype
        indices[r * k + s] = prev.i;
      }
    }
  }
}

}  // namespace

// ---- launchers -----------------------------------------------------------------------

cudaError_t concat(DType dtype, const ConcatSource* sources, int n_sources, void* out,
                   int64_t outer, int64_t out_size, int64_t inner, cudaStream_t stream) {
  int next = 0;
  while (next < n_sources) {
    ConcatBatch batch{};
    int count = 0;
    int64_t most = 0;
    for (; next < n_sources && count < kConcatMaxSources; ++next) {
      const int64_t n = outer * sources[next].size * inner;
      if (n == 0) continue;  // an empty source writes nothing
      batch.sources[count] = sources[next];
      batch.numel[count] = n;
      most = std::max(most, n);
      ++count;
    }
    if (count == 0) break;
    const dim3 grid(grid_for(most, kBlock), static_cast<unsigned>(count));
    VIMOE_KERNEL_DISPATCH(dtype, {
      concat_kernel<scalar_t><<<grid, kBlock, 0, stream>>>(batch, static_cast<scalar_t*>(out),
                                                           out_size, inner);
    });
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

cudaError_t index_select(DType dtype, const void* x, const StridedLayout& x_layout,
                         DType index_dtype, const void* index, int64_t n, void* out,
                         int64_t outer, int64_t bound, int64_t inner, unsigned long long* bad,
                         cudaStream_t stream) {
  const cudaError_t err = reset_bad(bad, stream);
  if (err != cudaSuccess) return err;
  const int64_t total = outer * n * inner;
  if (total == 0) return cudaSuccess;
  return dispatch_index(index_dtype, [&](auto tag) -> cudaError_t {
    using I = typename decltype(tag)::type;
    VIMOE_KERNEL_DISPATCH(dtype, {
      index_select_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(
          static_cast<const scalar_t*>(x), x_layout, static_cast<const I*>(index), n,
          static_cast<scalar_t*>(out), total, bound, inner, bad);
    });
    return cudaGetLastError();
  });
}

cudaError_t index_add(DType acc_dtype, void* out, DType src_dtype, const void* src,
                      const StridedLayout& src_layout, DType index_dtype, const void* index,
                      int64_t n, int64_t outer, int64_t bound, int64_t inner,
                      unsigned long long* bad, cudaStream_t stream) {
  const cudaError_t err = reset_bad(bad, stream);
  if (err != cudaSuccess) return err;
  const int64_t total = outer * n * inner;
  if (total == 0) return cudaSuccess;
  return dispatch_index(index_dtype, [&](auto itag) -> cudaError_t {
    using I = typename decltype(itag)::type;
    return dispatch_accumulate(acc_dtype, src_dtype, [&](auto types) -> cudaError_t {
      using A = typename decltype(types)::acc;
      using S = typename decltype(types)::src;
      index_add_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(
          static_cast<A*>(out), static_cast<const S*>(src), src_layout,
          static_cast<const I*>(index), n, total, bound, inner, bad);
      return cudaGetLastError();
    });
  });
}

cudaError_t gather(DType dtype, const void* x, const StridedLayout& x_layout, DType index_dtype,
                   const void* index, const IndexShape& shape, int dim, void* out,
                   unsigned long long* bad, cudaStream_t stream) {
  if (shape.ndim != x_layout.ndim || dim < 0 || dim >= shape.ndim) return cudaErrorInvalidValue;
  const cudaError_t err = reset_bad(bad, stream);
  if (err != cudaSuccess) return err;
  int64_t total = 1;
  for (int d = 0; d < shape.ndim; ++d) total *= shape.sizes[d];
  if (total == 0) return cudaSuccess;
  return dispatch_index(index_dtype, [&](auto tag) -> cudaError_t {
    using I = typename decltype(tag)::type;
    VIMOE_KERNEL_DISPATCH(dtype, {
      gather_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(
          static_cast<const scalar_t*>(x), x_layout, static_cast<const I*>(index), shape, dim,
          static_cast<scalar_t*>(out), total, bad);
    });
    return cudaGetLastError();
  });
}

cudaError_t scatter_add(DType acc_dtype, void* out, const StridedLayout& out_layout,
                        DType src_dtype, const void* src, const StridedLayout& src_layout,
                        DType index_dtype, const void* index, const IndexShape& shape, int dim,
                        unsigned long long* bad, cudaStream_t stream) {
  if (shape.ndim != out_layout.ndim || shape.ndim != src_layout.ndim || dim < 0 ||
      dim >= shape.ndim)
    return cudaErrorInvalidValue;
  const cudaError_t err = reset_bad(bad, stream);
  if (err != cudaSuccess) return err;
  int64_t total = 1;
  for (int d = 0; d < shape.ndim; ++d) total *= shape.sizes[d];
  if (total == 0) return cudaSuccess;
  return dispatch_index(index_dtype, [&](auto itag) -> cudaError_t {
    using I = typename decltype(itag)::type;
    return dispatch_accumulate(acc_dtype, src_dtype, [&](auto types) -> cudaError_t {
      using A = typename decltype(types)::acc;
      using S = typename decltype(types)::src;
      scatter_add_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(
          static_cast<A*>(out), out_layout, static_cast<const S*>(src), src_layout,
          static_cast<const I*>(index), shape, dim, total, bad);
      return cudaGetLastError();
    });
  });
}

cudaError_t one_hot(DType index_dtype, const void* index, int64_t n, int64_t num_classes,
                    DType out_dtype, void* out, unsigned long long* bad, cudaStream_t stream) {
  if (num_classes <= 0) return cudaErrorInvalidValue;
  const cudaError_t err = reset_bad(bad, stream);
  if (err != cudaSuccess) return err;
  const int64_t total = n * num_classes;
  if (total == 0) return cudaSuccess;
  return dispatch_index(index_dtype, [&](auto tag) -> cudaError_t {
    using I = typename decltype(tag)::type;
    VIMOE_KERNEL_DISPATCH(out_dtype, {
      one_hot_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(
          static_cast<const I*>(index), num_classes, static_cast<scalar_t*>(out), total, bad);
    });
    return cudaGetLastError();
  });
}

cudaError_t topk(DType dtype, const void* in, int64_t rows, int64_t cols, int64_t k,
                 bool largest, void* values, int64_t* indices, cudaStream_t stream) {
  if (k < 0 || k > cols) return cudaErrorInvalidValue;
  if (rows == 0 || k == 0) return cudaSuccess;
  // Short rows (routing over a few experts) get one warp, so most lanes are not idle.
  const int block = cols <= 32 ? 32 : cols <= 64 ? 64 : cols <= 128 ? 128 : 256;
  const unsigned grid = static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
  VIMOE_KERNEL_DISPATCH(dtype, {
    topk_kernel<<<grid, block, 0, stream>>>(static_cast<const scalar_t*>(in), rows, cols, k,
                                            largest, static_cast<scalar_t*>(values), indices);
  });
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
