// AdamW over many tensors in one launch; the math matches engine/cpu/adamw.cpp.
//
// The tensors' descriptions travel as kernel parameters (no metadata upload, nothing to
// allocate): each tensor is cut into fixed-size chunks, one block per chunk, and a block finds
// its tensor by binary search over the chunk prefix sums. Up to kAdamWTensorsPerLaunch
// tensors share a launch, which covers every parameter of a ViT-S/14 ViMoE; longer lists take
// one launch per that many.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// One tensor to update: param, exp_avg and exp_avg_sq in place from grad, all contiguous
// and of the launch's dtype. lr already carries the tensor's group multiplier.
struct AdamWTensor {
  void* param;
  const void* grad;
  void* exp_avg;
  void* exp_avg_sq;
  int64_t n;
  float lr, weight_decay;
};

struct AdamWHyper {
  float beta1, beta2, eps;
  float bias_correction1, bias_correction2;  // 1 - beta^t
};

constexpr int kAdamWTensorsPerLaunch = 256;

// Updates `count` tensors (a host array), all F32 or all F64.
cudaError_t adamw_update(DType dtype, const AdamWTensor* tensors, int count, const AdamWHyper& h,
                         cudaStream_t stream);

}  // namespace vimoe::kernels
