// The Mixture-of-Experts FFN that ViT and ConvNeXt share: a linear router over N experts of
// the dense MLP's shape (their weights stacked: fc1 [N, hidden, D], fc2 [N, D, hidden]),
// top-k, dropless dispatch (engine/ops/moe_dispatch.h), and an optional shared expert (a
// dense MLP added to the routed output).
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
  // Every expert (and the shared expert) becomes a copy of a dense MLP: how an MoE layer
  // starts from a pretrained model (upcycling).
  void init_from_dense(const nn::Mlp& dense);
  // From-scratch expert draws, as timm draws a Linear: trunc_normal(std) over each whole
  // stacked weight (one draw over [N, out, in]: distinct experts), biases 0. The router and
  // the shared expert are Linear / Mlp modules and follow the model's rule for those.
  // `path` is this layer's name in the model.
  void init_experts(const std::string& path, double std, uint64_t seed);

  std::shared_ptr<nn::Linear> router;
  Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
  std::shared_ptr<nn::Mlp> shared;  // null without a shared expert
  MoEConfig config;
};

// Parameters of one MoE FFN layer in a model of width `dim`: all of them, and those one
// router row uses (top-k experts, the shared expert, the router).
struct MoELayerSize {
  int64_t total_params = 0, active_params = 0;
};
MoELayerSize moe_layer_size(int64_t dim, int64_t hidden, const MoEConfig& config);
// The parameters of a dense MLP dim -> hidden -> dim with biases.
inline int64_t mlp_params(int64_t dim, int64_t hidden) { return (dim * hidden + hidden) + (hidden * dim + dim); }

}  // namespace vimoe::models
