// Fused (non-causal) scaled-dot-product attention on the GPU, FlashAttention-2 style: the
// S x S score matrix never reaches global memory. The forward keeps only the output and
// the per-row log-sum-exp; the backward recomputes the probabilities from them.
//
// Two implementations share the launchers below, selected by dtype:
//   BF16: tensor cores (mma.sync m16n8k16, f32 accumulation), 64-row tiles, sm_80 or newer.
//   F32:  CUDA cores, f32 throughout; a readable tiled version that the tests hold to tight
//         tolerances against the CPU reference.
// The math matches engine/cpu/attention.cpp.
//
// Layout of q, k, v, out, dout, dq, dk, dv. Each is `bh` = batch * heads slices of
// [seq, head_dim] addressed through a base pointer and an AttnLayout: element (slice s,
// row i, feature d) lives at
//   base + (s / heads) * batch + (s % heads) * head + i * row + d      (in elements),
// so the head_dim axis is always contiguous (stride 1) while the other three strides are
// free: a [B, H, S, Dh] tensor of any strides with a unit last stride is passed as
// {stride(0), stride(1), stride(2)}, e.g. the heads of a [B, T, H * Dh] projection seen as
// [B, H, T, Dh] have {T * H * Dh, Dh, H * Dh}. Strides may be 0 (a broadcast input). The
// outputs (out, dq, dk, dv) must not overlap each other or any input.
// lse and delta are always contiguous [bh, seq] f32.
//
// Alignment (BF16 only; the F32 kernels read and write single elements): rows are moved in
// 16-byte pieces and results stored in bf16 pairs, so every base pointer (outputs included)
// must be 16-byte aligned and every batch, head and row stride a multiple of 8 elements
// (16 bytes). Otherwise the launcher returns cudaErrorMisalignedAddress and launches
// nothing. attention_operand_supported() states the rule for one operand.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// Head dims the kernels are compiled for; launchers return cudaErrorInvalidValue otherwise.
constexpr bool attention_head_dim_supported(int64_t head_dim) {
  return head_dim == 64 || head_dim == 128;
}

// Element strides of one operand's batch, head and row axes (the head_dim axis: stride 1).
struct AttnLayout {
  int64_t batch = 0, head = 0, row = 0;
};

// The layout of a contiguous [batch, heads, seq, head_dim] buffer.
constexpr AttnLayout attention_contiguous_layout(int64_t heads, int64_t seq, int64_t head_dim) {
  return {heads * seq * head_dim, seq * head_dim, head_dim};
}

// Whether an operand at `data` with `layout` meets the alignment rule above for `dtype`
// (always true for F32).
inline bool attention_operand_supported(DType dtype, const void* data, AttnLayout layout) {
  if (dtype != DType::BF16) return true;
  return reinterpret_cast<uintptr_t>(data) % 16 == 0 && layout.batch % 8 == 0 &&
         layout.head % 8 == 0 && layout.row % 8 == 0;
}

// out = softmax(scale * q k^T) v for each of `bh` slices, `heads` of them per batch entry
// (bh a multiple of heads >= 1). q, k, v, out: see the layout above, of `dtype` (F32 or BF16).
// lse: [bh, seq] f32, the natural-log log-sum-exp of each row's scaled scores.
cudaError_t attention_forward(DType dtype, const void* q, AttnLayout q_layout, const void* k,
                              AttnLayout k_layout, const void* v, AttnLayout v_layout, void* out,
                              AttnLayout out_layout, float* lse, int64_t bh, int64_t heads,
                              int64_t seq, int64_t head_dim, float scale, cudaStream_t stream);

// dq, dk, dv (each through its own layout) from the forward's out and lse and the output
// gradient dout. delta: workspace of bh * seq floats (receives rowsum(dout * out)).
// dk and dv come from one pass over query tiles per key tile, dq from a second pass over
// key tiles per query tile: every gradient element is written once by one thread, so the
// result is deterministic (no atomics), at the price of recomputing the scores twice.
cudaError_t attention_backward(DType dtype, const void* q, AttnLayout q_layout, const void* k,
                               AttnLayout k_layout, const void* v, AttnLayout v_layout,
                               const void* out, AttnLayout out_layout, const void* dout,
                               AttnLayout dout_layout, const float* lse, float* delta, void* dq,
                               AttnLayout dq_layout, void* dk, AttnLayout dk_layout, void* dv,
                               AttnLayout dv_layout, int64_t bh, int64_t heads, int64_t seq,
                               int64_t head_dim, float scale, cudaStream_t stream);

}  // namespace vimoe::kernels
