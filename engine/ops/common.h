// Argument checks and kernel-argument helpers shared by the op front-ends.
#pragma once
#include "engine/tensor.h"

namespace vimoe::ops {

// Throws "op: argument 'name' is undefined".
void check_defined(const Tensor& t, const char* op, const char* name);
// Throws naming the op and both tensors when they live on different devices.
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
// Throws unless t has a floating dtype.
void check_floating(const Tensor& t, const char* op, const char* name);

// t's data, or null for an undefined (optional) tensor: how kernels receive optional inputs.
inline void* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

// strided_layout(t), collapsed to one dimension when t is contiguous: kernels then index
// without any division.
kernels::StridedLayout kernel_layout(const Tensor& t);

}  // namespace vimoe::ops
