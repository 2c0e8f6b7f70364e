// CPU reference for softmax top-k routing (see engine/ops/routing.h).
#pragma once
#include "engine/tensor.h"

namespace vimoe::cpu {

// logits [R, N] (any floating dtype, math in double). Writes probs [R, N] and gates [R, k]
// (both f32, or both f64 for gradient checks), ids [R, k] i32 and top1_counts [N] i32; all
// outputs contiguous CPU tensors.
void routing_forward(const Tensor& logits, int64_t k, bool renormalize, const Tensor& probs,
                     const Tensor& ids, const Tensor& gates, const Tensor& top1_counts);

// d(logits) [R, N] (probs' dtype) from d(gates) [R, k] and d(aux) (0-dim), given the forward's probs,
// ids and load f [N]: dp = dgates routed to the chosen experts (through the renormalisation
// when asked) + alpha * N * f_i / R * daux; dlogits = p * (dp - sum(dp * p)).
void routing_backward(const Tensor& probs, const Tensor& ids, const Tensor& load,
                      const Tensor& dgates, double daux, bool renormalize, double alpha,
                      const Tensor& dlogits);

// Expert capacity (engine/ops/routing.h, capacity_mask): ids [R, k] i32, priority [R] f64
// (undefined: row order), keep [R, k] u8, all contiguous CPU tensors.
void capacity_mask(const Tensor& ids, const Tensor& priority, int64_t experts, int64_t capacity,
                   const Tensor& keep);

}  // namespace vimoe::cpu
