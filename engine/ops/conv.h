// 2-d convolution, as torch.nn.functional.conv2d: NCHW activations, weights
// [C_out, C_in / groups, kH, kW], an optional bias [C_out], per-axis stride, zero padding and
// dilation, and groups (groups == C_in == C_out is the depthwise convolution ConvNeXt uses).
//   y[n, o, i, j] = bias[o] + sum over c in o's group, a, b of
//                   x[n, c, i * stride - pad + a * dil, j * stride - pad + b * dil] * w[o, c', a, b]
// NCHW because it is PyTorch's and timm's layout, so checkpoints and fixtures map one to one;
// cuDNN takes it directly (and transforms internally where an NHWC algorithm is faster).
// x, weight and bias share a floating dtype and device. Under a bf16 autocast scope it runs in
// bf16 with f32 accumulation, like matmul. Differentiable in x, weight and bias. CPU
// reference: engine/cpu/conv.cpp. A non-overlapping patchify (kernel == stride, no padding,
// dilation 1, groups 1, the kernel tiling the input) runs as a reshape and one GEMM (matmul)
// on either device and returns a non-contiguous NCHW view. Other convolutions run on CUDA
// through cuDNN (kernels/conv.h: deterministic algorithms, no TF32 for f32); a build without
// cuDNN refuses CUDA tensors with an error saying so.
#pragma once
#include <array>
#include <cstdint>

#include "engine/tensor.h"

namespace vimoe {

struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};    // >= 1
  std::array<int64_t, 2> padding{0, 0};   // >= 0, zeros on both sides
  std::array<int64_t, 2> dilation{1, 1};  // >= 1
  int64_t groups = 1;                     // divides C_in and C_out
};

// Throws vimoe::Error naming the op and the shapes for a bad rank, a channel count that does
// not match weight * groups, dtypes or devices that differ, or an output that would be empty.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options = {});

// The output side of a convolution along one axis: (in + 2 pad - dil (k - 1) - 1) / stride + 1.
int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dil);

}  // namespace vimoe
