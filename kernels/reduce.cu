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

// ---- column reductions ----------------------------------------------------------------
//
// A column block owns a tile of `width` consecutive inner columns (min(inner, 32)) and
// kBlock / width row slots: thread t reads column t % width of rows slot, slot + slots, ...
// (slot = t / width) within its part of n. A warp therefore reads consecutive elements: 32
// of one row when width = 32, whole consecutive rows when inner < 32 (inner = 1 is a plain
// contiguous sweep, the full reduction). The slots of a column are then added by a tree of
// fixed shape, so the order of every addition depends on the shape alone.
struct ColsGeometry {
  int width;       // inner columns per tile
  int slots;       // rows in flight per block: kBlock / width
  int64_t tiles;   // ceil(inner / width)
  int64_t parts;   // the n axis in `parts` pieces of `chunk` rows (the last may be shorter)
  int64_t chunk;
};

// About as many blocks as an H100 / H200 keeps resident (132 SMs x 8 blocks of 256); the
// number only has to depend on the shape, any GPU gets the same split and the same bits.
constexpr int64_t kTargetBlocks = 1024;
// Splitting n further than this many rows per thread costs more in partials than it gains.
constexpr int64_t kMinRowsPerThread = 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

ColsGeometry cols_geometry(int64_t outer, int64_t n, int64_t inner) {
  ColsGeometry g;
  g.width = inner < 32 ? static_cast<int>(inner < 1 ? 1 : inner) : 32;
  g.slots = kBlock / g.width;
  g.tiles = ceil_div(inner < 1 ? 1 : inner, g.width);
  const int64_t blocks = g.tiles * (outer < 1 ? 1 : outer);
  int64_t parts = blocks >= kTargetBlocks ? 1 : kTargetBlocks / blocks;
  const int64_t useful = ceil_div(n, kMinRowsPerThread * g.slots);
  if (parts > useful) parts = useful;
  if (parts < 1) parts = 1;
  g.chunk = ceil_div(n, parts);
  if (g.chunk < 1) g.chunk = 1;
  g.parts = ceil_div(n, g.chunk);  // no empty trailing part
  if (g.parts < 1) g.parts = 1;
  return g;
}

// The geometry of the pass that adds the partials [outer, parts, inner] of `g`: one part.
ColsGeometry finish_geometry(const ColsGeometry& g) {
  ColsGeometry f = g;
  f.chunk = g.parts;
  f.parts = 1;
  return f;
}

// out[(o * parts + part) * inner + c] = the sum over rows of `part` of in[o, row, c] (or of
// (in - center[o, c])^2 with kSquares), divided by `divisor` when `divide`. With parts = 1
// that is the final [outer, inner] result; with more, the partials of a two-pass reduction.
template <typename T, typename A, typename O, bool kSquares>
__global__ void __launch_bounds__(kBlock)
    cols_kernel(const T* __restrict__ in, const A* __restrict__ center, O* __restrict__ out,
                int64_t outer, int64_t n, int64_t inner, ColsGeometry g, bool divide,
                A divisor) {
  __shared__ A part_sum[kBlock];
  const int col = static_cast<int>(threadIdx.x) % g.width;
  const int slot = static_cast<int>(threadIdx.x) / g.width;
  int top = 1;  // the smallest power of two >= slots
  while (top < g.slots) top <<= 1;
  const int64_t total = g.tiles * g.parts * outer;
  for (int64_t vb = blockIdx.x; vb < total; vb += gridDim.x) {
    // Tiles vary fastest, so neighbouring blocks read neighbouring columns of the same rows.
    const int64_t tile = vb % g.tiles, rest = vb / g.tiles;
    const int64_t part = rest % g.parts, o = rest / g.parts;
    const int64_t c = tile * g.width + col;
    const int64_t r0 = part * g.chunk;
    const int64_t r1 = r0 + g.chunk < n ? r0 + g.chunk : n;
    A s = A(0);
    if (slot < g.slots && c < inner) {
      A m = A(0);
      if constexpr (kSquares) m = center[o * inner + c];
      const int64_t step = int64_t(g.slots) * inner;
      int64_t idx = (o * n + r0 + slot) * inner + c;
#pragma unroll 4
      for (int64_t r = r0 + slot; r < r1; r += g.slots, idx += step) {
        const A v = static_cast<A>(load_acc(in + idx));
        if constexpr (kSquares) {
          const A d = v - m;
          s += d * d;
        } else {
          s += v;
        }
      }
    }
    part_sum[threadIdx.x] = s;
    __syncthreads();
    // Fold the slots of each column: slot j takes j + h while j + h is still a live slot.
    for (int h = top >> 1; h > 0; h >>= 1) {
      if (slot < h && slot + h < g.slots) part_sum[threadIdx.x] += part_sum[threadIdx.x + h * g.width];
      __syncthreads();
    }
    if (slot == 0 && c < inner) {
      A v = part_sum[col];
      if (divide) v /= divisor;  // a division, not a reciprocal: n = 0 must give 0/0 = NaN
      out[(o * g.parts + part) * inner + c] = convert<O>(v);
    }
    __syncthreads();  // part_sum is rewritten for the next virtual block
  }
}

unsigned cols_grid(const ColsGeometry& g, int64_t outer) {
  const int64_t total = g.tiles * g.parts * outer;
  return static_cast<unsigned>(total < 65535 * 16 ? total : 65535 * 16);
}

// One reduction of the middle axis, through partials in `partial` when the geometry splits n:
// out = sum (or sum of squared deviations from `center`), divided by `divisor` if `divide`.
template <typename T, typename A, typename O, bool kSquares>
void cols_reduce(const T* in, const A* center, O* out, int64_t outer, int64_t n, int64_t inner,
                 A* partial, bool divide, A divisor, cudaStream_t stream) {
  const ColsGeometry g = cols_geometry(outer, n, inner);
  if (g.parts == 1) {
    cols_kernel<T, A, O, kSquares><<<cols_grid(g, outer), kBlock, 0, stream>>>(
        in, center, out, outer, n, inner, g, divide, divisor);
    return;
  }
  cols_kernel<T, A, A, kSquares><<<cols_grid(g, outer), kBlock, 0, stream>>>(
      in, center, partial, outer, n, inner, g, false, A(0));
  const ColsGeometry f = finish_geometry(g);
  cols_kernel<A, A, O, false><<<cols_grid(f, outer), kBlock, 0, stream>>>(
      partial, nullptr, out, outer, g.parts, inner, f, divide, divisor);
}

// Elements of the accumulation type the partials of one pass take (0 when n is not split).
int64_t partial_elements(int64_t outer, int64_t n, int64_t inner) {
  const ColsGeometry g = cols_geometry(outer, n, inner);
  return g.parts == 1 ? 0 : outer * g.parts * inner;
}

bool is_integral_dtype(DType t) { return t == DType::I32 || t == DType::I64 || t == DType::U8; }

size_t acc_size(DType t) { return t == DType::F64 || is_integral_dtype(t) ? 8 : 4; }

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

size_t reduce_cols_workspace(DType in_dtype, int64_t outer, int64_t n, int64_t inner) {
  if (outer <= 0 || inner <= 0) return 0;
  return static_cast<size_t>(partial_elements(outer, n, inner)) * acc_size(in_dtype);
}

cudaError_t reduce_cols(ReduceOp op, DType in_dtype, const void* in, DType out_dtype, void* out,
                        int64_t outer, int64_t n, int64_t inner, void* workspace,
                        cudaStream_t stream) {
  if (outer < 0 || n < 0 || inner < 0) return cudaErrorInvalidValue;
  if (outer == 0 || inner == 0) return cudaSuccess;
  const bool mean = op == ReduceOp::Mean;
  const bool integral = is_integral_dtype(in_dtype);
  if (mean && integral) return cudaErrorInvalidValue;
  // One output type per input: the input's own when floating, i64 for integer sums.
  if (out_dtype != (integral ? DType::I64 : in_dtype)) return cudaErrorInvalidValue;
  if (workspace == nullptr && reduce_cols_workspace(in_dtype, outer, n, inner) > 0)
    return cudaErrorInvalidValue;
  VIMOE_KERNEL_DISPATCH(in_dtype, {
    using T = scalar_t;
    using A = typename SumAcc<T>::type;
    using O = std::conditional_t<std::is_integral_v<T>, int64_t, T>;
    cols_reduce<T, A, O, false>(static_cast<const T*>(in), nullptr, static_cast<O*>(out), outer,
                                n, inner, static_cast<A*>(workspace), mean, static_cast<A>(n),
                                stream);
  });
  return cudaGetLastError();
}

size_t var_cols_workspace(DType dtype, int64_t outer, int64_t n, int64_t inner) {
  if (outer <= 0 || inner <= 0) return 0;
  // The partials of one pass (both passes split alike and take turns) and the means.
  return static_cast<size_t>(partial_elements(outer, n, inner) + outer * inner) * acc_size(dtype);
}

cudaError_t var_cols(DType dtype, const void* in, void* out, int64_t outer, int64_t n,
                     int64_t inner, int64_t correction, void* workspace, cudaStream_t stream) {
  if (outer < 0 || n < 0 || inner < 0) return cudaErrorInvalidValue;
  if (outer == 0 || inner == 0) return cudaSuccess;
  if (workspace == nullptr) return cudaErrorInvalidValue;
  const int64_t dof = n - correction > 0 ? n - correction : 0;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    using T = scalar_t;
    using A = acc_t<T>;
    A* partial = static_cast<A*>(workspace);
    A* means = partial + partial_elements(outer, n, inner);
    const T* x = static_cast<const T*>(in);
    cols_reduce<T, A, A, false>(x, nullptr, means, outer, n, inner, partial, true,
                                static_cast<A>(n), stream);
    // dof 0 gives ss/0: +inf, or NaN for a constant column, like torch.var.
    cols_reduce<T, A, T, true>(x, means, static_cast<T*>(out), outer, n, inner, partial, true,
                               static_cast<A>(dof), stream);
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
