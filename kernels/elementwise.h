// CUDA elementwise kernels. Operands are storage base pointers with their layouts (which
// carry broadcast strides and offsets); the output is contiguous.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/dtype.h"
#include "kernels/elementwise_ops.h"
#include "kernels/strided.h"

namespace vimoe::kernels {

// out[i] = a[la(i)] (op) b[lb(i)] for i in [0, n); a, b and out share `dtype`.
cudaError_t binary(BinaryOp op, DType dtype, const void* a, const StridedLayout& la,
                   const void* b, const StridedLayout& lb, void* out, int64_t n,
                   cudaStream_t stream);

}  // namespace vimoe::kernels
