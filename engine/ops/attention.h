// Fused (non-causal) scaled-dot-product attention, the Vision Transformer's self-attention:
//   out = softmax(scale * q k^T) v   over the last two axes of q, k, v [B, H, S, Dh].
// The forward saves only the output and the per-row log-sum-exp (never the S x S matrix);
// the backward recomputes the probabilities from them (FlashAttention-2).
// CPU reference: engine/cpu/attention.cpp (f32, f64, bf16, f16; math in double).
// CUDA: kernels/attention.cu (f32 and bf16; head dim 64 or 128).
#pragma once
#include "engine/tensor.h"

namespace vimoe {

// q, k, v: [B, H, S, Dh] of one floating dtype on one device, any strides (on CUDA the fused
// kernels read views in place when the last dim is contiguous; see kernels/attention.h).
// Returns a [B, H, S, Dh] tensor of that dtype, differentiable in q, k and v: contiguous on
// the CPU; from the fused CUDA kernels a view of [B, S, H, Dh] storage, so that merging the
// heads back (out.permute({0, 2, 1, 3}).reshape({B, S, H * Dh})) costs no copy.
// On CUDA, what the fused kernels do not cover (head dims other than 64 and 128, f16) takes
// attention_composed() instead, like PyTorch's math backend.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
// scale = 1 / sqrt(Dh).
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v);

// The unfused path: scores = scale * q k^T through matmul, softmax, then @ v. Materialises
// the S x S scores (and keeps them for the backward); any head dim, any device.
Tensor attention_composed(const Tensor& q, const Tensor& k, const Tensor& v, double scale);

struct AttentionOutput {
  Tensor out;  // as attention() (differentiable)
  Tensor lse;  // [B, H, S]: log(sum_j exp(scale * q_i . k_j)); f64 for f64 inputs, else f32
};
// attention() that also returns the log-sum-exp it saves for the backward.
AttentionOutput attention_with_lse(const Tensor& q, const Tensor& k, const Tensor& v,
                                   double scale);

struct AttentionGrads {
  Tensor dq, dk, dv;  // contiguous, shaped and typed like q
};
// The backward on its own (not recorded): gradients of sum(out * dout) given the forward's
// out and lse. This is what attention()'s autograd node runs.
AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, const Tensor& dout,
                                  double scale);

}  // namespace vimoe
