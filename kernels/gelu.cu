#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "kernels/gelu.h"
#include "kernels/gelu_math.h"
#include "kernels/rowwise.cuh"

namespace vimoe::kernels {
namespace {

using rowwise::load_pack;
using rowwise::pack_width;
using rowwise::store_pack;

constexpr int kBlock = 256;
// The dbias kernel's block: kTileCols packs of columns by kTileRows rows in flight.
constexpr int kTileCols = 32, kTileRows = 8;
// Aim for about this many dbias blocks (an H100 holds ~1000 such blocks at once), assuming
// tiles of kSizingCols columns; any estimate works, it only has to depend on the shape alone.
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kSizingCols = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Row parts of the dbias reduction, i.e. rows of partials; every part has >= kTileRows rows.
int64_t parts_for(int64_t rows, int64_t cols) {
  const int64_t want = std::max<int64_t>(1, kTargetBlocks / ceil_div(cols, kSizingCols));
  return std::min(want, ceil_div(rows, kTileRows));
}

// Thread i handles packs i, i + stride, ... of V elements. With a bias, `col` follows the
// pack's column (counted in packs) incrementally, so the loop needs no division.
template <typename T, int V, bool kBias>
__global__ void gelu_forward_kernel(const T* __restrict__ x, const T* __restrict__ bias,
                                    T* __restrict__ out, int64_t packs, int64_t row_packs) {
  using A = acc_t<T>;
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t col = kBias ? i % row_packs : 0;
  const int64_t col_step = kBias ? stride % row_packs : 0;
  for (; i < packs; i += stride) {
    A v[V];
    load_pack<V>(x + i * V, v);
    if constexpr (kBias) {
      A b[V];
      load_pack<V>(bias + col * V, b);
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] += b[k];
      col += col_step;
      if (col >= row_packs) col -= row_packs;
    }
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] = gelu_value(v[k]);
    store_pack<V>(out + i * V, v);
  }
}

// dx only (no dbias wanted); same indexing as the forward.
template <typename T, int V, bool kBias>
__global__ void gelu_backward_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                     const T* __restrict__ bias, T* __restrict__ dx, int64_t packs,
                                     int64_t row_packs) {
  using A = acc_t<T>;
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t col = kBias ? i % row_packs : 0;
  const int64_t col_step = kBias ? stride % row_packs : 0;
  for (; i < packs; i += stride) {
    A g[V], v[V];
    load_pack<V>(dy + i * V, g);
    load_pack<V>(x + i * V, v);
    if constexpr (kBias) {
      A b[V];
      load_pack<V>(bias + col * V, b);
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] += b[k];
      col += col_step;
      if (col >= row_packs) col -= row_packs;
    }
#pragma unroll
    for (int k = 0; k < V; ++k) g[k] *= gelu_derivative(v[k]);
    store_pack<V>(dx + i * V, g);
  }
}

// dx plus dbias partials. Block (kTileCols, kTileRows) owns kTileCols packs of columns and
// rows [blockIdx.y * rows_per_part, ...): a warp (one threadIdx.y) reads 32 consecutive packs
// of one row, the 8 warps take rows in turn; each thread sums its pack's dx in registers,
// then the warps' sums are added in threadIdx.y order and written as partial row blockIdx.y
// of the [gridDim.y][cols] workspace.
template <typename T, int V>
__global__ void __launch_bounds__(kTileCols * kTileRows)
    bias_gelu_backward_tile(const T* __restrict__ dy, const T* __restrict__ x,
                            const T* __restrict__ bias, T* __restrict__ dx,
                            acc_t<T>* __restrict__ partial, int64_t rows, int64_t cols,
                            int64_t rows_per_part) {
  using A = acc_t<T>;
  __shared__ A red[kTileRows][kTileCols * V];
  const int64_t c = (blockIdx.x * int64_t(kTileCols) + threadIdx.x) * V;  // first column
  const bool active = c < cols;  // cols is a multiple of V, so the whole pack is in range
  const int64_t r0 = blockIdx.y * rows_per_part;
  const int64_t r1 = r0 + rows_per_part < rows ? r0 + rows_per_part : rows;
  A acc[V];
#pragma unroll
  for (int k = 0; k < V; ++k) acc[k] = 0;
  if (active) {
    A b[V];
    load_pack<V>(bias + c, b);
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const int64_t off = r * cols + c;
      A g[V], v[V];
      load_pack<V>(dy + off, g);
      load_pack<V>(x + off, v);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        g[k] *= gelu_derivative(v[k] + b[k]);
        acc[k] += g[k];
      }
      store_pack<V>(dx + off, g);
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) red[threadIdx.y][threadIdx.x * V + k] = acc[k];
  __syncthreads();
  if (threadIdx.y == 0 && active) {
    A* out = partial + int64_t(blockIdx.y) * cols + c;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      A s = 0;
      for (int j = 0; j < kTileRows; ++j) s += red[j][threadIdx.x * V + k];
      out[k] = s;
    }
  }
}

bool all_aligned(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p != nullptr && !rowwise::aligned16(p)) return false;
  return true;
}

// Calls f with the pack width: 16 bytes when every pointer is aligned and packs never
// straddle a row (with a bias) or the end (without), else single elements.
template <typename T, typename F>
void with_width(bool has_bias, int64_t rows, int64_t cols, std::initializer_list<const void*> ptrs,
                F&& f) {
  constexpr int V = pack_width<T>();
  const bool fits = has_bias ? cols % V == 0 : (rows * cols) % V == 0;
  if (fits && all_aligned(ptrs))
    f(std::integral_constant<int, V>{});
  else
    f(std::integral_constant<int, 1>{});
}

template <typename T>
void forward_typed(const T* x, const T* bias, T* out, int64_t rows, int64_t cols,
                   cudaStream_t stream) {
  with_width<T>(bias != nullptr, rows, cols, {x, bias, out}, [&](auto width) {
    constexpr int W = decltype(width)::value;
    const int64_t packs = rows * cols / W;
    const unsigned grid = grid_for(packs, kBlock);
    if (bias != nullptr)
      gelu_forward_kernel<T, W, true><<<grid, kBlock, 0, stream>>>(x, bias, out, packs, cols / W);
    else
      gelu_forward_kernel<T, W, false><<<grid, kBlock, 0, stream>>>(x, nullptr, out, packs, 1);
  });
}

template <typename T>
void backward_typed(const T* dy, const T* x, const T* bias, T* dx, T* dbias, acc_t<T>* work,
                    int64_t rows, int64_t cols, cudaStream_t stream) {
  with_width<T>(bias != nullptr, rows, cols, {dy, x, bias, dx}, [&](auto width) {
    constexpr int W = decltype(width)::value;
    if (dbias == nullptr) {
      const int64_t packs = rows * cols / W;
      const unsigned grid = grid_for(packs, kBlock);
      if (bias != nullptr)
        gelu_backward_kernel<T, W, true>
            <<<grid, kBlock, 0, stream>>>(dy, x, bias, dx, packs, cols / W);
      else
        gelu_backward_kernel<T, W, false>
            <<<grid, kBlock, 0, stream>>>(dy, x, nullptr, dx, packs, 1);
      return;
    }
    const int64_t parts = parts_for(rows, cols);
    const dim3 grid(static_cast<unsigned>(ceil_div(cols / W, kTileCols)),
                    static_cast<unsigned>(parts));
    bias_gelu_backward_tile<T, W><<<grid, dim3(kTileCols, kTileRows), 0, stream>>>(
        dy, x, bias, dx, work, rows, cols, ceil_div(rows, parts));
    rowwise::launch_column_sums(work, parts, cols, dbias, stream);
  });
}

}  // namespace

cudaError_t gelu_forward(DType dtype, const void* x, const void* bias, void* out, int64_t rows,
                         int64_t cols, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    forward_typed(static_cast<const scalar_t*>(x), static_cast<const scalar_t*>(bias),
                  static_cast<scalar_t*>(out), rows, cols, stream);
  });
  return cudaGetLastError();
}

int64_t gelu_backward_workspace(int64_t rows, int64_t cols) {
  return rows > 0 && cols > 0 ? parts_for(rows, cols) * cols : 0;
}

cudaError_t gelu_backward(DType dtype, const void* dy, const void* x, const void* bias, void* dx,
                          void* dbias, void* workspace, int64_t rows, int64_t cols,
                          cudaStream_t stream) {
  if (rows < 0 || cols < 0 || dx == nullptr) return cudaErrorInvalidValue;
  if (dbias != nullptr && (bias == nullptr || workspace == nullptr || rows == 0))
    return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    using A = acc_t<scalar_t>;
    backward_typed(static_cast<const scalar_t*>(dy), static_cast<const scalar_t*>(x),
                   static_cast<const scalar_t*>(bias), static_cast<scalar_t*>(dx),
                   static_cast<scalar_t*>(dbias), static_cast<A*>(workspace), rows, cols, stream);
  });
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
