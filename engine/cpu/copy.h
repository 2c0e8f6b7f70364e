// CPU reference: strided copy with dtype conversion, and fill.
#pragma once
#include "engine/tensor.h"

namespace vimoe::cpu {

// dst[i] = convert(src[i]) elementwise; both on the CPU, same shape, any strides and dtypes.
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, double value);

}  // namespace vimoe::cpu
