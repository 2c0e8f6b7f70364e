// CPU reference for elementwise ops. Every operand is already broadcast (expanded) to out's
// shape and converted to the op's compute dtype by the front-end; any operand, out included,
// may be an arbitrary strided view.
#pragma once
#include "engine/tensor.h"
#include "kernels/elementwise_ops.h"

namespace vimoe::cpu {

// out = a (op) b; a, b and out share one dtype.
void binary(kernels::BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);

// out = op(x); x and out share one dtype (floating for unary_needs_floating(op)).
void unary(kernels::UnaryOp op, const Tensor& x, const Tensor& out);

// out (u8) = a (op) b ? 1 : 0; a and b share one dtype.
void compare(kernels::CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out);

// out = cond != 0 ? a : b; cond is u8, a, b and out share one dtype.
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);

}  // namespace vimoe::cpu
