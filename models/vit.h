// The Vision Transformer in the DINOv2 layout, with optional Mixture-of-Experts FFNs.
//
//   x [B, C, H, W] -> patches (a reshape + GEMM) -> [CLS, registers, patches] + position
//   -> blocks: x += ls1 * attn(norm1(x)); x += ls2 * ffn(norm2(x))  (ffn dense or MoE; the
//      LayerScales ls1 / ls2 absent when layer_scale_init is 0)
//   -> norm -> head on CLS (or CLS with the mean patch token)
//
// Parameter names follow the original DINOv2 repository ("blocks.3.attn.qkv.weight"), so its
// checkpoints load by name; models/dinov2.h maps the Hugging Face layout onto them.
#pragma once
#include <memory>
#include <vector>

#include "engine/nn/layers.h"
#include "engine/ops/routing.h"
#include "models/config.h"

namespace vimoe::models {

class Mlp : public nn::Module {
 public:
  Mlp(int64_t dim, int64_t hidden);
  Tensor forward(const Tensor& x) const;  // fc2(gelu(fc1(x))), the bias fused into the GELU
  std::shared_ptr<nn::Linear> fc1, fc2;
};

class SelfAttention : public nn::Module {
 public:
  SelfAttention(int64_t dim, int64_t heads);
  Tensor forward(const Tensor& x) const;  // [B, T, D] -> [B, T, D]
  std::shared_ptr<nn::Linear> qkv, proj;  // qkv rows: q, then k, then v
  int64_t heads;
};

class LayerScale : public nn::Module {
 public:
  LayerScale(int64_t dim, double init);
  Tensor forward(const Tensor& x) const;
  Tensor gamma;
};

// One MoE FFN layer: a linear router over N experts of the FFN's shape (their weights
// stacked: fc1 [N, hidden, D], fc2 [N, D, hidden]), top-k, and an optional shared expert
// whose output is added to the routed one.
class MoEFFN : public nn::Module {
 public:
  MoEFFN(int64_t dim, int64_t hidden, const MoEConfig& config);
  struct Output {
    Tensor y;         // [B, T, D]
    Routing routing;  // the layer's decisions (rows: images or tokens)
  };
  Output forward(const Tensor& h) const;
  // Every expert (and the shared expert) becomes a copy of a dense FFN: how ViMoE starts
  // from a pretrained model.
  void init_from_dense(const Mlp& dense);

  std::shared_ptr<nn::Linear> router;
  Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
  std::shared_ptr<Mlp> shared;  // null without a shared expert
  MoEConfig config;
};

class Block : public nn::Module {
 public:
  Block(const ViTConfig& vit, const MoEConfig& moe, bool is_moe, double drop_path);
  // Returns the new residual stream; fills `moe_out` when this block routes.
  Tensor forward(const Tensor& x, MoEFFN::Output* moe_out) const;

  std::shared_ptr<nn::LayerNorm> norm1, norm2;
  std::shared_ptr<SelfAttention> attn;
  std::shared_ptr<LayerScale> ls1, ls2;  // null without LayerScale
  std::shared_ptr<Mlp> mlp;     // dense blocks
  std::shared_ptr<MoEFFN> moe;  // MoE blocks
  double drop_path;
};

// Non-overlapping patches as one GEMM: [B, C, H, W] -> [B, (H/p)*(W/p), D]. The weight
// keeps the convolution layout [D, C, p, p] of the checkpoints.
class PatchEmbed : public nn::Module {
 public:
  PatchEmbed(int64_t in_channels, int64_t patch, int64_t dim);
  Tensor forward(const Tensor& images) const;
  struct Projection : nn::Module {
    Projection(int64_t in_channels, int64_t patch, int64_t dim);
    Tensor weight, bias;
  };
  std::shared_ptr<Projection> proj;
  int64_t patch;
};

class VisionTransformer : public nn::Module {
 public:
  VisionTransformer(const ViTConfig& vit, const MoEConfig& moe = {});

  struct Output {
    Tensor logits;                // [B, classes]; undefined without a head
    Tensor features;              // [B, T, D] after the final norm
    Tensor aux_loss;              // sum of the MoE layers' load-balancing losses (0-dim)
    std::vector<Routing> routing;  // one per MoE layer, in block order
    std::vector<int64_t> moe_blocks;
  };
  // images [B, C, H, W] with H, W multiples of the patch size. A grid other than the
  // position table's is resampled bicubically (inference only: the table gets no gradient).
  Output forward(const Tensor& images) const;

  // From-scratch weights as timm's VisionTransformer draws them (vit.cpp lists each rule):
  // normal std 0.02 for linear layers and the position table, near-zero tokens, PyTorch's
  // Conv2d default for the patch embedding, independent experts. Deterministic in `seed`.
  void init_weights(uint64_t seed);

  ViTConfig vit;
  MoEConfig moe;
  std::shared_ptr<PatchEmbed> patch_embed;
  Tensor cls_token, register_tokens, pos_embed;
  std::vector<std::shared_ptr<Block>> blocks;  // also registered, in order, as "blocks.<i>"
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;  // null without classes
};

}  // namespace vimoe::models
