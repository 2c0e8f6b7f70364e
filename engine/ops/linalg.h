// Matrix products: matmul (numpy semantics, broadcast batch dims) and linear (the
// nn.Linear convention). CPU reference: engine/cpu/linalg.cpp (OpenBLAS); CUDA:
// kernels/gemm.cu (cuBLAS strided-batched GEMM, and cuBLASLt with epilogues for linear's
// bias; f32 accumulation, no TF32).
//
// Operands must share one floating dtype (no implicit promotion: convert with .to()) and
// one device. Operands reach the GEMM without a copy when their last two dims are row-major
// (contiguous rows, any row stride, e.g. a row slice) or column-major (e.g. w.t(),
// x.transpose(-1, -2)), the latter with a transpose flag; other layouts (a column slice with
// a step, an expanded matrix dim) are copied first. Broadcast batch dims are never
// materialised: they become a batch stride of 0.
#pragma once
#include "engine/tensor.h"

namespace vimoe {

// a [..., M, K] @ b [..., K, N] -> [..., M, N], the batch dims broadcast like numpy.
// A 1-D operand is handled like numpy.matmul: a [K] acts as [1, K] and b [K] as [K, 1],
// and the added dim is dropped from the result (so 1-D @ 1-D gives a 0-d tensor).
// Backward: dA = dC @ B^T, dB = A^T @ dC, each summed over the dims its operand broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);

// x [..., in] @ weight[out, in]^T + bias[out] -> [..., out]; bias may be undefined.
// One GEMM over the flattened leading dims of x. On CUDA (f32, bf16, f16) the bias is added
// by a cuBLASLt epilogue, and the backward's weight-gradient GEMM also writes the bias
// gradient (the column sums of the upstream gradient) when both are wanted; where cuBLASLt
// declines (f64, an operand not 16-byte aligned, no algorithm), and on the CPU, the bias is
// written into the output first and the GEMM accumulates onto it, and the bias gradient is
// a column sum. Either way the bias is added in the accumulation type before the output's
// one rounding. Under autocast x, weight and bias are all lowered, so they share a dtype.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

namespace detail {

// How matmul hands the last two dims of a tensor to the GEMM (exposed for tests).
struct GemmOperand {
  bool copy = false;        // neither row- nor column-major: copied to contiguous first
  bool transposed = false;  // column-major: passed as the transpose of a row-major matrix
  int64_t ld = 0;           // leading dimension in elements (meaningless when copy)
};
GemmOperand gemm_operand(const Tensor& t);

}  // namespace detail
}  // namespace vimoe
