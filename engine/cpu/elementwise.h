// CPU reference for elementwise ops.
#pragma once
#include "engine/tensor.h"
#include "kernels/elementwise_ops.h"

namespace vimoe::cpu {

// out = a (op) b. a and b are already broadcast (expanded) to out's shape and converted to
// out's dtype; out may be any strided CPU tensor.
void binary(kernels::BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);

}  // namespace vimoe::cpu
