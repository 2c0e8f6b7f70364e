// CPU reference for GELU and bias + GELU (see engine/ops/gelu.h). The scalar formula is the
// one the CUDA kernels use (kernels/gelu_math.h), evaluated in the same compute type.
#pragma once
#include "engine/tensor.h"

namespace vimoe::cpu {

// out = gelu(x + bias[col]) for contiguous x and out of rows * cols elements; bias is a
// contiguous [cols] tensor of x's dtype, or undefined.
void gelu_forward(const Tensor& x, const Tensor& bias, const Tensor& out, int64_t rows,
                  int64_t cols);

// dx = dy * gelu'(x + bias[col]); dbias (optional; needs bias) = sum over rows of dx, summed
// in double from dx before it is rounded to the element type.
void gelu_backward(const Tensor& dy, const Tensor& x, const Tensor& bias, const Tensor& dx,
                   const Tensor& dbias, int64_t rows, int64_t cols);

}  // namespace vimoe::cpu
