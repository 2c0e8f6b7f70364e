// GELU, exact erf form (not the tanh approximation), as torch.nn.functional.gelu with
// approximate='none':  gelu(x) = 0.5 x (1 + erf(x / sqrt 2)).
// bias_gelu fuses the bias add of the preceding linear layer: x is [..., N], bias is [N] of
// x's dtype and device, and the result is gelu(x + bias) with the sum formed in the compute
// type (f32 for f32/bf16/f16, f64 for f64) rather than rounded first. Both accept any layout
// and are differentiable (in x and bias); dbias is a deterministic sum over rows.
// CPU reference: engine/cpu/gelu.cpp; CUDA: kernels/gelu.cu; scalar math: kernels/gelu_math.h.
#pragma once
#include "engine/tensor.h"

namespace vimoe {

Tensor gelu(const Tensor& x);
Tensor bias_gelu(const Tensor& x, const Tensor& bias);

}  // namespace vimoe
