#include "models/gates.h"

#include <algorithm>
#include <cmath>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/nn/init.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/random.h"
#include "engine/ops/reduce.h"

namespace vimoe::models {

namespace {

// F.normalize's epsilon: rows are divided by max(||v||, 1e-12). Applied as
// v * rsqrt(max(|v|^2, 1e-24)), the same value, because sqrt's gradient at a zero row is
// infinite and would reach the row as 0 * inf = NaN even behind the max; rsqrt of the
// floored square is finite everywhere (1e-24 is a normal number in f32 and bf16).
constexpr double kNormEps = 1e-12;
// The l2 gate's floor under the squared distance: a projection that coincides with an
// expert code (or rounds |a|^2 + |b|^2 - 2 a.b below zero) would give sqrt(0) or sqrt of a
// negative, an infinite or NaN gradient. Behind the floor the clamp passes no gradient, and
// above it sqrt's gradient is at most 1 / (2 * 1e-6).
constexpr double kDistFloor = 1e-12;

Tensor normalize_rows(const Tensor& v) {
  const Tensor sq = sum(v * v, {1}, /*keepdim=*/true);  // [rows, 1]
  return v * rsqrt(maximum(sq, scalar_like(kNormEps * kNormEps, sq)));
}

void check_sizes(const char* what, int64_t dim, int64_t experts) {
  VIMOE_CHECK(dim >= 1 && experts >= 1, what, ": expected a positive width and expert count, found dim ", dim,
              " and ", experts, " experts");
}

void check_input(const char* what, const Tensor& x, int64_t dim) {
  VIMOE_CHECK(x.dim() == 2 && x.size(1) == dim, what, ": expected router input [R, ", dim, "], found ",
              shape_str(x.shape()));
}

}  // namespace

std::string gate_name(GateKind kind) {
  switch (kind) {
    case GateKind::Linear: return "linear";
    case GateKind::Cosine: return "cosine";
    case GateKind::L2: return "l2";
  }
  VIMOE_FAIL("gate_name: unknown GateKind ", static_cast<int>(kind));
}

GateKind parse_gate(const std::string& name) {
  for (GateKind k : {GateKind::Linear, GateKind::Cosine, GateKind::L2})
    if (name == gate_name(k)) return k;
  VIMOE_FAIL("unknown router gate \"", name, "\": expected one of linear, cosine, l2");
}

int64_t resolved_proj_dim(int64_t dim, int64_t proj_dim) {
  VIMOE_CHECK(dim >= 1, "resolved_proj_dim: expected a positive width, found ", dim);
  return proj_dim > 0 ? proj_dim : std::max<int64_t>(1, std::min<int64_t>(dim / 2, 256));
}

// ---- linear --------------------------------------------------------------------------

LinearGate::LinearGate(int64_t dim, int64_t experts) {
  check_sizes("LinearGate", dim, experts);
  // torch.nn.Linear's draws, in nn::Linear's order (weight, then bias).
  const double bound = 1.0 / std::sqrt(static_cast<double>(dim));
  weight = Tensor::empty({experts, dim});
  uniform_(weight, -bound, bound, next_seed());
  bias = Tensor::empty({experts});
  uniform_(bias, -bound, bound, next_seed());
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor LinearGate::forward(const Tensor& x) const {
  check_input("LinearGate", x, weight.size(1));
  return linear(x, weight, bias);
}

void LinearGate::init_weights(const std::string& path, uint64_t seed) {
  NoGradGuard no_grad;
  nn::init::trunc_normal(weight, kGateLinearStd, seed, nn::init::join(path, "weight"));
  bias.zero_();
}

// ---- cosine and l2 -------------------------------------------------------------------

ProjectedGate::ProjectedGate(int64_t dim, int64_t n_experts, int64_t proj_dim) {
  check_sizes("ProjectedGate", dim, n_experts);
  const int64_t P = resolved_proj_dim(dim, proj_dim);
  proj = register_module("proj", std::make_shared<nn::Linear>(dim, P));
  experts = Tensor::empty({n_experts, P});
  normal_(experts, 0.0, kExpertStd, next_seed());
  register_parameter("experts", &experts);
  log_scale = Tensor::full({1}, std::log(1.0 / kInitTemperature));
  register_parameter("log_scale", &log_scale);
}

void ProjectedGate::init_weights(const std::string& path, uint64_t seed) {
  NoGradGuard no_grad;
  nn::init::trunc_normal(proj->weight, kGateLinearStd, seed, nn::init::join(path, "proj.weight"));
  proj->bias.zero_();
  nn::init::normal(experts, kExpertStd, seed, nn::init::join(path, "experts"));
  log_scale.fill_(std::log(1.0 / kInitTemperature));
}

Tensor ProjectedGate::scale() const {
  // minimum(), not a host-side clamp: the clamp must be part of the graph so that it blocks
  // log_scale's gradient exactly while it holds.
  return exp(minimum(log_scale, scalar_like(std::log(kMaxScale), log_scale)));
}

Tensor ProjectedGate::project(const Tensor& x) const {
  check_input(kind() == GateKind::Cosine ? "CosineGate" : "L2Gate", x, proj->weight.size(1));
  // Upcast inside the caller's autocast scope (upper() is a no-op outside one), then project
  // with autocast off: the whole gate runs in f32 (see the header).
  const Tensor in = autocast::upper(x);
  AutocastGuard no_autocast(DType::BF16, /*enabled=*/false);
  return proj->forward(in);
}

Tensor CosineGate::forward(const Tensor& x) const {
  const Tensor h = project(x);  // [R, P]
  AutocastGuard no_autocast(DType::BF16, /*enabled=*/false);
  const Tensor cos = matmul(normalize_rows(h), normalize_rows(experts).t());  // [R, N], in [-1, 1]
  return cos * scale();
}

Tensor L2Gate::forward(const Tensor& x) const {
  const Tensor h = project(x);  // [R, P]
  AutocastGuard no_autocast(DType::BF16, /*enabled=*/false);
  // ||h_r - e_i||^2 = |h_r|^2 + |e_i|^2 - 2 h_r.e_i: one [R, P] x [P, N] GEMM instead of an
  // [R, N, P] difference tensor.
  const Tensor hh = sum(h * h, {1}, /*keepdim=*/true);                         // [R, 1]
  const Tensor ee = sum(experts * experts, {1}).reshape({1, experts.size(0)});  // [1, N]
  const Tensor d2 = hh + ee - 2.0 * matmul(h, experts.t());                    // [R, N]
  return -(sqrt(maximum(d2, scalar_like(kDistFloor, d2))) * scale());
}

// ---- factory -------------------------------------------------------------------------

std::shared_ptr<Gate> make_gate(GateKind kind, int64_t dim, int64_t experts, int64_t proj_dim) {
  switch (kind) {
    case GateKind::Linear: return std::make_shared<LinearGate>(dim, experts);
    case GateKind::Cosine: return std::make_shared<CosineGate>(dim, experts, proj_dim);
    case GateKind::L2: return std::make_shared<L2Gate>(dim, experts, proj_dim);
  }
  VIMOE_FAIL("make_gate: unknown GateKind ", static_cast<int>(kind));
}

int64_t gate_params(GateKind kind, int64_t dim, int64_t experts, int64_t proj_dim) {
  if (kind == GateKind::Linear) return dim * experts + experts;
  const int64_t P = resolved_proj_dim(dim, proj_dim);
  return (dim * P + P) + experts * P + 1;  // proj, expert codes, log_scale
}

int64_t gate_macs(GateKind kind, int64_t dim, int64_t experts, int64_t proj_dim) {
  if (kind == GateKind::Linear) return dim * experts;
  const int64_t P = resolved_proj_dim(dim, proj_dim);
  return dim * P + P * experts;
}

}  // namespace vimoe::models
