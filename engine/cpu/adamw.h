// CPU reference of one AdamW update of one tensor (see engine/optim/adamw.h for the formula).
#pragma once
#include "engine/tensor.h"

namespace vimoe::cpu {

struct AdamWStep {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
};

// Updates param, exp_avg and exp_avg_sq (contiguous, same dtype, f32 or f64) in place.
void adamw_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                  const Tensor& exp_avg_sq, const AdamWStep& s);

}  // namespace vimoe::cpu
