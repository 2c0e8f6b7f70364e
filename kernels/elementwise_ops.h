// The scalar math of every elementwise op, written once for the CPU reference and the CUDA
// kernels alike (host + device functions), so both backends compute the same formula.
// Inputs arrive in the compute type: double for f64, int64 for integers, float otherwise.
#pragma once
#include <math.h>
#include <cstdint>
#include <type_traits>

#include "kernels/strided.h"  // VIMOE_HOST_DEVICE

namespace vimoe::kernels {

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Pow, Maximum, Minimum };

template <BinaryOp op, typename T>
VIMOE_HOST_DEVICE inline T binary_apply(T a, T b) {
  if constexpr (op == BinaryOp::Add) return a + b;
  else if constexpr (op == BinaryOp::Sub) return a - b;
  else if constexpr (op == BinaryOp::Mul) return a * b;
  else if constexpr (op == BinaryOp::Div) return a / b;
  else if constexpr (op == BinaryOp::Pow) {
    // Global C functions: the engine's vimoe::pow(Tensor) would hide unqualified names.
    if constexpr (std::is_same_v<T, float>) return ::powf(a, b);
    else return static_cast<T>(::pow(static_cast<double>(a), static_cast<double>(b)));
  }
  else if constexpr (op == BinaryOp::Maximum) return a > b ? a : b;
  else return a < b ? a : b;
}

}  // namespace vimoe::kernels
