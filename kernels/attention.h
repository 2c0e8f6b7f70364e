// Fused (non-causal) scaled-dot-product attention on the GPU, FlashAttention-2 style: the
// S x S score matrix never reaches global memory. The forward keeps only the output and
// the per-row log-sum-exp; the backward recomputes the probabilities from them.
//
// Two implementations share the launchers below, selected by dtype:
//   BF16: tensor cores (mma.sync m16n8k16, f32 accumulation), 64-row tiles, sm_80 or newer.
//   F32:  CUDA cores, f32 throughout; a readable tiled version that the tests hold to tight
//         tolerances against the CPU reference.
// The math matches engine/cpu/attention.cpp.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// Head dims the kernels are compiled for; launchers return cudaErrorInvalidValue otherwise.
constexpr bool attention_head_dim_supported(int64_t head_dim) {
  return head_dim == 64 || head_dim == 128;
}

// out = softmax(scale * q k^T) v for each of `bh` (batch * head) slices.
// q, k, v, out: contiguous [bh, seq, head_dim] of `dtype` (F32 or BF16), 16-byte aligned.
// lse: [bh, seq] f32, the natural-log log-sum-exp of each row's scaled scores.
cudaError_t attention_forward(DType dtype, const void* q, const void* k, const void* v, void* out,
                              float* lse, int64_t bh, int64_t seq, int64_t head_dim, float scale,
                              cudaStream_t stream);

// dq, dk, dv (same layout as q) from the forward's out and lse and the output gradient dout.
// delta: workspace of bh * seq floats (receives rowsum(dout * out)).
// dk and dv come from one pass over query tiles per key tile, dq from a second pass over
// key tiles per query tile: every gradient element is written once by one thread, so the
// result is deterministic (no atomics), at the price of recomputing the scores twice.
cudaError_t attention_backward(DType dtype, const void* q, const void* k, const void* v,
                               const void* out, const void* dout, const float* lse, float* delta,
                               void* dq, void* dk, void* dv, int64_t bh, int64_t seq,
                               int64_t head_dim, float scale, cudaStream_t stream);

}  // namespace vimoe::kernels
