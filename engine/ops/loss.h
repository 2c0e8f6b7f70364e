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

// Per-pixel cross-entropy for segmentation: logits [B, C, H, W] against class maps target
// (i64 [B, H, W]), the mean over the pixels whose target is not ignore_index, as
// torch.nn.functional.cross_entropy on 4-d logits. The same op as above on the pixels as rows
// (a channels-last copy of the logits), so its dtype rules, ignored-pixel semantics and errors
// for out-of-range targets are those; a bad target's error names its flattened row
// (b * H * W + y * W + x) and the map's H and W. Differentiable in logits.
Tensor pixel_cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = 255);

}  // namespace vimoe
