// Softmax top-k routing on the GPU, one warp per row (N <= 64 experts: two per lane).
// Same contract as engine/cpu/routing.h; T is float or double (DType F32 / F64).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// logits [R, N] contiguous in `dtype`; writes probs [R, N], gates [R, k] (same dtype), ids
// [R, k] i32, and adds each row's top-1 expert into top1_counts [N] (i32, zeroed by the caller).
cudaError_t routing_forward(DType dtype, const void* logits, int64_t rows, int experts, int k,
                            bool renormalize, void* probs, int32_t* ids, void* gates,
                            int32_t* top1_counts, cudaStream_t stream);

// dlogits [R, N] from dgates [R, k], *daux (a device scalar), probs, ids and load [N].
cudaError_t routing_backward(DType dtype, const void* probs, const int32_t* ids, const void* load,
                             const void* dgates, const void* daux, int64_t rows, int experts,
                             int k, bool renormalize, double alpha, void* dlogits,
                             cudaStream_t stream);

}  // namespace vimoe::kernels
