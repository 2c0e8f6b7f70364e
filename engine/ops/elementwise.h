// Elementwise ops with numpy broadcasting and type promotion (promote_types; a scalar
// operand takes the tensor's dtype, or f32 for a non-integral value with an integer tensor).
// Every op has a CPU reference (engine/cpu/elementwise.cpp), a CUDA kernel
// (kernels/elementwise.cu) and, where differentiable, a backward.
#pragma once
#include "engine/tensor.h"

namespace vimoe {

// ---- binary (differentiable) ---------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);  // integer operands divide as f32
// Like torch.pow: d/da is 0 where b == 0, d/db is 0 where a == 0 and b >= 0.
Tensor pow(const Tensor& a, const Tensor& b);
// An integer tensor to a negative integral power throws (not representable).
Tensor pow(const Tensor& a, double exponent);
// NaN in either operand gives NaN; at a tie the gradient is split equally between a and b.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// A 0-dimensional tensor holding `value`, typed to combine with `like` (see above).
Tensor scalar_like(double value, const Tensor& like);

// ---- unary (differentiable) ----------------------------------------------------------
// neg, relu and abs keep integer dtypes; exp, log, sqrt, rsqrt, tanh and erf compute
// integer inputs in f32. relu and abs have gradient 0 at 0.
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
// The Gauss error function, erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, so that the
// normal CDF composes as Phi(z) = 0.5 * (1 + erf(z / sqrt(2))).
Tensor erf(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor abs(const Tensor& x);
// cond is u8 (non-zero selects a); all three broadcast, a and b promote. The gradient
// flows to a where cond holds and to b elsewhere.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- comparisons (u8 result, not differentiable) -------------------------------------
// Operands broadcast and promote before comparing; NaN is unequal to everything.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// ---- operators -----------------------------------------------------------------------
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
inline Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
inline Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
inline Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
inline Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
inline Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
inline Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

}  // namespace vimoe
