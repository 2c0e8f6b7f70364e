// Multi-tensor kernels for gradient clipping: the global L2 norm of many tensors in one
// pass over all of them, and an in-place scaling of all of them by a factor that lives on the
// device (so clipping never waits for the host).
//
// As in kernels/adamw.h the tensors' descriptions travel as a kernel parameter (nothing to
// upload or allocate): each tensor is cut into chunks of kMultiTensorChunk elements, one
// block per chunk, and a block finds its tensor by binary search over the chunk prefix
// sums. Up to kMultiTensorPerLaunch tensors share a launch; longer lists take one launch per
// that many. Tensors of different floating dtypes may share a launch.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// One contiguous tensor: `n` elements of `dtype` (F32, F64, BF16 or F16) at `data`.
struct MultiTensorRef {
  void* data;
  int64_t n;
  DType dtype;
};

constexpr int kMultiTensorPerLaunch = 512;
constexpr int64_t kMultiTensorChunk = 16384;

// Doubles of workspace multi_tensor_l2_norm needs for these tensors: one per chunk.
int64_t multi_tensor_l2_norm_workspace(const MultiTensorRef* tensors, int count);

// *norm = sqrt(sum over all tensors and elements of x^2), as an f64 on the device. Every
// element is squared and summed in f64 (see multi_tensor.cu for why), each block adds its
// chunk into workspace[chunk], and one block adds the chunks in order: the result is bitwise
// reproducible and within ~1e-15 relative of an f64 sum in any order. With `clip_scale`
// non-null also *clip_scale = min(1, max_norm / (norm + eps)) in f64, NaN when the norm is
// NaN (torch.nn.utils.clip_grad_norm_'s factor). count = 0 gives 0 (and a scale of 1).
cudaError_t multi_tensor_l2_norm(const MultiTensorRef* tensors, int count, double* workspace,
                                 double* norm, double* clip_scale, double max_norm, double eps,
                                 cudaStream_t stream);

// x <- x * s for every tensor, in place, with s = *scale (an f64 on the device) rounded to
// the tensor's dtype first and the product formed in its compute type (f32 for half types)
// and rounded once: exactly what `x.copy_(x * scale.to(x.dtype()))` computes. A scale of
// exactly 1 leaves the tensors untouched without writing them.
cudaError_t multi_tensor_scale(const MultiTensorRef* tensors, int count, const double* scale,
                               cudaStream_t stream);

}  // namespace vimoe::kernels
