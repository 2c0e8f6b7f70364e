// softmax and log_softmax along any axis. Statistics are max-subtracted and computed in
// f32 on CUDA (f64 for f64 inputs) and in double on the CPU; the output has the input's
// dtype and shape (contiguous). Large logits (+-1000) stay finite; a row holding NaN, or
// only -inf, comes out NaN, as in PyTorch. CPU reference: engine/cpu/softmax.cpp; CUDA:
// kernels/softmax.cu.
#pragma once
#include "engine/tensor.h"

namespace vimoe {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// The input gradients given the forward output y and its gradient dy (same shape), for
// ops that fuse a softmax and keep only its output. Not recorded for autograd.
//   softmax_backward:     dx = y * (dy - sum_dim(dy * y))
//   log_softmax_backward: dx = dy - exp(y) * sum_dim(dy)
Tensor softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim);
Tensor log_softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim);

}  // namespace vimoe
