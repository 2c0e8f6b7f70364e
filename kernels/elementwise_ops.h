// The scalar math of every elementwise op, written once for the CPU reference and the CUDA
// kernels alike (host + device functions), so both backends compute the same formula.
// Inputs arrive in the compute type: double for f64, int64 for integers, float otherwise.
// Math functions are the global C ones (::expf, ::exp, ...): the engine's vimoe::exp(Tensor)
// and friends would hide unqualified names inside namespace vimoe.
#pragma once
#include <math.h>
#include <cstdint>
#include <type_traits>

#include "kernels/strided.h"  // VIMOE_HOST_DEVICE

namespace vimoe::kernels {

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Pow, Maximum, Minimum };
enum class UnaryOp : uint8_t { Neg, Exp, Log, Sqrt, Rsqrt, Tanh, Relu, Abs, Erf };
enum class CompareOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge };

// Transcendental unary ops are defined on floating types only: integer inputs are promoted
// to f32 by the front-end, and the backends instantiate these ops for floating dtypes only.
constexpr bool unary_needs_floating(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Log || op == UnaryOp::Sqrt ||
         op == UnaryOp::Rsqrt || op == UnaryOp::Tanh || op == UnaryOp::Erf;
}

template <typename T>
VIMOE_HOST_DEVICE inline bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

template <BinaryOp op, typename T>
VIMOE_HOST_DEVICE inline T binary_apply(T a, T b) {
  if constexpr (op == BinaryOp::Add) return a + b;
  else if constexpr (op == BinaryOp::Sub) return a - b;
  else if constexpr (op == BinaryOp::Mul) return a * b;
  else if constexpr (op == BinaryOp::Div) return a / b;
  else if constexpr (op == BinaryOp::Pow) {
    if constexpr (std::is_same_v<T, float>) return ::powf(a, b);
    else return static_cast<T>(::pow(static_cast<double>(a), static_cast<double>(b)));
  }
  // maximum / minimum propagate NaN from either side, as torch.maximum does (a bare
  // comparison would return whichever operand happens to be second).
  else if constexpr (op == BinaryOp::Maximum) {
    if (is_nan(a)) return a;
    if (is_nan(b)) return b;
    return a > b ? a : b;
  } else {
    if (is_nan(a)) return a;
    if (is_nan(b)) return b;
    return a < b ? a : b;
  }
}

template <UnaryOp op, typename T>
VIMOE_HOST_DEVICE inline T unary_apply(T x) {
  if constexpr (op == UnaryOp::Neg) return -x;
  // `x < 0 ? 0 : x` rather than `x > 0 ? x : 0` so that NaN passes through, as in PyTorch.
  else if constexpr (op == UnaryOp::Relu) return x < T(0) ? T(0) : x;
  else if constexpr (op == UnaryOp::Abs) {
    // fabs clears the sign of -0.0 too, which a comparison would not.
    if constexpr (std::is_same_v<T, float>) return ::fabsf(x);
    else if constexpr (std::is_same_v<T, double>) return ::fabs(x);
    else return x < T(0) ? -x : x;
  } else {
    static_assert(std::is_floating_point_v<T>, "transcendental unary ops need a floating type");
    if constexpr (std::is_same_v<T, float>) {
      if constexpr (op == UnaryOp::Exp) return ::expf(x);
      else if constexpr (op == UnaryOp::Log) return ::logf(x);
      else if constexpr (op == UnaryOp::Sqrt) return ::sqrtf(x);
      // A correctly rounded sqrt and division rather than the device's approximate rsqrtf,
      // so that CUDA and the CPU reference agree to an ulp or two.
      else if constexpr (op == UnaryOp::Rsqrt) return 1.0f / ::sqrtf(x);
      else if constexpr (op == UnaryOp::Tanh) return ::tanhf(x);
      else return ::erff(x);
    } else {
      if constexpr (op == UnaryOp::Exp) return ::exp(x);
      else if constexpr (op == UnaryOp::Log) return ::log(x);
      else if constexpr (op == UnaryOp::Sqrt) return ::sqrt(x);
      else if constexpr (op == UnaryOp::Rsqrt) return 1.0 / ::sqrt(x);
      else if constexpr (op == UnaryOp::Tanh) return ::tanh(x);
      else return ::erf(x);
    }
  }
}

// IEEE semantics: every comparison with NaN is false except !=.
template <CompareOp op, typename T>
VIMOE_HOST_DEVICE inline bool compare_apply(T a, T b) {
  if constexpr (op == CompareOp::Eq) return a == b;
  else if constexpr (op == CompareOp::Ne) return a != b;
  else if constexpr (op == CompareOp::Lt) return a < b;
  else if constexpr (op == CompareOp::Le) return a <= b;
  else if constexpr (op == CompareOp::Gt) return a > b;
  else return a >= b;
}

}  // namespace vimoe::kernels
