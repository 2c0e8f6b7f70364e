// CPU reference for bilinear resampling (see engine/ops/interpolate.h), with the per-axis
// taps the CUDA kernels use (kernels/interpolate_math.h).
#pragma once
#include "engine/tensor.h"

namespace vimoe::cpu {

// y [planes, out_h, out_w] from contiguous x [planes, in_h, in_w], in x's dtype.
void bilinear_forward(const Tensor& x, const Tensor& y, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                      int64_t out_w);

// dx [planes, in_h, in_w] from contiguous dy [planes, out_h, out_w]: each output scatters its
// gradient to the (up to) four inputs it read, summed in double per plane, then rounded once.
void bilinear_backward(const Tensor& dy, const Tensor& dx, int64_t planes, int64_t in_h, int64_t in_w,
                       int64_t out_h, int64_t out_w);

}  // namespace vimoe::cpu
