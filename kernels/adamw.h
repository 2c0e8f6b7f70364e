// AdamW update of one contiguous tensor on the GPU; the math matches engine/cpu/adamw.cpp.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

struct AdamWParams {
  float lr, beta1, beta2, eps, weight_decay;
  float bias_correction1, bias_correction2;  // 1 - beta^t
};

// param, exp_avg, exp_avg_sq updated in place from grad; all f32 (F32) or all f64 (F64).
cudaError_t adamw_update(DType dtype, void* param, const void* grad, void* exp_avg,
                         void* exp_avg_sq, int64_t n, const AdamWParams& s, cudaStream_t stream);

}  // namespace vimoe::kernels
