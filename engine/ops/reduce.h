// Reductions over any set of axes (an empty list means all), with keepdim.
// Floating inputs accumulate in f32 on CUDA (f64 for f64) and in double on the CPU, and
// return the input dtype; integer sums return i64. CPU reference: engine/cpu/reduce.cpp;
// CUDA: kernels/reduce.cu. Bad axes (out of range, listed twice) throw vimoe::Error.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace vimoe {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Floating inputs only; an empty reduction gives NaN, like PyTorch.
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Largest value along `dim`, any dtype; the gradient flows to the first maximal element
// only. NaN ranks above every number, as in PyTorch: a row holding NaN has max NaN, and
// its gradient goes to the first NaN. An empty dimension throws.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
// Index (i64) of the first largest value along `dim` (the first NaN, if any); not
// differentiable. An empty dimension throws.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
// Variance sum((x - mean)^2) / max(N - correction, 0) over the reduced elements (N of
// them), like torch.var: Bessel's correction by default. N <= correction divides by zero
// (inf, or NaN for a constant or empty reduction), as PyTorch does. Floating inputs only.
// Both backends use two passes (the mean first).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false,
           int64_t correction = 1);

// Sums a broadcast gradient back to `shape` (the inverse of broadcasting to g's shape).
Tensor sum_to_shape(const Tensor& g, const Shape& shape);

}  // namespace vimoe
