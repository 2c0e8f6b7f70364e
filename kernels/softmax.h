// CUDA softmax and log-softmax along the middle axis of a contiguous [outer, n, inner]
// tensor (any axis of a contiguous tensor is one: outer = product of the sizes before it,
// inner = product of those after it). Statistics are max-subtracted and computed in f32
// (f64 for f64); bf16 / f16 are read and written in their own dtype.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// y = softmax(x), or log_softmax(x) when `log`, along the n axis. Any n >= 1: rows of
// contiguous elements (inner == 1) take a warp each up to 1024 elements and a block each
// beyond; strided rows (inner > 1) take a thread each, reading coalesced across inner.
cudaError_t softmax_forward(DType dtype, const void* x, void* y, int64_t outer, int64_t n,
                            int64_t inner, bool log, cudaStream_t stream);

// dx from dy and the forward output y (same layout):
//   softmax:     dx = y * (dy - sum_n(dy * y))
//   log_softmax: dx = dy - exp(y) * sum_n(dy)
cudaError_t softmax_backward(DType dtype, const void* dy, const void* y, void* dx, int64_t outer,
                             int64_t n, int64_t inner, bool log, cudaStream_t stream);

}  // namespace vimoe::kernels
