// The scalar GELU, exact erf form (not the tanh approximation), written once for the CPU
// reference and the CUDA kernels (host + device functions) so both compute the same formula:
//   gelu(x)  = 0.5 x (1 + erf(x / sqrt 2)) = x Phi(x)
//   gelu'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// A is the compute type: float (for f32, bf16, f16 storage) or double.
#pragma once
#include <math.h>

#include "kernels/strided.h"  // VIMOE_HOST_DEVICE

namespace vimoe::kernels {

// Global C functions, by overload: engine ops named erf/exp would hide unqualified names.
VIMOE_HOST_DEVICE inline float gelu_erf(float v) { return ::erff(v); }
VIMOE_HOST_DEVICE inline double gelu_erf(double v) { return ::erf(v); }
VIMOE_HOST_DEVICE inline float gelu_exp(float v) { return ::expf(v); }
VIMOE_HOST_DEVICE inline double gelu_exp(double v) { return ::exp(v); }

template <typename A>
VIMOE_HOST_DEVICE inline A gelu_value(A x) {
  const A inv_sqrt2 = A(0.70710678118654752440);
  return A(0.5) * x * (A(1) + gelu_erf(x * inv_sqrt2));
}

template <typename A>
VIMOE_HOST_DEVICE inline A gelu_derivative(A x) {
  const A inv_sqrt2 = A(0.70710678118654752440);
  const A inv_sqrt_2pi = A(0.39894228040143267794);
  const A cdf = A(0.5) * (A(1) + gelu_erf(x * inv_sqrt2));
  const A pdf = inv_sqrt_2pi * gelu_exp(A(-0.5) * x * x);
  return cdf + x * pdf;
}

}  // namespace vimoe::kernels
