// CPU reference for row reductions over a contiguous [rows, cols] input.
#pragma once
#include "engine/tensor.h"
#include "kernels/reduce_ops.h"

namespace vimoe::cpu {

// out (contiguous, `rows` elements) = reduce of each row of `in` (contiguous [rows, cols]).
// Floating sums accumulate in double; integer sums in i64.
void reduce_rows(kernels::ReduceOp op, const Tensor& in, const Tensor& out, int64_t rows,
                 int64_t cols);

}  // namespace vimoe::cpu
