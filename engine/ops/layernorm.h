// LayerNorm over the last dimension, as in torch.nn.functional.layer_norm with
// normalized_shape = [D]:
//   y = (x - mean) / sqrt(var + eps) * weight + bias,  mean and var (biased) over each row.
// x is [..., D] (any layout) in f32, bf16, f16 or f64; weight and bias are [D] of x's dtype
// and device, and either may be undefined (no scale / no shift). Statistics are computed in
// f32 (f64 for f64 input; the CPU reference works in double throughout). Differentiable in
// x, weight and bias. CPU reference: engine/cpu/layernorm.cpp; CUDA: kernels/layernorm.cu.
#pragma once
#include "engine/tensor.h"

namespace vimoe {

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);

}  // namespace vimoe
