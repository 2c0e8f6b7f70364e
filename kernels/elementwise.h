// CUDA elementwise kernels. Operands are storage base pointers with their layouts, which
// carry broadcast strides and offsets; the output is contiguous, n elements. Each input
// layout has the output's shape (size-1 dimensions aside), or is dense with n elements in
// any shape (ops::kernel_layout hands contiguous tensors over as [n]), or is a broadcast
// scalar; anything else is cudaErrorInvalidValue. The launchers collapse the inputs'
// dimensions together (kernels/strided.h) and take a vectorised dense path when every input
// is contiguous or a broadcast scalar, a vectorised row path when every input is contiguous
// or broadcast along aligned rows (a bias over rows, a narrowed tensor), and a strided path
// (one fast division per collapsed dimension, 32-bit where it fits) otherwise.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/elementwise_ops.h"
#include "kernels/strided.h"

namespace vimoe::kernels {

// out[i] = a[la(i)] (op) b[lb(i)] for i in [0, n); a, b and out share `dtype`.
cudaError_t binary(BinaryOp op, DType dtype, const void* a, const StridedLayout& la,
                   const void* b, const StridedLayout& lb, void* out, int64_t n,
                   cudaStream_t stream);

// out[i] = op(x[lx(i)]); x and out share `dtype`, which must be floating when
// unary_needs_floating(op) (cudaErrorInvalidValue otherwise).
cudaError_t unary(UnaryOp op, DType dtype, const void* x, const StridedLayout& lx, void* out,
                  int64_t n, cudaStream_t stream);

// out[i] = a[la(i)] (op) b[lb(i)] ? 1 : 0; a and b share `dtype`, out is u8.
cudaError_t compare(CompareOp op, DType dtype, const void* a, const StridedLayout& la,
                    const void* b, const StridedLayout& lb, uint8_t* out, int64_t n,
                    cudaStream_t stream);

// out[i] = cond[lc(i)] != 0 ? a[la(i)] : b[lb(i)]; a, b and out share `dtype`.
cudaError_t where(const uint8_t* cond, const StridedLayout& lc, DType dtype, const void* a,
                  const StridedLayout& la, const void* b, const StridedLayout& lb, void* out,
                  int64_t n, cudaStream_t stream);

}  // namespace vimoe::kernels
