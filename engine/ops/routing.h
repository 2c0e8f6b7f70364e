// Softmax top-k routing for Mixture-of-Experts layers, fused: from router logits [R, N]
// (R images or tokens, N experts) one pass gives the f32 router probabilities, the top-k
// experts and gate weights, the per-expert top-1 load, and the load-balancing loss
//   aux = alpha * N * sum_i f_i * P_i
// with f_i the fraction of rows whose top-1 expert is i (not differentiable) and P_i the
// mean router probability of expert i. Gradients reach the logits through the gate weights
// and through P_i.
#pragma once
#include "engine/tensor.h"

namespace vimoe {

struct Routing {
  Tensor expert_ids;  // [R, k] i32, most probable first; ties go to the lower expert index
  Tensor gates;       // [R, k] chosen probabilities (renormalised over the k if asked)
  Tensor probs;       // [R, N] router softmax (no gradient: for analysis)
  Tensor load;        // [N] f_i: fraction of rows whose top-1 expert is i
  Tensor aux_loss;    // 0-dim load-balancing loss
};
// Probabilities, gates, load and loss are f32 (f64 when the logits are f64, for gradient
// checks): routing statistics never run in a half type.

// logits: [R, N] floating, 1 <= k <= N <= 64 (the CUDA kernel keeps a row in one warp).
Routing route_topk(const Tensor& logits, int64_t k, bool renormalize, double alpha);

}  // namespace vimoe
