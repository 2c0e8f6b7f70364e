// CPU reference for the random fills, dropout and drop_path. Element i (row-major over the
// target's shape) takes Philox counter i, exactly as the CUDA kernels do, through the shared
// recipes of kernels/random.h.
#pragma once
#include <cstdint>

#include "engine/tensor.h"
#include "kernels/random.h"

namespace vimoe::cpu {

// In-place fills of a floating CPU tensor of any (non-overlapping) layout.
// fill_uniform: a value that rounds up to >= hi in the dtype becomes below_hi.
void fill_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi,
                  double below_hi);
void fill_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std);
void fill_trunc_normal(const Tensor& out, uint64_t seed, uint64_t offset,
                       const kernels::TruncNormalParams& params);

// out[i] = dropout_keep(seed, i / group, threshold) ? x[i] * scale : 0; x any layout, out
// contiguous of x's shape and dtype. The product is one multiply in acc_t (as on the GPU).
void dropout_apply(const Tensor& x, const Tensor& out, int64_t group, uint64_t seed,
                   uint32_t threshold, double scale);

}  // namespace vimoe::cpu
