// Expert dispatch on the GPU (see engine/ops/moe_dispatch.h): a stable counting sort of
// slots by expert, row gather with optional per-slot scales, gated combine, and the gate
// gradient. Rows are contiguous [rows, width] in `dtype` (f32, f64, bf16, f16); scales and
// gates are f32 (or f64 with f64 rows). All results are deterministic.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// ids [slots] i32 -> order, position [slots] i32 and offsets [experts + 2] i64 (device):
// offsets[0..experts] are the segment starts, offsets[experts + 1] counts ids outside
// [0, experts) (such slots are left out of order). experts <= 1024.
cudaError_t plan_dispatch(const int32_t* ids, int64_t slots, int experts, int32_t* order,
                          int32_t* position, int64_t* offsets, cudaStream_t stream);

// out[i, :] = scale[order[i]] * x[order[i] / k, :] (scale may be null).
cudaError_t gather_rows(DType dtype, const void* x, const int32_t* order, int64_t n, int64_t k,
                        int64_t width, const void* scale, DType scale_dtype, void* out,
                        cudaStream_t stream);

// y[r, :] = sum_j gates[r*k + j] * src[position[r*k + j], :] (gates may be null: all 1).
cudaError_t combine_rows(DType dtype, const void* src, const int32_t* position, int64_t rows,
                         int64_t k, int64_t width, const void* gates, DType gate_dtype, void* y,
                         cudaStream_t stream);

// dgates[s] = <dy[s / k, :], src[position[s], :]> for s in [0, rows*k).
cudaError_t gates_grad(DType dtype, const void* dy, const void* src, const int32_t* position,
                       int64_t rows, int64_t k, int64_t width, void* dgates, DType gate_dtype,
                       cudaStream_t stream);

}  // namespace vimoe::kernels
