// Position-embedding resampling. DINOv2 stores position embeddings for a 37x37 grid
// (518x518 inputs); a model trained at another size resamples the grid part bicubically.
// This matches torch.nn.functional.interpolate(mode="bicubic", align_corners=False,
// antialias=False) called with the target size (the Hugging Face transformers method):
// Keys' cubic convolution with A = -0.75, source index (dst + 0.5) * in / out - 0.5, taps
// clamped at the border. (The original DINOv2 repository passes a scale factor with a 0.1
// offset instead; checkpoints in its key layout are resampled the Hugging Face way too.)
#pragma once
#include "engine/tensor.h"

namespace vimoe::models {

// table [1, extra + g*g, D] (extra leading rows -- CLS, registers -- are kept as they are)
// -> [1, extra + out_h*out_w, D], on the CPU, in the table's dtype (math in f64).
Tensor resample_pos_embed(const Tensor& table, int64_t extra, int64_t out_h, int64_t out_w);

}  // namespace vimoe::models
