// Finite-difference gradient checking, for op authors and tests.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace vimoe {

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;  // largest |analytic - numeric| seen
  std::string message;       // the first failing element, when !ok
};

// Compares the autograd gradient of L = sum(f(inputs) * W), W a fixed pseudo-random
// weighting, with central differences, element by element, for every input that requires
// grad (their .grad is cleared again afterwards). Inputs must be contiguous f64 CPU
// tensors. An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, double eps = 1e-6,
                          double atol = 1e-6, double rtol = 1e-4);

}  // namespace vimoe
