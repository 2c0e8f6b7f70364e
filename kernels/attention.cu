// Fused attention, forward and backward (FlashAttention-2 algorithm).
//
// Notation: one block works on one (batch * head) slice `bh` of [seq, D] matrices, each
// operand reached through its AttnLayout (slice_offset below, then `row` elements per row;
// features contiguous). Scores
// S = scale * Q K^T are produced tile by tile and never stored; the forward keeps a running
// row maximum m and row sum l (online softmax) and rescales its output accumulator when m
// grows. The backward recomputes P = exp(S - lse) from the saved log-sum-exp.
//
// Two families of kernels:
//   simt_*: f32 on CUDA cores. Each phase of a tile is a plain loop over (row, column)
//           pairs or (row, feature) elements with shared-memory operands, one thread per
//           element. Meant to be obviously correct; the f32 tests hold it to tight tolerances.
//   tc_*:   bf16 on tensor cores via mma.sync.m16n8k16 (bf16 inputs, f32 accumulators).
//           Each warp owns 16 rows of a 64-row tile; scores stay in registers and are fed
//           back into the next product as the A operand without leaving the warp.
#include <climits>
#include <cstdint>
#include <initializer_list>

#include "kernels/attention.h"
#include "kernels/dispatch.cuh"

namespace vimoe::kernels {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kThreads = 128;  // four warps in every kernel of this file
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ==== shared by both families ==========================================================

// Element offset of slice s's first row: s = b * heads + h.
__device__ __forceinline__ int64_t slice_offset(const AttnLayout& l, int64_t s, int64_t heads) {
  return (s / heads) * l.batch + (s % heads) * l.head;
}

// delta[r] = sum_d dout[r, d] * out[r, d] (= sum_j P_rj dP_rj), one warp per row r of the
// contiguous [bh, seq] delta (r = slice * seq + i).
template <typename T>
__global__ void delta_kernel(const T* __restrict__ out, AttnLayout lout,
                             const T* __restrict__ dout, AttnLayout ldout,
                             float* __restrict__ delta, int64_t rows, int seq, int64_t heads,
                             int head_dim) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // whole warps leave together: blockDim is a multiple of 32
  const int64_t slice = row / seq, i = row % seq;
  const T* o = out + slice_offset(lout, slice, heads) + i * lout.row;
  const T* g = dout + slice_offset(ldout, slice, heads) + i * ldout.row;
  float s = 0.f;
  for (int c = lane; c < head_dim; c += 32) s += load_acc(o + c) * load_acc(g + c);
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  if (lane == 0) delta[row] = s;
}

// ==== f32 on CUDA cores ================================================================

// Tile edge: 32 rows for D = 64, 16 for D = 128, so every shared tile stays under 48 KiB
// and each thread owns T * D / kThreads = 16 accumulator elements in both cases.
template <int D> struct Simt {
  static constexpr int T = 2048 / D;
  static constexpr int LD = D + 1;  // odd row stride: column walks hit distinct banks
  static constexpr int kPer = T * D / kThreads;
  static_assert(T * D % kThreads == 0, "accumulators must divide evenly among threads");
};

// Rows [row0, row0 + ROWS) of a [seq, D] slice (rows `ld` elements apart) into a shared
// tile; rows past seq read as 0.
template <int D, int ROWS, int LD>
__device__ __forceinline__ void simt_load(float (*dst)[LD], const float* __restrict__ src,
                                          int64_t ld, int row0, int seq) {
  for (int e = threadIdx.x; e < ROWS * D; e += kThreads) {
    const int r = e / D, c = e % D;
    dst[r][c] = row0 + r < seq ? src[(row0 + r) * ld + c] : 0.f;
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    simt_forward_kernel(const float* __restrict__ q, AttnLayout lq, const float* __restrict__ k,
                        AttnLayout lk, const float* __restrict__ v, AttnLayout lv,
                        float* __restrict__ out, AttnLayout lout, float* __restrict__ lse,
                        int seq, int64_t heads, int tiles, float scale) {
  constexpr int T = Simt<D>::T, LD = Simt<D>::LD, kPer = Simt<D>::kPer;
  __shared__ float sQ[T][LD], sK[T][LD], sV[T][LD], sP[T][T + 1];
  __shared__ float sM[T], sL[T], sAlpha[T];
  const int64_t bh = blockIdx.x / tiles;
  const int q0 = static_cast<int>(blockIdx.x % tiles) * T;
  q += slice_offset(lq, bh, heads);
  k += slice_offset(lk, bh, heads);
  v += slice_offset(lv, bh, heads);
  out += slice_offset(lout, bh, heads);
  const int tid = threadIdx.x;

  simt_load<D, T, LD>(sQ, q, lq.row, q0, seq);
  if (tid < T) {
    sM[tid] = -INFINITY;
    sL[tid] = 0.f;
  }
  float acc[kPer];
#pragma unroll
  for (int c = 0; c < kPer; ++c) acc[c] = 0.f;

  for (int k0 = 0; k0 < seq; k0 += T) {
    __syncthreads();  // the previous tile's readers are done (and sQ, sM, sL are written)
    simt_load<D, T, LD>(sK, k, lk.row, k0, seq);
    simt_load<D, T, LD>(sV, v, lv.row, k0, seq);
    __syncthreads();
    // Scores of the tile; keys past the end get -inf so they weigh exactly zero.
    for (int e = tid; e < T * T; e += kThreads) {
      const int i = e / T, j = e % T;
      float s = 0.f;
#pragma unroll 8
      for (int d = 0; d < D; ++d) s += sQ[i][d] * sK[j][d];
      sP[i][j] = k0 + j < seq ? s * scale : -INFINITY;
    }
    __syncthreads();
    // Online softmax, one thread per row. Column 0 of every tile is a real key, so the
    // new maximum is finite and exp(-inf - mx) = 0 rescales the empty first accumulator.
    if (tid < T) {
      const float m_old = sM[tid];
      float mx = m_old;
      for (int j = 0; j < T; ++j) mx = fmaxf(mx, sP[tid][j]);
      float sum = 0.f;
      for (int j = 0; j < T; ++j) {
        const float p = expf(sP[tid][j] - mx);
        sP[tid][j] = p;
        sum += p;
      }
      const float alpha = expf(m_old - mx);
      sM[tid] = mx;
      sL[tid] = sL[tid] * alpha + sum;
      sAlpha[tid] = alpha;
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kPer; ++c) {
      const int e = tid + c * kThreads, i = e / D, d = e % D;
      float o = acc[c] * sAlpha[i];
#pragma unroll 8
      for (int j = 0; j < T; ++j) o += sP[i][j] * sV[j][d];
      acc[c] = o;
    }
  }
  // sM and sL were last written before the loop's final barrier.
#pragma unroll
  for (int c = 0; c < kPer; ++c) {
    const int e = tid + c * kThreads, i = e / D, d = e % D;
    if (q0 + i < seq) out[(q0 + i) * lout.row + d] = acc[c] / sL[i];
  }
  if (tid < T && q0 + tid < seq) lse[bh * seq + q0 + tid] = sM[tid] + logf(sL[tid]);
}

// dK and dV of one tile of T keys, accumulated over all query tiles.
template <int D>
__global__ void __launch_bounds__(kThreads)
    simt_dkdv_kernel(const float* __restrict__ q, AttnLayout lq, const float* __restrict__ k,
                     AttnLayout lk, const float* __restrict__ v, AttnLayout lv,
                     const float* __restrict__ dout, AttnLayout ldout,
                     const float* __restrict__ lse, const float* __restrict__ delta,
                     float* __restrict__ dk, AttnLayout ldk, float* __restrict__ dv,
                     AttnLayout ldv, int seq, int64_t heads, int tiles, float scale) {
  constexpr int T = Simt<D>::T, LD = Simt<D>::LD, kPer = Simt<D>::kPer;
  __shared__ float sK[T][LD], sV[T][LD], sQ[T][LD], sdO[T][LD];
  __shared__ float sP[T][T + 1], sdS[T][T + 1];  // transposed: [key][query]
  __shared__ float sLse[T], sDelta[T];
  const int64_t bh = blockIdx.x / tiles;
  const int k0 = static_cast<int>(blockIdx.x % tiles) * T;
  q += slice_offset(lq, bh, heads);
  k += slice_offset(lk, bh, heads);
  v += slice_offset(lv, bh, heads);
  dout += slice_offset(ldout, bh, heads);
  dk += slice_offset(ldk, bh, heads);
  dv += slice_offset(ldv, bh, heads);
  const int tid = threadIdx.x;

  simt_load<D, T, LD>(sK, k, lk.row, k0, seq);
  simt_load<D, T, LD>(sV, v, lv.row, k0, seq);
  float dk_acc[kPer], dv_acc[kPer];
#pragma unroll
  for (int c = 0; c < kPer; ++c) dk_acc[c] = dv_acc[c] = 0.f;

  for (int q0 = 0; q0 < seq; q0 += T) {
    __syncthreads();  // the previous query tile's readers are done (and sK, sV are written)
    simt_load<D, T, LD>(sQ, q, lq.row, q0, seq);
    simt_load<D, T, LD>(sdO, dout, ldout.row, q0, seq);
    if (tid < T) {
      const bool live = q0 + tid < seq;
      sLse[tid] = live ? lse[bh * seq + q0 + tid] : 0.f;
      sDelta[tid] = live ? delta[bh * seq + q0 + tid] : 0.f;
    }
    __syncthreads();
    for (int e = tid; e < T * T; e += kThreads) {
      const int j = e / T, i = e % T;  // key j, query i
      float s = 0.f, dp = 0.f;
#pragma unroll 8
      for (int d = 0; d < D; ++d) {
        s += sQ[i][d] * sK[j][d];
        dp += sdO[i][d] * sV[j][d];
      }
      // Queries past the end must not contribute; keys past the end are never stored.
      const float p = q0 + i < seq ? expf(s * scale - sLse[i]) : 0.f;
      sP[j][i] = p;
      sdS[j][i] = p * (dp - sDelta[i]);
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kPer; ++c) {
      const int e = tid + c * kThreads, j = e / D, d = e % D;
      float a = dv_acc[c], b = dk_acc[c];
#pragma unroll 8
      for (int i = 0; i < T; ++i) {
        a += sP[j][i] * sdO[i][d];
        b += sdS[j][i] * sQ[i][d];
      }
      dv_acc[c] = a;
      dk_acc[c] = b;
    }
  }
#pragma unroll
  for (int c = 0; c < kPer; ++c) {
    const int e = tid + c * kThreads, j = e / D, d = e % D;
    if (k0 + j < seq) {
      dk[(k0 + j) * ldk.row + d] = dk_acc[c] * scale;
      dv[(k0 + j) * ldv.row + d] = dv_acc[c];
    }
  }
}

// dQ of one tile of T queries, accumulated over all key tiles.
template <int D>
__global__ void __launch_bounds__(kThreads)
    simt_dq_kernel(const float* __restrict__ q, AttnLayout lq, const float* __restrict__ k,
                   AttnLayout lk, const float* __restrict__ v, AttnLayout lv,
                   const float* __restrict__ dout, AttnLayout ldout,
                   const float* __restrict__ lse, const float* __restrict__ delta,
                   float* __restrict__ dq, AttnLayout ldq, int seq, int64_t heads, int tiles,
                   float scale) {
  constexpr int T = Simt<D>::T, LD = Simt<D>::LD, kPer = Simt<D>::kPer;
  __shared__ float sQ[T][LD], sdO[T][LD], sK[T][LD], sV[T][LD];
  __shared__ float sdS[T][T + 1];  // [query][key]
  __shared__ float sLse[T], sDelta[T];
  const int64_t bh = blockIdx.x / tiles;
  const int q0 = static_cast<int>(blockIdx.x % tiles) * T;
  q += slice_offset(lq, bh, heads);
  k += slice_offset(lk, bh, heads);
  v += slice_offset(lv, bh, heads);
  dout += slice_offset(ldout, bh, heads);
  dq += slice_offset(ldq, bh, heads);
  const int tid = threadIdx.x;

  simt_load<D, T, LD>(sQ, q, lq.row, q0, seq);
  simt_load<D, T, LD>(sdO, dout, ldout.row, q0, seq);
  if (tid < T) {
    const bool live = q0 + tid < seq;
    sLse[tid] = live ? lse[bh * seq + q0 + tid] : 0.f;
    sDelta[tid] = live ? delta[bh * seq + q0 + tid] : 0.f;
  }
  float acc[kPer];
#pragma unroll
  for (int c = 0; c < kPer; ++c) acc[c] = 0.f;

  for (int k0 = 0; k0 < seq; k0 += T) {
    __syncthreads();  // the previous key tile's readers are done (and sQ, sdO are written)
    simt_load<D, T, LD>(sK, k, lk.row, k0, seq);
    simt_load<D, T, LD>(sV, v, lv.row, k0, seq);
    __syncthreads();
    for (int e = tid; e < T * T; e += kThreads) {
      const int i = e / T, j = e % T;  // query i, key j
      float s = 0.f, dp = 0.f;
#pragma unroll 8
      for (int d = 0; d < D; ++d) {
        s += sQ[i][d] * sK[j][d];
        dp += sdO[i][d] * sV[j][d];
      }
      const float p = k0 + j < seq ? expf(s * scale - sLse[i]) : 0.f;
      sdS[i][j] = p * (dp - sDelta[i]);
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kPer; ++c) {
      const int e = tid + c * kThreads, i = e / D, d = e % D;
      float a = acc[c];
#pragma unroll 8
      for (int j = 0; j < T; ++j) a += sdS[i][j] * sK[j][d];
      acc[c] = a;
    }
  }
#pragma unroll
  for (int c = 0; c < kPer; ++c) {
    const int e = tid + c * kThreads, i = e / D, d = e % D;
    if (q0 + i < seq) dq[(q0 + i) * ldq.row + d] = acc[c] * scale;
  }
}

// ==== bf16 on tensor cores =============================================================
//
// mma.sync.m16n8k16 (row.col, bf16 x bf16 -> f32). With lane = 4 * g + t (g = group of
// four lanes, t = lane within it), each thread holds
//   A (16 x 16, row-major): a[0] = (row g,   cols 2t, 2t+1)   a[1] = (row g+8, cols 2t, 2t+1)
//                           a[2] = (row g,   cols 2t+8, 2t+9) a[3] = (row g+8, cols 2t+8, 2t+9)
//   B (16 x 8, k x n):      b0 = (k 2t, 2t+1; col g)          b1 = (k 2t+8, 2t+9; col g)
//   C (16 x 8, f32):        c[0], c[1] = (row g, cols 2t, 2t+1), c[2], c[3] = (row g+8, same)
// with the lower column (or k) in the low 16 bits of each packed register. The C layout of
// two adjacent 8-column tiles is exactly the A layout of one 16 x 16 block, which is how
// probabilities computed in registers feed the next product directly (acc_to_a).
//
// Shared tiles are [rows][D + 8] bf16: the 16-byte pad shifts consecutive rows by four
// banks, so the eight groups g of a fragment load hit distinct banks.

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // the launcher refuses devices below sm_80 before getting here
#endif
}

__device__ __forceinline__ uint32_t ld_pair(const bf16* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}
__device__ __forceinline__ uint32_t pack_pair(bf16 lo, bf16 hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(lo)) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(hi)) << 16);
}
__device__ __forceinline__ uint32_t pack_floats(float lo, float hi) {
  return pack_pair(__float2bfloat16_rn(lo), __float2bfloat16_rn(hi));
}

// A fragment of the 16 x 16 block at (row0, col0) of a row-major shared tile.
template <int LD>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* s, int row0, int col0,
                                       int g, int t) {
  const bf16* p = s + (row0 + g) * LD + col0 + 2 * t;
  a[0] = ld_pair(p);
  a[1] = ld_pair(p + 8 * LD);
  a[2] = ld_pair(p + 8);
  a[3] = ld_pair(p + 8 * LD + 8);
}

// B fragment (k0..k0+15 x n0..n0+7) of a tile stored [n][k] (k contiguous: K for Q K^T).
template <int LD>
__device__ __forceinline__ void load_b_nk(uint32_t& b0, uint32_t& b1, const bf16* s, int n0,
                                          int k0, int g, int t) {
  const bf16* p = s + (n0 + g) * LD + k0 + 2 * t;
  b0 = ld_pair(p);
  b1 = ld_pair(p + 8);
}

// B fragment of a tile stored [k][n] (n contiguous: V for P V). The two k's of a pair are
// a row apart, so they are packed from 16-bit loads (lanes with equal t and g / 2 share a
// word; the others fall in distinct banks, so this is conflict-free).
template <int LD>
__device__ __forceinline__ void load_b_kn(uint32_t& b0, uint32_t& b1, const bf16* s, int k0,
                                          int n0, int g, int t) {
  const bf16* p = s + (k0 + 2 * t) * LD + n0 + g;
  b0 = pack_pair(p[0], p[LD]);
  b1 = pack_pair(p[8 * LD], p[9 * LD]);
}

// The A fragment of a 16 x 16 block whose left and right 16 x 8 halves are accumulators
// lo and hi, rounded to bf16.
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&lo)[4],
                                         const float (&hi)[4]) {
  a[0] = pack_floats(lo[0], lo[1]);
  a[1] = pack_floats(lo[2], lo[3]);
  a[2] = pack_floats(hi[0], hi[1]);
  a[3] = pack_floats(hi[2], hi[3]);
}

// Rows [row0, row0 + ROWS) of a [seq, D] bf16 slice (rows `ld` elements apart; src and ld
// 16-byte aligned, as the launchers check) into a [ROWS][D + 8] shared tile in 16-byte
// pieces; rows past seq are zero (finite scores, zero values).
template <int D, int ROWS>
__device__ __forceinline__ void tc_load(bf16* dst, const bf16* __restrict__ src, int64_t ld,
                                        int row0, int seq) {
  constexpr int kChunks = D / 8, LD = D + 8, kRowStep = kThreads / kChunks;
  static_assert(kThreads % kChunks == 0 && ROWS % kRowStep == 0, "whole rows per pass");
  // Each thread keeps one 16-byte column c and walks rows kRowStep apart.
  const int c = (threadIdx.x % kChunks) * 8;
  const int r0 = threadIdx.x / kChunks;
  const bf16* p = src + (row0 + r0) * ld + c;
  const int64_t step = kRowStep * ld;
#pragma unroll
  for (int r = r0; r < ROWS; r += kRowStep, p += step) {
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (row0 + r < seq) val = *reinterpret_cast<const uint4*>(p);
    *reinterpret_cast<uint4*>(dst + r * LD + c) = val;
  }
}

// Sum or max over the four lanes (t = 0..3) that share a row of an accumulator.
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

template <int D> struct TcForward {
  static constexpr int kBr = 64, kBc = 64, LD = D + 8;  // 16 query rows per warp
  static constexpr size_t kSmem = static_cast<size_t>(kBr + 2 * kBc) * LD * sizeof(bf16);
};

template <int D>
__global__ void __launch_bounds__(kThreads)
    tc_forward_kernel(const bf16* __restrict__ q, AttnLayout lq, const bf16* __restrict__ k,
                      AttnLayout lk, const bf16* __restrict__ v, AttnLayout lv,
                      bf16* __restrict__ out, AttnLayout lout, float* __restrict__ lse, int seq,
                      int64_t heads, int tiles, float scale_log2) {
  using C = TcForward<D>;
  constexpr int kBr = C::kBr, kBc = C::kBc, LD = C::LD;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sK = sQ + kBr * LD;
  bf16* sV = sK + kBc * LD;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.x / tiles;
  const int q0 = static_cast<int>(blockIdx.x % tiles) * kBr;
  q += slice_offset(lq, bh, heads);
  k += slice_offset(lk, bh, heads);
  v += slice_offset(lv, bh, heads);
  out += slice_offset(lout, bh, heads);

  tc_load<D, kBr>(sQ, q, lq.row, q0, seq);
  __syncthreads();
  uint32_t qa[D / 16][4];  // this warp's 16 query rows, kept in registers for every K tile
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) load_a<LD>(qa[kk], sQ, warp * 16, kk * 16, g, t);

  // Rows g and g + 8 of the warp: r = 0, 1 below. Scores are in log2 units (scale_log2 =
  // scale * log2(e)) so exp2f does the exponentials.
  float o[D / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  for (int k0 = 0; k0 < seq; k0 += kBc) {
    __syncthreads();  // every warp is done with the previous K/V tile
    tc_load<D, kBc>(sK, k, lk.row, k0, seq);
    tc_load<D, kBc>(sV, v, lv.row, k0, seq);
    __syncthreads();

    float s[kBc / 8][4] = {};
#pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t b0, b1;
        load_b_nk<LD>(b0, b1, sK, nt * 8, kk * 16, g, t);
        mma_bf16(s[nt], qa[kk], b0, b1);
      }

    // Online softmax. Key 0 of each tile is real, so the new maximum is finite and
    // exp2(-inf - mx) = 0 clears the (empty) accumulator on the first tile.
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + nt * 8 + 2 * t + (e & 1);
        s[nt][e] = key < seq ? s[nt][e] * scale_log2 : -INFINITY;
        mx[e / 2] = fmaxf(mx[e / 2], s[nt][e]);
      }
    float alpha[2], row_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = quad_max(mx[r]);
      alpha[r] = exp2f(m[r] - mx[r]);
      m[r] = mx[r];
    }
#pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2f(s[nt][e] - m[e / 2]);
        row_sum[e / 2] += s[nt][e];
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = l[r] * alpha[r] + quad_sum(row_sum[r]);
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= alpha[0];
      o[dt][1] *= alpha[0];
      o[dt][2] *= alpha[1];
      o[dt][3] *= alpha[1];
    }

    // O += P V, P straight from the score registers.
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      uint32_t pa[4];
      acc_to_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        uint32_t b0, b1;
        load_b_kn<LD>(b0, b1, sV, kk * 16, dt * 8, g, t);
        mma_bf16(o[dt], pa, b0, b1);
      }
    }
  }

  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= seq) continue;
    const float inv = 1.f / l[r];
    bf16* dst = out + row[r] * lout.row + 2 * t;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
      *reinterpret_cast<uint32_t*>(dst + dt * 8) =
          pack_floats(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    if (t == 0) lse[bh * seq + row[r]] = (m[r] + log2f(l[r])) * kLn2;
  }
}

template <int D> struct TcBackward {
  static constexpr int LD = D + 8;
  // dK/dV pass: 64 keys per block (16 per warp) against query tiles of kQStep rows.
  // dQ pass: 64 queries per block (16 per warp) against key tiles of kKStep rows.
  // D = 128 takes half-size steps to keep the accumulators (2 x D / 2 floats per thread
  // in the dK/dV pass) plus the score tiles within the register file.
  static constexpr int kKeys = 64, kQStep = D == 64 ? 64 : 32;
  static constexpr int kQueries = 64, kKStep = D == 64 ? 64 : 32;
  static constexpr size_t kSmemDkDv =
      static_cast<size_t>(2 * kKeys + 2 * kQStep) * LD * sizeof(bf16) + 2 * kQStep * sizeof(float);
  static constexpr size_t kSmemDq = static_cast<size_t>(2 * kQueries + 2 * kKStep) * LD * sizeof(bf16);
};

// Each warp computes, for its 16 keys and each query tile, the transposed tiles
// S^T = K Q^T and dP^T = V dO^T, turns them into P^T and dS^T in registers and
// accumulates dV += P^T dO and dK += dS^T Q.
template <int D>
__global__ void __launch_bounds__(kThreads)
    tc_dkdv_kernel(const bf16* __restrict__ q, AttnLayout lq, const bf16* __restrict__ k,
                   AttnLayout lk, const bf16* __restrict__ v, AttnLayout lv,
                   const bf16* __restrict__ dout, AttnLayout ldout,
                   const float* __restrict__ lse, const float* __restrict__ delta,
                   bf16* __restrict__ dk, AttnLayout ldk, bf16* __restrict__ dv, AttnLayout ldv,
                   int seq, int64_t heads, int tiles, float scale, float scale_log2) {
  using C = TcBackward<D>;
  constexpr int LD = C::LD, kKeys = C::kKeys, kQStep = C::kQStep;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sK = reinterpret_cast<bf16*>(smem);
  bf16* sV = sK + kKeys * LD;
  bf16* sQ = sV + kKeys * LD;
  bf16* sdO = sQ + kQStep * LD;
  float* sLse = reinterpret_cast<float*>(sdO + kQStep * LD);  // log2 units
  float* sDelta = sLse + kQStep;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.x / tiles;
  const int k0 = static_cast<int>(blockIdx.x % tiles) * kKeys;
  q += slice_offset(lq, bh, heads);
  k += slice_offset(lk, bh, heads);
  v += slice_offset(lv, bh, heads);
  dout += slice_offset(ldout, bh, heads);
  dk += slice_offset(ldk, bh, heads);
  dv += slice_offset(ldv, bh, heads);
  const int kr = warp * 16;  // this warp's first key row within the tile

  tc_load<D, kKeys>(sK, k, lk.row, k0, seq);
  tc_load<D, kKeys>(sV, v, lv.row, k0, seq);
  float dk_acc[D / 8][4] = {}, dv_acc[D / 8][4] = {};

  for (int q0 = 0; q0 < seq; q0 += kQStep) {
    __syncthreads();  // the previous query tile's readers are done (and sK, sV are written)
    tc_load<D, kQStep>(sQ, q, lq.row, q0, seq);
    tc_load<D, kQStep>(sdO, dout, ldout.row, q0, seq);
    for (int i = threadIdx.x; i < kQStep; i += kThreads) {
      const bool live = q0 + i < seq;
      sLse[i] = live ? lse[bh * seq + q0 + i] * kLog2e : 0.f;
      sDelta[i] = live ? delta[bh * seq + q0 + i] : 0.f;
    }
    __syncthreads();

    // Rows: this warp's keys (g, g + 8); columns: the tile's queries.
    float st[kQStep / 8][4] = {}, dpt[kQStep / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ka[4], va[4];
      load_a<LD>(ka, sK, kr, kk * 16, g, t);
      load_a<LD>(va, sV, kr, kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < kQStep / 8; ++nt) {
        uint32_t b0, b1;
        load_b_nk<LD>(b0, b1, sQ, nt * 8, kk * 16, g, t);
        mma_bf16(st[nt], ka, b0, b1);
        load_b_nk<LD>(b0, b1, sdO, nt * 8, kk * 16, g, t);
        mma_bf16(dpt[nt], va, b0, b1);
      }
    }
    // P^T and dS^T in place. Queries past the end get P = 0 (their zero-filled rows would
    // otherwise add exp(-0) terms); keys past the end are computed but never stored.
#pragma unroll
    for (int nt = 0; nt < kQStep / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = nt * 8 + 2 * t + (e & 1);
        const float p = q0 + i < seq ? exp2f(st[nt][e] * scale_log2 - sLse[i]) : 0.f;
        st[nt][e] = p;
        dpt[nt][e] = p * (dpt[nt][e] - sDelta[i]);
      }
    // dV += P^T dO and dK += dS^T Q, reducing over the tile's queries.
#pragma unroll
    for (int kk = 0; kk < kQStep / 16; ++kk) {
      uint32_t pa[4], dsa[4];
      acc_to_a(pa, st[2 * kk], st[2 * kk + 1]);
      acc_to_a(dsa, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        uint32_t b0, b1;
        load_b_kn<LD>(b0, b1, sdO, kk * 16, dt * 8, g, t);
        mma_bf16(dv_acc[dt], pa, b0, b1);
        load_b_kn<LD>(b0, b1, sQ, kk * 16, dt * 8, g, t);
        mma_bf16(dk_acc[dt], dsa, b0, b1);
      }
    }
  }

  const int row[2] = {k0 + kr + g, k0 + kr + g + 8};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= seq) continue;
    bf16* dk_row = dk + row[r] * ldk.row + 2 * t;
    bf16* dv_row = dv + row[r] * ldv.row + 2 * t;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t*>(dk_row + dt * 8) =
          pack_floats(dk_acc[dt][2 * r] * scale, dk_acc[dt][2 * r + 1] * scale);
      *reinterpret_cast<uint32_t*>(dv_row + dt * 8) =
          pack_floats(dv_acc[dt][2 * r], dv_acc[dt][2 * r + 1]);
    }
  }
}

// Each warp computes, for its 16 queries and each key tile, S = Q K^T and dP = dO V^T,
// turns them into dS in registers and accumulates dQ += dS K.
template <int D>
__global__ void __launch_bounds__(kThreads)
    tc_dq_kernel(const bf16* __restrict__ q, AttnLayout lq, const bf16* __restrict__ k,
                 AttnLayout lk, const bf16* __restrict__ v, AttnLayout lv,
                 const bf16* __restrict__ dout, AttnLayout ldout, const float* __restrict__ lse,
                 const float* __restrict__ delta, bf16* __restrict__ dq, AttnLayout ldq, int seq,
                 int64_t heads, int tiles, float scale, float scale_log2) {
  using C = TcBackward<D>;
  constexpr int LD = C::LD, kQueries = C::kQueries, kKStep = C::kKStep;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sdO = sQ + kQueries * LD;
  bf16* sK = sdO + kQueries * LD;
  bf16* sV = sK + kKStep * LD;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.x / tiles;
  const int q0 = static_cast<int>(blockIdx.x % tiles) * kQueries;
  q += slice_offset(lq, bh, heads);
  k += slice_offset(lk, bh, heads);
  v += slice_offset(lv, bh, heads);
  dout += slice_offset(ldout, bh, heads);
  dq += slice_offset(ldq, bh, heads);
  const int qr = warp * 16;  // this warp's first query row within the tile

  tc_load<D, kQueries>(sQ, q, lq.row, q0, seq);
  tc_load<D, kQueries>(sdO, dout, ldout.row, q0, seq);
  float lse2[2], dl[2];  // rows g and g + 8
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = q0 + qr + g + 8 * r;
    lse2[r] = row < seq ? lse[bh * seq + row] * kLog2e : 0.f;
    dl[r] = row < seq ? delta[bh * seq + row] : 0.f;
  }
  float dq_acc[D / 8][4] = {};

  for (int k0 = 0; k0 < seq; k0 += kKStep) {
    __syncthreads();  // the previous key tile's readers are done (and sQ, sdO are written)
    tc_load<D, kKStep>(sK, k, lk.row, k0, seq);
    tc_load<D, kKStep>(sV, v, lv.row, k0, seq);
    __syncthreads();

    float s[kKStep / 8][4] = {}, dp[kKStep / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4], oa[4];
      load_a<LD>(qa, sQ, qr, kk * 16, g, t);
      load_a<LD>(oa, sdO, qr, kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < kKStep / 8; ++nt) {
        uint32_t b0, b1;
        load_b_nk<LD>(b0, b1, sK, nt * 8, kk * 16, g, t);
        mma_bf16(s[nt], qa, b0, b1);
        load_b_nk<LD>(b0, b1, sV, nt * 8, kk * 16, g, t);
        mma_bf16(dp[nt], oa, b0, b1);
      }
    }
    // dS in place of S; keys past the end get P = 0.
#pragma unroll
    for (int nt = 0; nt < kKStep / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + nt * 8 + 2 * t + (e & 1);
        const float p = key < seq ? exp2f(s[nt][e] * scale_log2 - lse2[e / 2]) : 0.f;
        s[nt][e] = p * (dp[nt][e] - dl[e / 2]);
      }
#pragma unroll
    for (int kk = 0; kk < kKStep / 16; ++kk) {
      uint32_t dsa[4];
      acc_to_a(dsa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        uint32_t b0, b1;
        load_b_kn<LD>(b0, b1, sK, kk * 16, dt * 8, g, t);
        mma_bf16(dq_acc[dt], dsa, b0, b1);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = q0 + qr + g + 8 * r;
    if (row >= seq) continue;
    bf16* dst = dq + row * ldq.row + 2 * t;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
      *reinterpret_cast<uint32_t*>(dst + dt * 8) =
          pack_floats(dq_acc[dt][2 * r] * scale, dq_acc[dt][2 * r + 1] * scale);
  }
}

// ==== launchers ========================================================================

// mma.sync with bf16 needs sm_80 or newer.
cudaError_t require_tensor_cores() {
  int device = 0, major = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  if (cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
      e != cudaSuccess)
    return e;
  return major >= 8 ? cudaSuccess : cudaErrorNotSupported;
}

// One operand of a launcher: base pointer and strides.
struct Operand {
  const void* data;
  AttnLayout layout;
};

// The bf16 kernels read inputs 16 bytes at a time and write outputs in bf16 pairs: an
// operand off its boundary (a base pointer or a stride) must fail in the launcher with a
// status, not as a misaligned-address fault in the kernel.
bool all_supported(DType dtype, std::initializer_list<Operand> operands) {
  for (const Operand& o : operands)
    if (!attention_operand_supported(dtype, o.data, o.layout)) return false;
  return true;
}

// Opts a kernel into more than the default 48 KiB of dynamic shared memory when it needs it.
template <typename Kernel>
cudaError_t set_smem(Kernel* kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

// Grids are 1-D (tile-major within each slice, so neighbouring blocks share K/V in L2).
bool grid_fits(int64_t tiles, int64_t bh) { return tiles * bh <= INT_MAX; }

bool supported_dtype(DType dtype) { return dtype == DType::F32 || dtype == DType::BF16; }

// The checks both launchers share, before the empty case returns.
bool valid_sizes(DType dtype, int64_t bh, int64_t heads, int64_t seq, int64_t head_dim) {
  return supported_dtype(dtype) && attention_head_dim_supported(head_dim) && bh >= 0 &&
         heads >= 1 && bh % heads == 0 && seq >= 0 && seq <= INT_MAX;
}

struct ForwardArgs {
  Operand q, k, v;
  void* out;
  AttnLayout lout;
  float* lse;
  int64_t bh, heads;
  int seq;
  float scale;
};

template <int D>
cudaError_t forward_for(DType dtype, const ForwardArgs& a, cudaStream_t stream) {
  if (dtype == DType::F32) {
    const int64_t tiles = ceil_div(a.seq, Simt<D>::T);
    if (!grid_fits(tiles, a.bh)) return cudaErrorInvalidValue;
    simt_forward_kernel<D><<<static_cast<unsigned>(tiles * a.bh), kThreads, 0, stream>>>(
        static_cast<const float*>(a.q.data), a.q.layout, static_cast<const float*>(a.k.data),
        a.k.layout, static_cast<const float*>(a.v.data), a.v.layout, static_cast<float*>(a.out),
        a.lout, a.lse, a.seq, a.heads, static_cast<int>(tiles), a.scale);
    return cudaGetLastError();
  }
  using C = TcForward<D>;
  if (cudaError_t e = require_tensor_cores(); e != cudaSuccess) return e;
  if (!all_supported(dtype, {a.q, a.k, a.v, {a.out, a.lout}})) return cudaErrorMisalignedAddress;
  const int64_t tiles = ceil_div(a.seq, C::kBr);
  if (!grid_fits(tiles, a.bh)) return cudaErrorInvalidValue;
  if (cudaError_t e = set_smem(tc_forward_kernel<D>, C::kSmem); e != cudaSuccess) return e;
  tc_forward_kernel<D><<<static_cast<unsigned>(tiles * a.bh), kThreads, C::kSmem, stream>>>(
      static_cast<const bf16*>(a.q.data), a.q.layout, static_cast<const bf16*>(a.k.data),
      a.k.layout, static_cast<const bf16*>(a.v.data), a.v.layout, static_cast<bf16*>(a.out),
      a.lout, a.lse, a.seq, a.heads, static_cast<int>(tiles), a.scale * kLog2e);
  return cudaGetLastError();
}

struct BackwardArgs {
  Operand q, k, v, out, dout;
  const float* lse;
  float* delta;
  void *dq, *dk, *dv;
  AttnLayout ldq, ldk, ldv;
  int64_t bh, heads;
  int seq, head_dim;
  float scale;
};

constexpr int kDeltaBlock = 256;  // 8 rows (warps) per block

// delta = rowsum(dout * out) for every one of the bh * seq rows.
template <typename T>
cudaError_t launch_delta(const BackwardArgs& a, cudaStream_t stream) {
  const int64_t rows = a.bh * a.seq;
  delta_kernel<<<static_cast<unsigned>(ceil_div(rows, kDeltaBlock / 32)), kDeltaBlock, 0,
                 stream>>>(static_cast<const T*>(a.out.data), a.out.layout,
                           static_cast<const T*>(a.dout.data), a.dout.layout, a.delta, rows,
                           a.seq, a.heads, a.head_dim);
  return cudaGetLastError();
}

// Everything is checked before the first launch (the delta pass included), so a refused
// call launches nothing.
template <int D>
cudaError_t backward_for(DType dtype, const BackwardArgs& a, cudaStream_t stream) {
  if (ceil_div(a.bh * a.seq, kDeltaBlock / 32) > INT_MAX) return cudaErrorInvalidValue;
  if (dtype == DType::F32) {
    const auto* fq = static_cast<const float*>(a.q.data);
    const auto* fk = static_cast<const float*>(a.k.data);
    const auto* fv = static_cast<const float*>(a.v.data);
    const auto* fo = static_cast<const float*>(a.dout.data);
    const int64_t tiles = ceil_div(a.seq, Simt<D>::T);
    if (!grid_fits(tiles, a.bh)) return cudaErrorInvalidValue;
    if (cudaError_t e = launch_delta<float>(a, stream); e != cudaSuccess) return e;
    const unsigned grid = static_cast<unsigned>(tiles * a.bh);
    simt_dkdv_kernel<D><<<grid, kThreads, 0, stream>>>(
        fq, a.q.layout, fk, a.k.layout, fv, a.v.layout, fo, a.dout.layout, a.lse, a.delta,
        static_cast<float*>(a.dk), a.ldk, static_cast<float*>(a.dv), a.ldv, a.seq, a.heads,
        static_cast<int>(tiles), a.scale);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
    simt_dq_kernel<D><<<grid, kThreads, 0, stream>>>(
        fq, a.q.layout, fk, a.k.layout, fv, a.v.layout, fo, a.dout.layout, a.lse, a.delta,
        static_cast<float*>(a.dq), a.ldq, a.seq, a.heads, static_cast<int>(tiles), a.scale);
    return cudaGetLastError();
  }
  using C = TcBackward<D>;
  if (cudaError_t e = require_tensor_cores(); e != cudaSuccess) return e;
  if (!all_supported(dtype, {a.q, a.k, a.v, a.out, a.dout, {a.dq, a.ldq}, {a.dk, a.ldk},
                             {a.dv, a.ldv}}))
    return cudaErrorMisalignedAddress;
  const auto* bq = static_cast<const bf16*>(a.q.data);
  const auto* bk = static_cast<const bf16*>(a.k.data);
  const auto* bv = static_cast<const bf16*>(a.v.data);
  const auto* bo = static_cast<const bf16*>(a.dout.data);
  const int64_t key_tiles = ceil_div(a.seq, C::kKeys), query_tiles = ceil_div(a.seq, C::kQueries);
  if (!grid_fits(key_tiles, a.bh) || !grid_fits(query_tiles, a.bh)) return cudaErrorInvalidValue;
  if (cudaError_t e = set_smem(tc_dkdv_kernel<D>, C::kSmemDkDv); e != cudaSuccess) return e;
  if (cudaError_t e = set_smem(tc_dq_kernel<D>, C::kSmemDq); e != cudaSuccess) return e;
  if (cudaError_t e = launch_delta<bf16>(a, stream); e != cudaSuccess) return e;
  const float scale_log2 = a.scale * kLog2e;
  tc_dkdv_kernel<D><<<static_cast<unsigned>(key_tiles * a.bh), kThreads, C::kSmemDkDv, stream>>>(
      bq, a.q.layout, bk, a.k.layout, bv, a.v.layout, bo, a.dout.layout, a.lse, a.delta,
      static_cast<bf16*>(a.dk), a.ldk, static_cast<bf16*>(a.dv), a.ldv, a.seq, a.heads,
      static_cast<int>(key_tiles), a.scale, scale_log2);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  tc_dq_kernel<D><<<static_cast<unsigned>(query_tiles * a.bh), kThreads, C::kSmemDq, stream>>>(
      bq, a.q.layout, bk, a.k.layout, bv, a.v.layout, bo, a.dout.layout, a.lse, a.delta,
      static_cast<bf16*>(a.dq), a.ldq, a.seq, a.heads, static_cast<int>(query_tiles), a.scale,
      scale_log2);
  return cudaGetLastError();
}

}  // namespace

cudaError_t attention_forward(DType dtype, const void* q, AttnLayout q_layout, const void* k,
                              AttnLayout k_layout, const void* v, AttnLayout v_layout, void* out,
                              AttnLayout out_layout, float* lse, int64_t bh, int64_t heads,
                              int64_t seq, int64_t head_dim, float scale, cudaStream_t stream) {
  if (!valid_sizes(dtype, bh, heads, seq, head_dim)) return cudaErrorInvalidValue;
  if (bh == 0 || seq == 0) return cudaSuccess;
  const ForwardArgs a{{q, q_layout}, {k, k_layout}, {v, v_layout}, out, out_layout, lse,
                      bh, heads, static_cast<int>(seq), scale};
  return head_dim == 64 ? forward_for<64>(dtype, a, stream) : forward_for<128>(dtype, a, stream);
}

cudaError_t attention_backward(DType dtype, const void* q, AttnLayout q_layout, const void* k,
                               AttnLayout k_layout, const void* v, AttnLayout v_layout,
                               const void* out, AttnLayout out_layout, const void* dout,
                               AttnLayout dout_layout, const float* lse, float* delta, void* dq,
                               AttnLayout dq_layout, void* dk, AttnLayout dk_layout, void* dv,
                               AttnLayout dv_layout, int64_t bh, int64_t heads, int64_t seq,
                               int64_t head_dim, float scale, cudaStream_t stream) {
  if (!valid_sizes(dtype, bh, heads, seq, head_dim)) return cudaErrorInvalidValue;
  if (bh == 0 || seq == 0) return cudaSuccess;
  const BackwardArgs a{{q, q_layout},
                       {k, k_layout},
                       {v, v_layout},
                       {out, out_layout},
                       {dout, dout_layout},
                       lse,
                       delta,
                       dq,
                       dk,
                       dv,
                       dq_layout,
                       dk_layout,
                       dv_layout,
                       bh,
                       heads,
                       static_cast<int>(seq),
                       static_cast<int>(head_dim),
                       scale};
  return head_dim == 64 ? backward_for<64>(dtype, a, stream) : backward_for<128>(dtype, a, stream);
}

}  // namespace vimoe::kernels
