// Reductions over any set of axes (an empty list means all), with keepdim.
// Floating inputs accumulate in f32 (f64 for f64) and return the input dtype; integer
// sums return i64. CPU reference: engine/cpu/reduce.cpp; CUDA: kernels/reduce.cu.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace vimoe {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Largest value along `dim`; the gradient flows to the first maximal element.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
// Index (i64) of the first largest value along `dim`.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
// Variance with Bessel's correction by default (correction = 1), like torch.var.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false,
           int64_t correction = 1);

// Sums a broadcast gradient back to `shape` (the inverse of broadcasting to g's shape).
Tensor sum_to_shape(const Tensor& g, const Shape& shape);

}  // namespace vimoe
