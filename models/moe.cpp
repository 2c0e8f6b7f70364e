#include "models/moe.h"

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/nn/init.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/gelu.h"
#include "engine/ops/moe_dispatch.h"
#include "engine/ops/random.h"
#include "engine/ops/reduce.h"

namespace vimoe::models {

MoEFFN::MoEFFN(int64_t dim, int64_t hidden, const MoEConfig& cfg) : config(cfg) {
  VIMOE_CHECK(cfg.experts >= 1 && cfg.top_k >= 1 && cfg.top_k <= cfg.experts, "MoEFFN: top-", cfg.top_k, " of ",
              cfg.experts, " experts is not a valid configuration");
  VIMOE_CHECK(cfg.capacity_factor >= 0 && (!cfg.bpr || cfg.capacity_factor > 0), "MoEFFN: capacity factor ",
              cfg.capacity_factor, (cfg.bpr ? " with BPR" : ""), " is not valid (0: dropless; BPR needs a capacity)");
  VIMOE_CHECK(!cfg.single_router || cfg.routing == RoutingLevel::Image, "MoEFFN: a single router needs image "
              "routing");
  if (!cfg.single_router) router = register_module("router", make_gate(cfg.gate, dim, cfg.experts, cfg.gate_dim));
  const int64_t N = cfg.experts;
  fc1_weight = Tensor::zeros({N, hidden, dim});
  fc1_bias = Tensor::zeros({N, hidden});
  fc2_weight = Tensor::zeros({N, dim, hidden});
  fc2_bias = Tensor::zeros({N, dim});
  register_parameter("fc1_weight", &fc1_weight);
  register_parameter("fc1_bias", &fc1_bias);
  register_parameter("fc2_weight", &fc2_weight);
  register_parameter("fc2_bias", &fc2_bias);
  if (cfg.shared_expert) shared = register_module("shared", std::make_shared<nn::Mlp>(dim, hidden));
  // Built as copies of one fresh dense MLP (what an MoE layer upcycled from a dense model
  // is); a model's init_weights then draws every expert afresh, while a pretrained import
  // seeds them all from its MLP through init_from_dense.
  nn::Mlp fresh(dim, hidden);
  init_from_dense(fresh);
}

void MoEFFN::init_from_dense(const nn::Mlp& dense) {
  NoGradGuard no_grad;
  fc1_weight.copy_(dense.fc1->weight);
  fc1_bias.copy_(dense.fc1->bias);
  fc2_weight.copy_(dense.fc2->weight);
  fc2_bias.copy_(dense.fc2->bias);
  if (shared) shared->load_state_dict(dense.state_dict());
}

void MoEFFN::init_experts(const std::string& path, double std, uint64_t seed) {
  NoGradGuard no_grad;
  nn::init::trunc_normal(fc1_weight, std, seed, nn::init::join(path, "fc1_weight"));
  nn::init::trunc_normal(fc2_weight, std, seed, nn::init::join(path, "fc2_weight"));
  fc1_bias.zero_();
  fc2_bias.zero_();
}

Routing MoEFFN::route(const Tensor& logits) const { return route_rows(config, logits, is_training()); }

Routing route_rows(const MoEConfig& config, const Tensor& logits, bool training) {
  const int64_t N = config.experts;
  const bool importance_load = config.balance == BalanceLoss::ImportanceLoad;
  // V-MoE's router noise std: 1 / N (Riquelme et al. 2021, appendix A).
  const double sigma = 1.0 / static_cast<double>(N);
  Tensor noisy = logits;
  if (importance_load && training) {
    Tensor eps = randn(logits.shape(), next_seed(), TensorOptions(DType::F32, logits.device()));
    noisy = logits.to(DType::F32) + eps * sigma;
  }
  const double switch_alpha = config.balance == BalanceLoss::Switch ? config.aux_alpha : 0.0;
  Routing r = route_topk(noisy, config.top_k, config.renormalize, switch_alpha);
  if (importance_load) r.aux_loss = importance_load_loss(logits, noisy, r.expert_ids, sigma) * config.aux_alpha;
  if (config.capacity_factor > 0) {
    const int64_t rows = logits.size(0);
    const int64_t capacity = expert_capacity(config.capacity_factor, config.top_k, rows, N);
    // BPR's priority: the row's largest router probability (its first gate before any
    // renormalisation).
    const Tensor priority = config.bpr ? max(r.probs, 1) : Tensor();
    r.keep = capacity_mask(r.expert_ids, N, capacity, priority, r.gates.dtype());
    r.gates = r.gates * r.keep;
  }
  return r;
}

MoEFFN::Output MoEFFN::forward(const Tensor& x, const Tensor& router_input) const {
  VIMOE_CHECK(x.dim() == 3 && router_input.dim() == 2 && router_input.size(1) == x.size(2), "MoEFFN: expected x "
              "[B, T, D] and a router input [B, D] or [B * T, D], found x ", shape_str(x.shape()),
              " and router input ", shape_str(router_input.shape()));
  const int64_t B = x.size(0), T = x.size(1);
  VIMOE_CHECK(router_input.size(0) == B || router_input.size(0) == B * T, "MoEFFN: the router input ",
              shape_str(router_input.shape()), " has neither one row per image (", B, ") nor one per token (",
              B * T, ") of x ", shape_str(x.shape()));
  VIMOE_CHECK(router, "MoEFFN: this layer takes its routing from the model's single router; call forward(x, "
              "routing)");
  return forward(x, route(router->forward(router_input)));
}

MoEFFN::Output MoEFFN::forward(const Tensor& x, const Routing& routing) const {
  const int64_t R = routing.expert_ids.defined() ? routing.expert_ids.size(0) : -1;
  VIMOE_CHECK(x.dim() == 3 && (R == x.size(0) || R == x.size(0) * x.size(1)), "MoEFFN: expected x [B, T, D] and a "
              "routing of B or B * T rows, found x ", shape_str(x.shape()), " and ", R, " routed rows");
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  const bool image_level = R == B;
  // Under autocast the experts run in the half type: cast before dispatch, so that it moves
  // half-width rows. The router and the shared expert read f32 inputs and cast in their own
  // linear layers, so the gradients meet at x in f32 rather than in a half-precision sum.
  const Tensor hx = autocast::lower(x);
  const Tensor rows = image_level ? hx : hx.reshape({B * T, D});
  Output out;
  out.routing = routing;
  const DispatchPlan plan = plan_dispatch(out.routing.expert_ids, config.experts);
  const Tensor hidden = gelu(grouped_linear(dispatch_rows(rows, plan), fc1_weight, fc1_bias, plan));
  const Tensor expert_out = grouped_linear(hidden, fc2_weight, fc2_bias, plan);
  Tensor y = combine_rows(expert_out, out.routing.gates, plan).reshape({B, T, D});
  if (shared) y = y + shared->forward(x);
  out.y = y;
  return out;
}

SingleRouter::SingleRouter(int64_t dim, const MoEConfig& config, double ln_eps) {
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(dim, ln_eps));
  gate = register_module("gate", make_gate(config.gate, dim, config.experts, config.gate_dim));
}

Tensor SingleRouter::forward(const Tensor& cls) const { return gate->forward(norm->forward(cls)); }

MoELayerSize single_router_size(int64_t dim, const MoEConfig& m) {
  const int64_t params = 2 * dim + gate_params(m.gate, dim, m.experts, m.gate_dim);
  return {params, params, gate_macs(m.gate, dim, m.experts, m.gate_dim) + 5 * dim};
}

MoELayerSize moe_layer_size(int64_t dim, int64_t hidden, const MoEConfig& m) {
  const int64_t ffn = mlp_params(dim, hidden);
  const int64_t router = m.single_router ? 0 : gate_params(m.gate, dim, m.experts, m.gate_dim);
  const int64_t shared = m.shared_expert ? ffn : 0;
  return {m.experts * ffn + router + shared, m.top_k * ffn + router + shared,
          m.single_router ? 0 : gate_macs(m.gate, dim, m.experts, m.gate_dim)};
}

}  // namespace vimoe::models
