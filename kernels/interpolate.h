// CUDA bilinear resampling of contiguous NCHW planes (kernels/interpolate_math.h: PyTorch's
// align_corners=False). Element types F32, BF16, F16 (math in f32) and F64 (math in f64).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// y [planes, out_h, out_w] from x [planes, in_h, in_w], planes = N * C.
cudaError_t bilinear_forward(DType dtype, const void* x, void* y, int64_t planes, int64_t in_h, int64_t in_w,
                             int64_t out_h, int64_t out_w, cudaStream_t stream);

// dx [planes, in_h, in_w] from dy [planes, out_h, out_w]: each input element gathers the
// outputs that read it in a fixed order (no atomics), so the result is reproducible.
cudaError_t bilinear_backward(DType dtype, const void* dy, void* dx, int64_t planes, int64_t in_h, int64_t in_w,
                              int64_t out_h, int64_t out_w, cudaStream_t stream);

}  // namespace vimoe::kernels
