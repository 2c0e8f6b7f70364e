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
  Tensor keep;        // [R, k] capacity_mask's 1 (kept) / 0 (dropped); undefined when dropless
};
// Probabilities, gates, load and loss are f32 (f64 when the logits are f64, for gradient
// checks): routing statistics never run in a half type.

// logits: [R, N] floating, 1 <= k <= N <= 64 (the CUDA kernel keeps a row in one warp).
Routing route_topk(const Tensor& logits, int64_t k, bool renormalize, double alpha);

// Shazeer et al. 2017's importance and load losses, in the form V-MoE (Riquelme et al. 2021,
// appendix A) trains with: router noise of fixed std sigma instead of a learned one, and the
// k-th largest noisy logit as every expert's threshold. With `logits` [R, N] the clean router
// logits, `noisy` = logits + eps, eps ~ N(0, sigma^2) (noisy == logits outside training) and
// `expert_ids` route_topk(noisy, k, ...)'s [R, k]:
//   importance_i = sum_r softmax(noisy)_ri
//   load_i       = sum_r P(logits_ri + eps' >= t_r) = sum_r 1 - Phi((t_r - logits_ri) / sigma),
//                  t_r = noisy[r, expert_ids[r, k-1]] (the k-th largest noisy logit)
//   loss         = (CV(importance)^2 + CV(load)^2) / 2,  CV(v)^2 = var(v) / (mean(v)^2 + 1e-10)
// with the population variance. Differentiable in logits and noisy (through softmax, Phi and
// the threshold, as V-MoE leaves it); 0-dim, f32 (f64 for f64 logits).
Tensor importance_load_loss(const Tensor& logits, const Tensor& noisy, const Tensor& expert_ids, double sigma);

// Expert capacity (GShard; V-MoE, Riquelme et al. 2021): each of the `experts` experts takes
// at most `capacity` of the [R, k] slots of `expert_ids` (route_topk's), and the others are
// dropped. Slots claim capacity choice by choice -- every row's first choice before any row's
// second -- and within a choice rows go in row order or, when `priority` [R] is given, in
// descending priority (ties to the lower row): Batch Prioritized Routing, with each row's top
// gate value as its priority. Returns the keep mask [R, k], 1 kept and 0 dropped, in `dtype` on
// expert_ids' device; it is a constant (no gradient).
// Computed on the host on either device: the slots are few ([R, k] indices), and the dispatch
// plan that follows reads its segment sizes back to the host anyway.
Tensor capacity_mask(const Tensor& expert_ids, int64_t experts, int64_t capacity, const Tensor& priority,
                     DType dtype);
// The capacity that `capacity_factor` C gives: ceil(C * k * rows / experts), at least 1.
int64_t expert_capacity(double capacity_factor, int64_t k, int64_t rows, int64_t experts);

}  // namespace vimoe
