// CPU reference for cross-entropy over logits [rows, classes] and i64 targets [rows], with
// label smoothing and an ignored target value; every statistic in double.
#pragma once
#include "engine/tensor.h"

namespace vimoe::cpu {

// loss (0-dim, logits' dtype) = mean over rows whose target != ignore_index of
//   lse_r - (1 - eps) * x[r, t_r] - (eps / classes) * sum_c x[r, c],
// or 0 when every row is ignored. Also writes lse (f64 [rows]; 0 for ignored rows) and
// count (i64, one element: the rows not ignored). Inputs contiguous. Returns the first row
// whose target is outside [0, classes) and not ignore_index (the outputs are then
// unspecified), or `rows` when all targets are valid.
int64_t cross_entropy_forward(const Tensor& logits, const Tensor& target, double label_smoothing,
                              int64_t ignore_index, const Tensor& loss, const Tensor& lse,
                              const Tensor& count);

// dx[r, c] = (grad / count) * (softmax(x)[r, c] - (1 - eps) [c == t_r] - eps / classes) for
// rows not ignored; 0 elsewhere and when count is 0. `grad` is one element of the logits'
// dtype; dx is contiguous like logits.
void cross_entropy_backward(const Tensor& logits, const Tensor& target, double label_smoothing,
                            int64_t ignore_index, const Tensor& grad, const Tensor& lse,
                            const Tensor& count, const Tensor& dx);

}  // namespace vimoe::cpu
