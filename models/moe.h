// The Mixture-of-Experts FFN that ViT and ConvNeXt share: a router gate (linear, cosine or
// l2: models/gates.h) over N experts of the dense MLP's shape (their weights stacked: fc1
// [N, hidden, D], fc2 [N, D, hidden]), top-k, dispatch (engine/ops/moe_dispatch.h), and an
// optional shared expert (a dense MLP added to the routed output).
//
// One forward, as MoEConfig sets it:
//   logits = gate(router_input) [R, N];
//   balance importance_load, in training: noisy = logits + eps, eps ~ N(0, (1/N)^2) (V-MoE's
//     fixed router noise); otherwise noisy = logits;
//   route_topk(noisy, k, renormalize): the experts and gates (softmax probabilities of the k,
//     renormalised over them only if asked);
//   the balancing loss, times aux_alpha: switch N sum f_i P_i (route_topk's), importance_load
//     (importance_load_loss), or none;
//   capacity_factor > 0: each expert keeps at most ceil(C k R / N) of the R k slots, claimed
//     choice by choice in row order or, with bpr, by each row's top probability (capacity_mask);
//     a dropped slot's gate becomes 0, so a row whose every choice was dropped passes on
//     nothing from the routed experts: the block's residual carries it, plus the shared expert
//     when there is one. The dropped slots still run through their expert (the dispatch is
//     dropless; their output is multiplied by 0): capacity changes what the model computes,
//     not its cost here.
//
// The caller chooses what the router reads, and so what it routes:
//   - image routing: router_input [B, D], one row per image (ViT's CLS token, ConvNeXt's
//     pooled feature map); each image's T rows go to its experts together;
//   - token / pixel routing: router_input [B * T, D], one row per row of x (usually x itself).
#pragma once
#include <memory>

#include "engine/nn/layers.h"
#include "engine/ops/routing.h"
#include "models/config.h"
#include "models/gates.h"

namespace vimoe::models {

class MoEFFN : public nn::Module {
 public:
  MoEFFN(int64_t dim, int64_t hidden, const MoEConfig& config);
  struct Output {
    Tensor y;         // [B, T, D]
    Routing routing;  // the layer's decisions (rows: images or tokens)
  };
  // x [B, T, D]; router_input [B, D] or [B * T, D] (see above), in the order of x's rows.
  Output forward(const Tensor& x, const Tensor& router_input) const;
  // The experts under a decision made elsewhere (Mobile V-MoE's single router): `routing`
  // has one row per image (or per token) of x. Output::routing is a copy of it.
  Output forward(const Tensor& x, const Routing& routing) const;
  // The routing step alone: route_rows(config, logits, is_training()).
  Routing route(const Tensor& logits) const;
  // Every expert (and the shared expert) becomes a copy of a dense MLP: how an MoE layer
  // starts from a pretrained model (upcycling).
  void init_from_dense(const nn::Mlp& dense);
  // From-scratch expert draws, as timm draws a Linear: trunc_normal(std) over each whole
  // stacked weight (one draw over [N, out, in]: distinct experts), biases 0. The router is a
  // Gate (its own init_weights) and the shared expert an Mlp: modules the model's init loop
  // reaches by their type. `path` is this layer's name in the model.
  void init_experts(const std::string& path, double std, uint64_t seed);

  // "router": its parameters are router.weight / router.bias for the linear gate,
  // router.proj.*, .experts, .log_scale else; null under a single router.
  std::shared_ptr<Gate> router;
  Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
  std::shared_ptr<nn::Mlp> shared;  // null without a shared expert
  MoEConfig config;
};

// Logits [R, N] -> the decisions, the balancing loss (times aux_alpha), noise and capacity as
// described at the top, for an MoE layer's own router or a single router's.
Routing route_rows(const MoEConfig& config, const Tensor& logits, bool training);

// Mobile V-MoE's single per-image router: a LayerNorm on the image's representation (the CLS
// row of the residual stream before the first MoE block), then a gate. The paper leaves the
// normalisation open; every per-layer router here reads a LayerNorm's output (the block's
// norm2), so this one has its own.
class SingleRouter : public nn::Module {
 public:
  SingleRouter(int64_t dim, const MoEConfig& config, double ln_eps);
  Tensor forward(const Tensor& cls) const;  // [B, D] -> logits [B, N]
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<Gate> gate;
};

// Parameters of one MoE FFN layer in a model of width `dim`: all of them, and those one
// router row uses (top-k experts, the shared expert, the router gate), and the router gate's
// multiply-adds per routed row. Under a single router a layer has no router: see
// single_router_size for the model's one.
struct MoELayerSize {
  int64_t total_params = 0, active_params = 0;
  int64_t router_macs = 0;
};
MoELayerSize moe_layer_size(int64_t dim, int64_t hidden, const MoEConfig& config);
// The single router's parameters (LayerNorm + gate) and multiply-adds per image (the gate's
// and 5 per element for the norm, as model_size counts a LayerNorm).
MoELayerSize single_router_size(int64_t dim, const MoEConfig& config);
// The parameters of a dense MLP dim -> hidden -> dim with biases.
inline int64_t mlp_params(int64_t dim, int64_t hidden) { return (dim * hidden + hidden) + (hidden * dim + dim); }

}  // namespace vimoe::models
