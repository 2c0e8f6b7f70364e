// 2-d convolution on the GPU through cuDNN (legacy convolution API), NCHW, forward and the
// input and weight gradients (the bias add and its gradient are a broadcast add and a sum,
// which the engine's own ops do in every dtype). Plain C++ (raw pointers, sizes, a handle; the handle carries the stream),
// so a test or a port can call it without the engine.
//
// Contract:
//   - x [n, c_in, h, w], w [c_out, c_in / groups, kh, kw], y [n, c_out, oh, ow], all contiguous and of one dtype: f32, bf16, f16 or f64.
//   - Accumulation: f32 for f32 / bf16 / f16, f64 for f64. f32 never uses TF32 (the math type
//     is CUDNN_FMA_MATH), so it matches the CPU reference to f32 rounding; bf16 / f16 use
//     tensor cores.
//   - Deterministic: only algorithms cuDNN reports as deterministic are chosen (the
//     heuristic's fastest such one; the atomics-based backward algorithms are skipped), so a
//     run repeats bit for bit.
//   - Scratch comes from `workspace(bytes)`, called at most once per launch with the
//     chosen algorithm's size; the memory must stay valid until the work on the handle's
//     stream has run (a stream-ordered allocator's block freed after the call is).
//   - Returns the first cuDNN status that is not CUDNN_STATUS_SUCCESS (CUDNN_STATUS_NOT_
//     SUPPORTED when no deterministic algorithm exists for the shape and dtype).
#pragma once
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <functional>

#include "kernels/dtype.h"

namespace vimoe::kernels {

struct Conv2dDims {
  int64_t n, c_in, h, w;
  int64_t c_out, kh, kw;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  int64_t oh, ow;
};

using WorkspaceFn = std::function<void*(size_t bytes)>;

// y = conv(x, w) (overwritten).
cudnnStatus_t conv2d_forward(cudnnHandle_t handle, DType dtype, const Conv2dDims& d, const void* x, const void* w,
                             void* y, const WorkspaceFn& workspace);
// dx = the input gradient of y for dy (overwritten, not accumulated).
cudnnStatus_t conv2d_backward_data(cudnnHandle_t handle, DType dtype, const Conv2dDims& d, const void* dy,
                                   const void* w, void* dx, const WorkspaceFn& workspace);
// dw = the weight gradient (overwritten).
cudnnStatus_t conv2d_backward_filter(cudnnHandle_t handle, DType dtype, const Conv2dDims& d, const void* dy,
                                     const void* x, void* dw, const WorkspaceFn& workspace);

}  // namespace vimoe::kernels
