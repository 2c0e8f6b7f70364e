// Router gates for Mixture-of-Experts layers: a gate maps router input rows x [R, D] (R images
// or tokens) to router logits [R, N] over N experts. Softmax, top-k and the load-balancing
// loss happen afterwards, on the logits (engine/ops/routing.h's route_topk).
//
//   linear  logits = x W^T + b: the usual router (V-MoE, Swin-MoE's default). Its parameters
//           are "weight" [N, D] and "bias" [N] on the gate itself, the names an nn::Linear
//           registered as "router" has, so checkpoints written before gates existed load.
//   cosine  Chi et al. 2022, "On the Representation Collapse of Sparse Mixture of Experts"
//           (X-MoE), as Swin-MoE runs it through Tutel's CosineTopKGate: project x to a
//           low-dimensional space, h = proj(x) [R, P], and score it against learned expert
//           embeddings e [N, P] by cosine similarity, scaled by a learned temperature:
//             logits[r, i] = s * cos(h_r, e_i),  s = exp(min(log_scale, log 100)).
//           log_scale starts at log(1 / 0.5) (temperature 0.5, Tutel's init_t); the scale is
//           clamped at 100 as Tutel clamps at log(1 / 0.01), and while the clamp is active it
//           blocks log_scale's gradient. |logits| <= s, and the logits do not change when a
//           row h_r is scaled by c > 0 (so neither when x_r is, while proj's bias is 0, as
//           it is after init_weights).
//   l2      the same projection, expert codes and scale, scored by negative Euclidean
//           distance: logits[r, i] = -s * ||h_r - e_i||_2, on unnormalised vectors (on unit
//           vectors ||a - b||^2 = 2 - 2 cos(a, b), so the ranking would be the cosine gate's).
//
// Parameters of the cosine and l2 gates: "proj.weight" [P, D], "proj.bias" [P], "experts"
// [N, P] (Tutel's sim_matrix is the transpose, [P, N]) and "log_scale" [1] (Tutel's
// temperature). Both compute in f32 even inside an autocast scope (Tutel's fp32_gate): a
// bf16 cosine is off by ~4e-3, which a scale of up to 100 turns into ~0.4 of a logit, and the
// l2 gate's |a|^2 + |b|^2 - 2 a.b cancels. The linear gate follows autocast like any Linear.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "engine/nn/layers.h"
#include "models/config.h"

namespace vimoe::models {

// "linear", "cosine", "l2"; parse_gate is the inverse and throws vimoe::Error naming the
// accepted values for anything else (no abbreviations, any other case).
std::string gate_name(GateKind kind);
GateKind parse_gate(const std::string& name);

// The cosine and l2 gates' projection width P: proj_dim when positive, else min(D / 2, 256)
// (at least 1). Tutel defaults to 256; half the width keeps small test models small.
int64_t resolved_proj_dim(int64_t dim, int64_t proj_dim);

class Gate : public nn::Module {
 public:
  // x [R, D] -> logits [R, N].
  virtual Tensor forward(const Tensor& x) const = 0;
  virtual GateKind kind() const = 0;
  // From-scratch draws keyed by (seed, full parameter name), as engine/nn/init.h: `path` is
  // the gate's name in the model ("blocks.3.mlp.router").
  virtual void init_weights(const std::string& path, uint64_t seed) = 0;
};

// The weight init every gate's Linear part uses: timm's trunc_normal_(std=.02), bias 0.
inline constexpr double kGateLinearStd = 0.02;

// logits = x W^T + b, W [N, D] "weight", b [N] "bias". Built like torch.nn.Linear (uniform
// within +-1/sqrt(D), two draws from the default generator: the draws nn::Linear takes, so a
// model's later draws do not move); init_weights: W trunc_normal(0.02), b 0.
class LinearGate : public Gate {
 public:
  LinearGate(int64_t dim, int64_t experts);
  Tensor forward(const Tensor& x) const override;
  GateKind kind() const override { return GateKind::Linear; }
  void init_weights(const std::string& path, uint64_t seed) override;
  Tensor weight, bias;
};

// What the cosine and l2 gates share: proj (Linear D -> P), experts [N, P], log_scale [1],
// and the clamped scale. Built with proj as torch.nn.Linear, experts normal(std 0.01) from
// the default generator, log_scale log 2; init_weights: proj trunc_normal(0.02) / 0 (how
// Swin-MoE's model-wide Linear init reaches Tutel's cosine_projector), experts normal(0.01)
// (Tutel's init), log_scale log 2.
class ProjectedGate : public Gate {
 public:
  // proj_dim <= 0: resolved_proj_dim's default.
  ProjectedGate(int64_t dim, int64_t experts, int64_t proj_dim);
  void init_weights(const std::string& path, uint64_t seed) override;
  // s = exp(min(log_scale, log 100)), [1]: the clamp passes no gradient to log_scale while
  // it holds (and half of it exactly at log 100, as minimum() splits a tie).
  Tensor scale() const;

  static constexpr double kInitTemperature = 0.5;  // Tutel's init_t
  static constexpr double kMaxScale = 100.0;       // Tutel's clamp_max = log(1 / 0.01)
  static constexpr double kExpertStd = 0.01;       // Tutel's sim_matrix init

  std::shared_ptr<nn::Linear> proj;
  Tensor experts;    // [N, P]
  Tensor log_scale;  // [1]

 protected:
  // proj(x) in f32 (f64 for f64 input) with autocast off for the caller's scope: see above.
  Tensor project(const Tensor& x) const;
};

// logits[r, i] = s * cos(proj(x_r), e_i). Rows are normalised as F.normalize does,
// v / max(||v||, 1e-12): a zero projection gives zero logits, not NaN. The gate is
// invariant to scaling a row of proj(x), and of x too once proj's bias is 0.
class CosineGate : public ProjectedGate {
 public:
  using ProjectedGate::ProjectedGate;
  Tensor forward(const Tensor& x) const override;
  GateKind kind() const override { return GateKind::Cosine; }
};

// logits[r, i] = -s * ||proj(x_r) - e_i||_2, the squared distance as |a|^2 + |b|^2 - 2 a.b
// (one matmul) floored at 1e-12 before the square root, so that neither rounding below zero
// nor a code that coincides with a projection gives a NaN or infinite gradient.
class L2Gate : public ProjectedGate {
 public:
  using ProjectedGate::ProjectedGate;
  Tensor forward(const Tensor& x) const override;
  GateKind kind() const override { return GateKind::L2; }
};

// A gate of `kind` for width `dim` and `experts` experts; proj_dim is the cosine and l2
// gates' P (<= 0: the default) and is ignored by the linear gate.
std::shared_ptr<Gate> make_gate(GateKind kind, int64_t dim, int64_t experts, int64_t proj_dim = 0);

// The parameters make_gate(kind, dim, experts, proj_dim) has: D N + N for linear,
// D P + P + N P + 1 for cosine and l2.
int64_t gate_params(GateKind kind, int64_t dim, int64_t experts, int64_t proj_dim = 0);
// Multiply-adds per router row: D N for linear, D P + P N for cosine and l2 (the matrix
// products; the normalisation and the scale are O(P + N)).
int64_t gate_macs(GateKind kind, int64_t dim, int64_t experts, int64_t proj_dim = 0);

}  // namespace vimoe::models
