// CUDA GELU (exact erf form, kernels/gelu_math.h), optionally fused with a bias add over the
// last dimension of a contiguous [rows, cols] tensor. Element types F32, BF16, F16 (math in
// f32) and F64 (math in f64); x + bias is formed in the compute type, not rounded first.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// out[r, c] = gelu(x[r, c] + bias[c]); bias ([cols]) may be null.
cudaError_t gelu_forward(DType dtype, const void* x, const void* bias, void* out, int64_t rows,
                         int64_t cols, cudaStream_t stream);

// Elements of the accumulation type (f32, or f64 for F64) of scratch that gelu_backward
// needs when dbias is wanted.
int64_t gelu_backward_workspace(int64_t rows, int64_t cols);

// dx[r, c] = dy[r, c] * gelu'(x[r, c] + bias[c]) (bias may be null). With dbias (needs bias)
// also dbias[c] = sum_r dx[r, c], summed from dx before it is rounded to the element type,
// through per-block partials in `workspace` and a fixed-order second pass (no atomics): the
// result is bitwise reproducible on a given GPU.
cudaError_t gelu_backward(DType dtype, const void* dy, const void* x, const void* bias, void* dx,
                          void* dbias, void* workspace, int64_t rows, int64_t cols,
                          cudaStream_t stream);

}  // namespace vimoe::kernels
