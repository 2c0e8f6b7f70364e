// CPU reference for LayerNorm over the last dimension (see engine/ops/layernorm.h): plain
// loops with double arithmetic, the ground truth the CUDA kernels are tested against.
#pragma once
#include "engine/tensor.h"

namespace vimoe::cpu {

// x and y: contiguous, rows * cols elements, one dtype; weight, bias: contiguous [cols] of
// that dtype, or undefined. mean, rstd: contiguous [rows], f64 for f64 x and f32 otherwise.
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                        const Tensor& y, const Tensor& mean, const Tensor& rstd, int64_t rows,
                        int64_t cols);

// Gradients from dy (laid out like x) and the forward's saved x, weight, mean and rstd.
// dx, dweight and dbias may each be undefined to skip it.
void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                         const Tensor& mean, const Tensor& rstd, const Tensor& dx,
                         const Tensor& dweight, const Tensor& dbias, int64_t rows, int64_t cols);

}  // namespace vimoe::cpu
