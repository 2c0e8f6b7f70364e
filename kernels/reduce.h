// CUDA row reductions over a contiguous [rows, cols] input, and the scatter behind max's
// backward. Floating inputs compute in f32 (f64 for f64), integers in i64.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/reduce_ops.h"

namespace vimoe::kernels {

// out[r] = sum (or mean) of in[r, 0..cols). `out_dtype` is the input dtype for floating
// inputs and I64 for integer sums; Mean takes floating inputs only (a row of length 0
// gives 0/0 = NaN, as in PyTorch).
cudaError_t reduce_rows(ReduceOp op, DType in_dtype, const void* in, DType out_dtype, void* out,
                        int64_t rows, int64_t cols, cudaStream_t stream);

// The first maximal element of each row (NaN counts as maximal, see max_beats): its value
// into `values` (dtype, may be null) and its column into `indices` (may be null). cols >= 1.
cudaError_t max_rows(DType dtype, const void* in, void* values, int64_t* indices, int64_t rows,
                     int64_t cols, cudaStream_t stream);

// out[r] = sum_c (in[r, c] - mean_r)^2 / max(cols - correction, 0) by two passes over the
// row (the mean first), which stays accurate when the mean is large against the spread.
// Floating dtypes only.
cudaError_t var_rows(DType dtype, const void* in, void* out, int64_t rows, int64_t cols,
                     int64_t correction, cudaStream_t stream);

// The gradient of a max over the middle axis of a contiguous [outer, n, inner] tensor:
// out[o, c, i] = c == index[o * inner + i] ? grad[o * inner + i] : 0. `grad` and `index`
// are contiguous [outer, inner]; out is contiguous [outer, n, inner]. Floating dtypes only.
cudaError_t max_backward(DType dtype, const void* grad, const int64_t* index, void* out,
                         int64_t outer, int64_t n, int64_t inner, cudaStream_t stream);

}  // namespace vimoe::kernels
