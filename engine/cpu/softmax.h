// CPU reference for softmax / log_softmax along the middle axis of a contiguous
// [outer, n, inner] tensor, with double statistics (max first, then the sum of exponentials).
#pragma once
#include "engine/tensor.h"

namespace vimoe::cpu {

// y = softmax(x) (log_softmax when `log`); x and y contiguous, same shape and dtype.
void softmax_forward(const Tensor& x, const Tensor& y, int64_t outer, int64_t n, int64_t inner,
                     bool log);

// softmax:     dx = y * (dy - sum_n(dy * y))
// log_softmax: dx = dy - exp(y) * sum_n(dy)
void softmax_backward(const Tensor& dy, const Tensor& y, const Tensor& dx, int64_t outer,
                      int64_t n, int64_t inner, bool log);

}  // namespace vimoe::cpu
