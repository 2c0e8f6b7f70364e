// Bilinear resampling of NCHW feature maps, as torch.nn.functional.interpolate(x, size=(H, W),
// mode="bilinear", align_corners=False) without antialiasing: each output pixel centre maps
// to src = (o + 0.5) * in / out - 0.5 per axis (clamped at 0), and the output is the bilinear
// blend of the (up to) four inputs around it (kernels/interpolate_math.h). Upsampling
// segmentation logits to the label size is the use it is built for; downsampling works too
// (without antialiasing, as PyTorch's default).
// x: [N, C, H, W] floating, any layout; out_h, out_w >= 1. Differentiable in x; runs in x's
// dtype (half types compute in f32). The gradient is deterministic on both devices.
// CPU reference: engine/cpu/interpolate.cpp; CUDA: kernels/interpolate.cu.
#pragma once
#include "engine/tensor.h"

namespace vimoe {

Tensor interpolate_bilinear(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace vimoe
