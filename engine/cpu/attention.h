// CPU reference for fused (non-causal) scaled-dot-product attention, computed in double
// one (batch, head) slice at a time: the slice's matrix products in double through the BLAS
// (cpu::gemm), softmax and the elementwise steps in plain loops. It is the ground truth the
// CUDA kernels in kernels/attention.cu are tested against. Every tensor is contiguous
// [B, H, S, Dh] (lse, delta: [B, H, S]).
#pragma once
#include "engine/tensor.h"

namespace vimoe::cpu {

// out = softmax(scale * q k^T) v and lse = log(sum_j exp(scale * q_i . k_j)) per row.
// q, k, v, out share one floating dtype (half types are read as f32, math in double);
// lse is f64 for f64 inputs and f32 otherwise.
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                       const Tensor& lse, double scale);

// Gradients of attention from the saved output and log-sum-exp, the standard way:
//   P = exp(scale q k^T - lse), dV = P^T dO, dP = dO V^T, D_i = sum_d dO_id O_id,
//   dS = P * (dP - D), dQ = scale dS K, dK = scale dS^T Q.
// dq, dk, dv are written (same dtype and shape as q).
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& dout, const Tensor& lse, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv, double scale);

}  // namespace vimoe::cpu
