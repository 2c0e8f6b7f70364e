// Losses. CPU reference: engine/cpu/loss.cpp; CUDA: kernels/loss.cu.
#pragma once
#include "engine/tensor.h"

namespace vimoe {

// Mean cross-entropy of logits [N, C] (any floating dtype) against class indices
// target (i64 [N], same device), like torch.nn.functional.cross_entropy with
// reduction="mean": rows whose target is ignore_index are left out of the sum and of the
// count, and label_smoothing (in [0, 1]) mixes the one-hot target with the uniform
// distribution over the C classes. Returns a 0-dim tensor in the logits' dtype; the math
// is f32 (f64 for f64 logits, and double in the CPU reference). Differentiable in logits.
// When every target is ignored (or N is 0) the loss is 0 and its gradient is zero;
// PyTorch gives NaN there (0/0). A target outside [0, C) that is not ignore_index throws
// vimoe::Error naming the row and the value (on CUDA this reads a flag back from the
// device, which waits for the kernel).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing = 0.0,
                     int64_t ignore_index = -100);

}  // namespace vimoe
