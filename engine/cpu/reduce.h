// CPU reference for row reductions over a contiguous [rows, cols] input, and max's backward.
// Floating values accumulate in double, integer sums in i64; outputs are contiguous. Rows
// are spread over the CPU threads; each sum runs on one thread in index order.
#pragma once
#include "engine/tensor.h"
#include "kernels/reduce_ops.h"

namespace vimoe::cpu {

// out (`rows` elements) = sum or mean of each row of `in` ([rows, cols]).
void reduce_rows(kernels::ReduceOp op, const Tensor& in, const Tensor& out, int64_t rows,
                 int64_t cols);
// out (`cols` elements) = sum or mean of each column of `in` ([rows, cols]): the same sums,
// added in the same order, as reduce_rows of the transpose, without transposing first.
void reduce_cols(kernels::ReduceOp op, const Tensor& in, const Tensor& out, int64_t rows,
                 int64_t cols);

// The first maximal element of each row (NaN ranks highest, see kernels::max_beats): its
// value into `values` (in's dtype) and its column into `indices` (i64); either may be an
// undefined Tensor when not wanted. cols >= 1.
void max_rows(const Tensor& in, const Tensor& values, const Tensor& indices, int64_t rows,
              int64_t cols);

// out[r] = sum_c (in[r, c] - mean_r)^2 / max(cols - correction, 0), two passes in double.
void var_rows(const Tensor& in, const Tensor& out, int64_t rows, int64_t cols,
              int64_t correction);

// Gradient of a max over the middle axis of [outer, n, inner]: out[o, c, i] is
// grad[o * inner + i] where c == index[o * inner + i], else 0. All contiguous.
void max_backward(const Tensor& grad, const Tensor& index, const Tensor& out, int64_t outer,
                  int64_t n, int64_t inner);

}  // namespace vimoe::cpu
