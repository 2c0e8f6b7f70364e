// CUDA LayerNorm over the last dimension of a contiguous [rows, cols] tensor.
//
// Element types: F32, BF16, F16 (statistics and arithmetic in f32) and F64 (in f64). The
// statistics mean and rstd = 1 / sqrt(var + eps) (biased variance) are kept per row in the
// accumulation type, "acc" below: f32, or f64 for F64. weight and bias are [cols] in the
// element type and may be null (no scale, no shift).
//
// Rows that fit in registers (cols a whole number of 16-byte packs, at most 1024 elements,
// 512 for f64; 16-byte aligned pointers) take a warp-per-row path with 128-bit loads that
// reads each input once; everything else takes a block-per-row path.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// y = (x - mean) * rstd * weight + bias, row by row; mean and rstd ([rows], acc) are written.
cudaError_t layer_norm_forward(DType dtype, const void* x, const void* weight, const void* bias,
                               void* y, void* mean, void* rstd, int64_t rows, int64_t cols,
                               double eps, cudaStream_t stream);

// Acc elements of scratch that layer_norm_backward needs when dweight or dbias is wanted.
int64_t layer_norm_backward_workspace(int64_t rows, int64_t cols);

// From dy and the forward's x, weight, mean and rstd:
//   dx      = rstd * (dy*w - mean_c(dy*w) - xhat * mean_c(dy*w * xhat)),  xhat = (x - mean) * rstd
//   dweight = sum_r dy * xhat,  dbias = sum_r dy
// dx, dweight and dbias may each be null to skip it. The column sums go through per-block
// partials in `workspace` and a fixed-order second pass (no atomics): results are bitwise
// reproducible on a given GPU. Requires rows >= 1 when dweight or dbias is wanted.
cudaError_t layer_norm_backward(DType dtype, const void* dy, const void* x, const void* weight,
                                const void* mean, const void* rstd, void* dx, void* dweight,
                                void* dbias, void* workspace, int64_t rows, int64_t cols,
                                cudaStream_t stream);

}  // namespace vimoe::kernels
