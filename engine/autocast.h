// Mixed precision in the manner of torch.autocast: inside an AutocastGuard(BF16) scope the
// ops below pick their own compute type, so a model written for f32 runs its GEMMs and
// attention in bf16 (f32 accumulation) while the weights stay f32 masters and the
// numerically delicate ops stay in f32.
//
//   runs in the autocast type (f32 operands are cast):  matmul, linear, attention,
//                                                        grouped_linear
//   runs in f32 (half operands are cast up):             cross_entropy, softmax, log_softmax
//   follows its main operand's type:                     bias_gelu (the bias is cast to x's
//                                                        type), layer_norm (weight and bias
//                                                        are cast to x's type)
//   everything else:                                     ordinary type promotion, so
//                                                        bf16 + f32 -> f32 (a residual
//                                                        stream that starts in f32 stays f32)
//
// Only f32 tensors are cast down (f64 stays f64: gradient checks are never autocast).
// The casts are recorded by autograd, so gradients reach the f32 leaves as f32. Backward
// passes run with autocast off: each backward op sees the types its forward saved.
// The state is per thread, like NoGradGuard.
#pragma once
#include <optional>

#include "engine/tensor.h"

namespace vimoe {

// The autocast type of this thread's current scope, or nullopt outside any.
std::optional<DType> autocast_dtype();

class AutocastGuard {
 public:
  // dtype: BF16 or F16. enabled = false turns autocast off for the scope (nested scopes
  // restore the outer state when they end).
  explicit AutocastGuard(DType dtype, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  std::optional<DType> prev_;
};

namespace autocast {
// An op that runs in the autocast type: an f32 tensor is cast to it; anything else (and
// everything outside an autocast scope) is returned unchanged. Undefined passes through.
Tensor lower(const Tensor& t);
// An op that runs in f32: a bf16 or f16 tensor is cast up inside an autocast scope.
Tensor upper(const Tensor& t);
// An op whose operands must share `like`'s floating type: inside a scope, a floating `t`
// of another (non-f64) type is cast to it.
Tensor follow(const Tensor& t, const Tensor& like);
}  // namespace autocast

}  // namespace vimoe
