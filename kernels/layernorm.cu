#include <algorithm>
#include <climits>
#include <initializer_list>
#include <type_traits>

#include "kernels/layernorm.h"
#include "kernels/rowwise.cuh"

namespace vimoe::kernels {
namespace {

using rowwise::load_pack;
using rowwise::pack_width;
using rowwise::store_pack;
using rowwise::warp_sum;

constexpr int kWarps = 8;  // warps per block on the warp-per-row paths
constexpr int kThreads = 32 * kWarps;
// Upper bound on the backward's blocks, hence on the rows of dweight/dbias partials: the
// warp path runs one wave (below), at most ~700 blocks of 256 threads on current GPUs at its
// register use; the generic tile path uses a fixed kTileParts.
constexpr int64_t kMaxParts = 1024;
constexpr int64_t kTileParts = 512;
constexpr int kTileCols = 32, kTileRows = 8;  // block of the generic dweight/dbias kernel
static_assert(kTileRows == kWarps, "both backward paths give each part at least 8 rows");
constexpr int64_t kMaxGrid = int64_t(1) << 20;  // row loops stride beyond this many blocks

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows of partials the workspace must hold: every part has at least kWarps rows.
int64_t max_parts(int64_t rows) { return std::min(ceil_div(rows, kWarps), kMaxParts); }

// The warp path keeps four row-sized arrays per lane in registers in the backward (xhat,
// dy*w and the dweight/dbias sums), so it is limited to 32 f32 (16 f64) values per lane
// per array: rows of up to 1024 elements (512 for f64) without spilling.
template <typename T> constexpr int max_lane_elems() { return sizeof(acc_t<T>) == 4 ? 32 : 16; }

__device__ __forceinline__ float inv_sqrt(float v) { return rsqrtf(v); }
__device__ __forceinline__ double inv_sqrt(double v) { return rsqrt(v); }

// Sum over a block whose size is a multiple of 32, returned to every thread (each adds the
// per-warp totals in the same order, so all threads agree). `red` holds 64 values; the
// leading barrier lets back-to-back calls reuse it.
template <typename A>
__device__ void block_sum2(A& a, A& b, A* red) {
  a = warp_sum(a);
  b = warp_sum(b);
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) {
    red[warp] = a;
    red[32 + warp] = b;
  }
  __syncthreads();
  A ta = 0, tb = 0;
  for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i) {
    ta += red[i];
    tb += red[32 + i];
  }
  a = ta;
  b = tb;
}

template <typename A>
__device__ A block_sum(A v, A* red) {
  A none = 0;
  block_sum2(v, none, red);
  return v;
}

// ---- warp per row: the row lives in registers, 16-byte loads ----------------------------
// Lane l holds packs k = 0..kPacks-1 at columns (k * 32 + l) * V, so each k is one fully
// coalesced 512-byte access per warp. cols is a multiple of V, hence a pack is either
// wholly inside the row or wholly outside it.

template <typename T, int kPacks>
__global__ void __launch_bounds__(kThreads)
    ln_forward_warp(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                    T* __restrict__ y, acc_t<T>* __restrict__ mean, acc_t<T>* __restrict__ rstd,
                    int64_t rows, int cols, acc_t<T> eps) {
  using A = acc_t<T>;
  constexpr int V = pack_width<T>();
  const int lane = threadIdx.x & 31;
  const int64_t stride = int64_t(gridDim.x) * kWarps;
  for (int64_t r = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5); r < rows; r += stride) {
    const T* xr = x + r * cols;
    A v[kPacks][V];
    A s = 0;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int c = (k * 32 + lane) * V;
      if (c < cols) {
        load_pack<V>(xr + c, v[k]);
#pragma unroll
        for (int i = 0; i < V; ++i) s += v[k][i];
      }
    }
    const A mu = warp_sum(s) / A(cols);
    // Second pass over registers: the variance of centred values, no cancellation.
    A ss = 0;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int c = (k * 32 + lane) * V;
      if (c < cols) {
#pragma unroll
        for (int i = 0; i < V; ++i) {
          const A d = v[k][i] - mu;
          ss += d * d;
        }
      }
    }
    const A rs = inv_sqrt(warp_sum(ss) / A(cols) + eps);
    T* yr = y + r * cols;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int c = (k * 32 + lane) * V;
      if (c < cols) {
        A o[V];
#pragma unroll
        for (int i = 0; i < V; ++i) o[i] = (v[k][i] - mu) * rs;
        if (w) {
          A wk[V];
          load_pack<V>(w + c, wk);
#pragma unroll
          for (int i = 0; i < V; ++i) o[i] *= wk[i];
        }
        if (b) {
          A bk[V];
          load_pack<V>(b + c, bk);
#pragma unroll
          for (int i = 0; i < V; ++i) o[i] += bk[i];
        }
        store_pack<V>(yr + c, o);
      }
    }
    if (lane == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
  }
}

// dx per row as in the header; each lane also sums dy*xhat and dy for its own columns over
// every row its warp visits. At the end the block adds its warps' sums in warp order through
// shared memory (2 * cols acc values, dynamic) and writes them as partial row blockIdx.x of
// the [2][gridDim.x][cols] workspace (dweight parts, then dbias parts).
template <typename T, int kPacks>
__global__ void __launch_bounds__(kThreads)
    ln_backward_warp(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ w,
                     const acc_t<T>* __restrict__ mean, const acc_t<T>* __restrict__ rstd,
                     T* __restrict__ dx, acc_t<T>* __restrict__ partial, int64_t rows,
                     int cols) {
  using A = acc_t<T>;
  constexpr int V = pack_width<T>();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  A dw[kPacks][V], db[kPacks][V];
#pragma unroll
  for (int k = 0; k < kPacks; ++k)
#pragma unroll
    for (int i = 0; i < V; ++i) dw[k][i] = db[k][i] = 0;

  const int64_t stride = int64_t(gridDim.x) * kWarps;
  for (int64_t r = blockIdx.x * int64_t(kWarps) + warp; r < rows; r += stride) {
    const int64_t off = r * cols;
    const A mu = mean[r], rs = rstd[r];
    A xh[kPacks][V], g[kPacks][V];  // xhat; dy, then dy * w
    A s1 = 0, s2 = 0;               // this lane's share of sum(dy*w) and sum(dy*w*xhat)
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int c = (k * 32 + lane) * V;
      if (c < cols) {
        load_pack<V>(x + off + c, xh[k]);
        load_pack<V>(dy + off + c, g[k]);
        A wk[V];
        if (w) {
          load_pack<V>(w + c, wk);
        } else {
#pragma unroll
          for (int i = 0; i < V; ++i) wk[i] = 1;
        }
#pragma unroll
        for (int i = 0; i < V; ++i) {
          xh[k][i] = (xh[k][i] - mu) * rs;
          dw[k][i] += g[k][i] * xh[k][i];
          db[k][i] += g[k][i];
          g[k][i] *= wk[i];
          s1 += g[k][i];
          s2 += g[k][i] * xh[k][i];
        }
      }
    }
    if (dx) {
      const A m1 = warp_sum(s1) / A(cols), m2 = warp_sum(s2) / A(cols);
#pragma unroll
      for (int k = 0; k < kPacks; ++k) {
        const int c = (k * 32 + lane) * V;
        if (c < cols) {
          A o[V];
#pragma unroll
          for (int i = 0; i < V; ++i) o[i] = rs * (g[k][i] - m1 - xh[k][i] * m2);
          store_pack<V>(dx + off + c, o);
        }
      }
    }
  }
  if (partial == nullptr) return;  // uniform over the block: no barrier below is split

  extern __shared__ __align__(16) unsigned char ln_smem[];
  A* sw = reinterpret_cast<A*>(ln_smem);
  A* sb = sw + cols;
  // Warp 0 covers every column (kPacks * 32 * V >= cols), so its turn initialises all of them.
  for (int turn = 0; turn < kWarps; ++turn) {
    if (warp == turn) {
#pragma unroll
      for (int k = 0; k < kPacks; ++k) {
        const int c = (k * 32 + lane) * V;
        if (c < cols) {
#pragma unroll
          for (int i = 0; i < V; ++i) {
            sw[c + i] = turn == 0 ? dw[k][i] : sw[c + i] + dw[k][i];
            sb[c + i] = turn == 0 ? db[k][i] : sb[c + i] + db[k][i];
          }
        }
      }
    }
    __syncthreads();
  }
  A* pw = partial + int64_t(blockIdx.x) * cols;
  A* pb = partial + (int64_t(gridDim.x) + blockIdx.x) * cols;
  for (int c = threadIdx.x; c < cols; c += kThreads) {
    pw[c] = sw[c];
    pb[c] = sb[c];
  }
}

// ---- block per row: any width, any alignment --------------------------------------------
// Two-pass statistics re-read the row, which is then in L1/L2; blockDim is a multiple of 32.

template <typename T>
__global__ void ln_forward_block(const T* __restrict__ x, const T* __restrict__ w,
                                 const T* __restrict__ b, T* __restrict__ y,
                                 acc_t<T>* __restrict__ mean, acc_t<T>* __restrict__ rstd,
                                 int64_t rows, int cols, acc_t<T> eps) {
  using A = acc_t<T>;
  __shared__ A red[64];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    A s = 0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += load_acc(xr + c);
    const A mu = block_sum(s, red) / A(cols);
    A ss = 0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      const A d = load_acc(xr + c) - mu;
      ss += d * d;
    }
    const A rs = inv_sqrt(block_sum(ss, red) / A(cols) + eps);
    T* yr = y + r * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      A o = (load_acc(xr + c) - mu) * rs;
      if (w) o *= load_acc(w + c);
      if (b) o += load_acc(b + c);
      store_acc(yr + c, o);
    }
    if (threadIdx.x == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
  }
}

template <typename T>
__global__ void ln_backward_dx_block(const T* __restrict__ dy, const T* __restrict__ x,
                                     const T* __restrict__ w, const acc_t<T>* __restrict__ mean,
                                     const acc_t<T>* __restrict__ rstd, T* __restrict__ dx,
                                     int64_t rows, int cols) {
  using A = acc_t<T>;
  __shared__ A red[64];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t off = r * cols;
    const A mu = mean[r], rs = rstd[r];
    A s1 = 0, s2 = 0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      const A xh = (load_acc(x + off + c) - mu) * rs;
      const A g = load_acc(dy + off + c) * (w ? load_acc(w + c) : A(1));
      s1 += g;
      s2 += g * xh;
    }
    block_sum2(s1, s2, red);
    const A m1 = s1 / A(cols), m2 = s2 / A(cols);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      const A xh = (load_acc(x + off + c) - mu) * rs;
      const A g = load_acc(dy + off + c) * (w ? load_acc(w + c) : A(1));
      store_acc(dx + off + c, rs * (g - m1 - xh * m2));
    }
  }
}

// Block (kTileCols, kTileRows) sums dy*xhat and dy over rows [y * rows_per_part, ...) of 32
// columns and writes partial row blockIdx.y of the [2][gridDim.y][cols] workspace.
template <typename T>
__global__ void ln_backward_params_tile(const T* __restrict__ dy, const T* __restrict__ x,
                                        const acc_t<T>* __restrict__ mean,
                                        const acc_t<T>* __restrict__ rstd,
                                        acc_t<T>* __restrict__ partial, int64_t rows, int cols,
                                        int64_t rows_per_part) {
  using A = acc_t<T>;
  __shared__ A red_w[kTileRows][kTileCols], red_b[kTileRows][kTileCols];
  const int64_t c = blockIdx.x * int64_t(kTileCols) + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_part;
  const int64_t r1 = r0 + rows_per_part < rows ? r0 + rows_per_part : rows;
  A sw = 0, sb = 0;
  if (c < cols) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const int64_t off = r * cols + c;
      const A g = load_acc(dy + off);
      sw += g * ((load_acc(x + off) - mean[r]) * rstd[r]);
      sb += g;
    }
  }
  red_w[threadIdx.y][threadIdx.x] = sw;
  red_b[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    A tw = 0, tb = 0;
    for (int j = 0; j < kTileRows; ++j) {
      tw += red_w[j][threadIdx.x];
      tb += red_b[j][threadIdx.x];
    }
    partial[int64_t(blockIdx.y) * cols + c] = tw;
    partial[(int64_t(gridDim.y) + blockIdx.y) * cols + c] = tb;
  }
}

// ---- launch helpers -----------------------------------------------------------------------

template <typename T>
bool fits_warp_path(int64_t cols, std::initializer_list<const void*> ptrs) {
  constexpr int V = pack_width<T>();
  if (cols % V != 0 || cols > int64_t(32) * max_lane_elems<T>()) return false;
  for (const void* p : ptrs)
    if (p != nullptr && !rowwise::aligned16(p)) return false;
  return true;
}

// Calls f(std::integral_constant<int, K>) with K the smallest of 1, 2, 3, 4, 6, 8 packs per
// lane that covers the row (fewer instantiations; at most two idle packs). Returns false,
// calling nothing, for a row wider than the register budget (fits_warp_path excludes those).
template <typename T, typename F>
bool with_packs(int64_t cols, F&& f) {
  const int64_t need = ceil_div(cols, int64_t(32) * pack_width<T>());
  auto call = [&](auto k) {
    // Only register footprints within budget are instantiated (e.g. no 8 packs of bf16).
    if constexpr (decltype(k)::value * pack_width<T>() <= max_lane_elems<T>()) {
      f(k);
      return true;
    } else {
      return false;
    }
  };
  if (need <= 1) return call(std::integral_constant<int, 1>{});
  if (need <= 2) return call(std::integral_constant<int, 2>{});
  if (need <= 3) return call(std::integral_constant<int, 3>{});
  if (need <= 4) return call(std::integral_constant<int, 4>{});
  if (need <= 6) return call(std::integral_constant<int, 6>{});
  if (need <= 8) return call(std::integral_constant<int, 8>{});
  return false;
}

// About four elements per thread, in whole warps, 32..1024 threads.
int block_threads(int64_t cols) {
  const int64_t warps = ceil_div(ceil_div(cols, 4), 32);
  return static_cast<int>(std::clamp<int64_t>(warps, 1, 32) * 32);
}

// Blocks of `kernel` that are resident on the device at once. The warp backward launches
// exactly one such wave and lets each warp loop over rows: with fixed-size blocks a second,
// partly filled wave would leave most SMs idle for as long as a full one (512 blocks over
// the 396 slots of an H100 at 80 registers cost two waves' time), and fewer blocks also
// means fewer partial rows to reduce. Deterministic for a given kernel and GPU.
template <typename Kernel>
int64_t one_wave(Kernel kernel, size_t smem) {
  int dev = 0, sms = 0, per_sm = 0;
  // A failure leaves a zero (hence one block) and is reported by the caller's
  // cudaGetLastError().
  if (cudaGetDevice(&dev) == cudaSuccess &&
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess)
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem);
  return std::max<int64_t>(1, int64_t(sms) * per_sm);
}

template <typename T>
void forward_typed(const T* x, const T* w, const T* b, T* y, acc_t<T>* mean, acc_t<T>* rstd,
                   int64_t rows, int64_t cols, double eps, cudaStream_t stream) {
  using A = acc_t<T>;
  const int c = static_cast<int>(cols);
  const auto warp_grid = static_cast<unsigned>(std::min(ceil_div(rows, kWarps), kMaxGrid));
  const bool done = fits_warp_path<T>(cols, {x, w, b, y}) && with_packs<T>(cols, [&](auto k) {
    ln_forward_warp<T, decltype(k)::value>
        <<<warp_grid, kThreads, 0, stream>>>(x, w, b, y, mean, rstd, rows, c, A(eps));
  });
  if (!done) {
    const auto grid = static_cast<unsigned>(std::min(rows, kMaxGrid));
    ln_forward_block<T><<<grid, block_threads(cols), 0, stream>>>(x, w, b, y, mean, rstd, rows,
                                                                  c, A(eps));
  }
}

template <typename T>
void backward_typed(const T* dy, const T* x, const T* w, const acc_t<T>* mean,
                    const acc_t<T>* rstd, T* dx, T* dw, T* db, acc_t<T>* work, int64_t rows,
                    int64_t cols, cudaStream_t stream) {
  using A = acc_t<T>;
  const int c = static_cast<int>(cols);
  const bool params = dw != nullptr || db != nullptr;
  A* partial = params ? work : nullptr;
  int64_t parts = 0;  // blocks, hence rows of partials; at most max_parts(rows)
  const size_t smem = params ? 2 * static_cast<size_t>(cols) * sizeof(A) : 0;
  const bool done = fits_warp_path<T>(cols, {dy, x, w, dx}) && with_packs<T>(cols, [&](auto k) {
    const auto kernel = ln_backward_warp<T, decltype(k)::value>;
    parts = std::min(max_parts(rows), one_wave(kernel, smem));
    kernel<<<static_cast<unsigned>(parts), kThreads, smem, stream>>>(dy, x, w, mean, rstd, dx,
                                                                    partial, rows, c);
  });
  if (!done) {
    parts = std::min(max_parts(rows), kTileParts);
    if (dx != nullptr) {
      const auto grid = static_cast<unsigned>(std::min(rows, kMaxGrid));
      ln_backward_dx_block<T>
          <<<grid, block_threads(cols), 0, stream>>>(dy, x, w, mean, rstd, dx, rows, c);
    }
    if (params) {
      const dim3 grid(static_cast<unsigned>(ceil_div(cols, kTileCols)),
                      static_cast<unsigned>(parts));
      ln_backward_params_tile<T><<<grid, dim3(kTileCols, kTileRows), 0, stream>>>(
          dy, x, mean, rstd, partial, rows, c, ceil_div(rows, parts));
    }
  }
  if (dw != nullptr) rowwise::launch_column_sums(partial, parts, cols, dw, stream);
  if (db != nullptr) rowwise::launch_column_sums(partial + parts * cols, parts, cols, db, stream);
}

}  // namespace

cudaError_t layer_norm_forward(DType dtype, const void* x, const void* weight, const void* bias,
                               void* y, void* mean, void* rstd, int64_t rows, int64_t cols,
                               double eps, cudaStream_t stream) {
  if (cols < 1 || cols > INT_MAX || rows < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    using A = acc_t<scalar_t>;
    forward_typed(static_cast<const scalar_t*>(x), static_cast<const scalar_t*>(weight),
                  static_cast<const scalar_t*>(bias), static_cast<scalar_t*>(y),
                  static_cast<A*>(mean), static_cast<A*>(rstd), rows, cols, eps, stream);
  });
  return cudaGetLastError();
}

int64_t layer_norm_backward_workspace(int64_t rows, int64_t cols) {
  return rows > 0 ? 2 * max_parts(rows) * cols : 0;
}

cudaError_t layer_norm_backward(DType dtype, const void* dy, const void* x, const void* weight,
                                const void* mean, const void* rstd, void* dx, void* dweight,
                                void* dbias, void* workspace, int64_t rows, int64_t cols,
                                cudaStream_t stream) {
  if (cols < 1 || cols > INT_MAX || rows < 0) return cudaErrorInvalidValue;
  const bool params = dweight != nullptr || dbias != nullptr;
  if (params && (rows == 0 || workspace == nullptr)) return cudaErrorInvalidValue;
  if (rows == 0 || (dx == nullptr && !params)) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    using A = acc_t<scalar_t>;
    backward_typed(static_cast<const scalar_t*>(dy), static_cast<const scalar_t*>(x),
                   static_cast<const scalar_t*>(weight), static_cast<const A*>(mean),
                   static_cast<const A*>(rstd), static_cast<scalar_t*>(dx),
                   static_cast<scalar_t*>(dweight), static_cast<scalar_t*>(dbias),
                   static_cast<A*>(workspace), rows, cols, stream);
  });
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
