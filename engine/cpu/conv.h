// CPU reference for 2-d convolution in NCHW (see engine/ops/conv.h): direct loops with
// double accumulators, readable rather than fast, the ground truth the cuDNN path is tested
// against. Every tensor is contiguous and of one floating dtype.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace vimoe::cpu {

// The problem: x [n, c_in, h, w], weight [c_out, c_in / groups, kh, kw], y [n, c_out, oh, ow].
struct Conv2dShape {
  int64_t n = 0, c_in = 0, h = 0, w = 0;
  int64_t c_out = 0, kh = 0, kw = 0;
  int64_t oh = 0, ow = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
};

// y = conv(x, weight) (+ bias per output channel; bias may be undefined).
void conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y,
                    const Conv2dShape& s);

// dx, dweight and dbias from dy [n, c_out, oh, ow]; each may be undefined to skip it.
void conv2d_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& dx,
                     const Tensor& dweight, const Tensor& dbias, const Conv2dShape& s);

}  // namespace vimoe::cpu
