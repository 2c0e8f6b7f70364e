// Expert dispatch for Mixture-of-Experts layers: route rows to experts and back.
//
// A "row" is whatever a routing decision moves: a whole image ([T, D], image-level routing)
// or a single token ([D], token-level). With k experts per row there are R*k slots; slot
// s = r*k + j is row r's j-th choice. The plan sorts slots by expert (stably, so the result
// is deterministic), and the ops below move rows into that expert-contiguous order and back:
//
//   x [R, ...] --dispatch_rows--> buf [R*k, ...]   (expert e owns rows offsets[e]..offsets[e+1])
//   expert FFNs on each segment (grouped GEMMs)
//   out [R*k, ...] --combine_rows(gates)--> y [R, ...],  y[r] = sum_j gates[r, j] * out[pos(r, j)]
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace vimoe {

struct DispatchPlan {
  int64_t rows = 0, k = 0, experts = 0;
  Tensor order;                  // [R*k] i32: slot held by each buffer row
  Tensor position;               // [R*k] i32: buffer row of each slot (order's inverse)
  std::vector<int64_t> offsets;  // host [experts + 1]: expert e's buffer rows
};

// expert_ids [R, k] i32 with values in [0, experts); throws naming a bad id otherwise.
DispatchPlan plan_dispatch(const Tensor& expert_ids, int64_t experts);

// buf[i] = x[order[i] / k]; differentiable (the backward sums each row's k copies).
Tensor dispatch_rows(const Tensor& x, const DispatchPlan& plan);

// Each expert's linear layer on its own segment: for expert e, the buffer rows
// offsets[e]..offsets[e+1] (every token of them: buf is [R*k, ..., in]) are multiplied by
// weight[e]^T ([in] -> [out]) and bias[e] is added. weight [experts, out, in], bias
// [experts, out] or undefined. Empty experts are skipped (their gradients are zero).
// Differentiable in buf, weight and bias.
Tensor grouped_linear(const Tensor& buf, const Tensor& weight, const Tensor& bias,
                      const DispatchPlan& plan);

// y[r] = sum_j gates[r, j] * expert_out[position[r*k + j]], accumulated in f32 (f64 for f64)
// and returned in expert_out's dtype; differentiable in expert_out and gates.
Tensor combine_rows(const Tensor& expert_out, const Tensor& gates, const DispatchPlan& plan);

}  // namespace vimoe
