// CUDA row reductions over a contiguous [rows, cols] input.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/dtype.h"
#include "kernels/reduce_ops.h"

namespace vimoe::kernels {

// out[r] = reduce(in[r, 0..cols)) with f32 accumulation (f64 for f64, i64 for integers).
// `out_dtype` is the input dtype for floating inputs and I64 for integer sums.
cudaError_t reduce_rows(ReduceOp op, DType in_dtype, const void* in, DType out_dtype, void* out,
                        int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace vimoe::kernels
