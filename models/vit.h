// The Vision Transformer in the DINOv2 layout, with optional Mixture-of-Experts FFNs.
//
//   x [B, C, H, W] -> patches (a reshape + GEMM) -> [CLS, registers, patches] + position
//   -> blocks: x += ls1 * attn(norm1(x)); x += ls2 * ffn(norm2(x))  (ffn dense or MoE; the
//      LayerScales ls1 / ls2 absent when layer_scale_init is 0)
//   -> norm -> head on CLS (or CLS with the mean patch token)
//   segmentation (head "patches"): the image padded with zeros at the bottom and right to the
//   patch grid -> ... -> norm -> a linear layer on every patch token -> the [classes, gh, gw]
//   logit map upsampled bilinearly (align_corners=False) to the padded size and cropped to
//   the image: logits [B, classes, H, W]. No BatchNorm before the linear layer (DINOv2's
//   linear protocol has one): the final LayerNorm already standardises each token, and here
//   the backbone trains with the head (ViMoE fine-tunes end to end), so a BatchNorm would only
//   add running statistics that differ between training crops and whole-image evaluation.
//
// Under a single router (Mobile V-MoE, MoEConfig::single_router) the model's "moe_router"
// reads the CLS row entering the first MoE block and its decision drives every MoE block;
// its logits come out as ModelOutput::router_logits (the super-class loss reads them).
//
// Parameter names follow the original DINOv2 repository ("blocks.3.attn.qkv.weight"), so its
// checkpoints load by name; models/dinov2.h maps the Hugging Face layout onto them.
#pragma once
#include <memory>
#include <vector>

#include "engine/nn/layers.h"
#include "models/model.h"
#include "models/moe.h"

namespace vimoe::models {

class SelfAttention : public nn::Module {
 public:
  SelfAttention(int64_t dim, int64_t heads);
  Tensor forward(const Tensor& x) const;  // [B, T, D] -> [B, T, D]
  std::shared_ptr<nn::Linear> qkv, proj;  // qkv rows: q, then k, then v
  int64_t heads;
};

class Block : public nn::Module {
 public:
  Block(const ViTConfig& vit, const MoEConfig& moe, bool is_moe, double drop_path);
  // Returns the new residual stream; fills `moe_out` when this block routes. `given`: the
  // single router's decision, which an MoE block then takes instead of routing itself.
  Tensor forward(const Tensor& x, MoEFFN::Output* moe_out, const Routing* given = nullptr) const;

  std::shared_ptr<nn::LayerNorm> norm1, norm2;
  std::shared_ptr<SelfAttention> attn;
  std::shared_ptr<nn::LayerScale> ls1, ls2;  // null without LayerScale
  std::shared_ptr<nn::Mlp> mlp;     // dense blocks
  std::shared_ptr<MoEFFN> moe;      // MoE blocks: the router reads the CLS row (image routing) or every token
  std::shared_ptr<nn::DropPath> drop_path;
};

// Non-overlapping patches as one GEMM: [B, C, H, W] -> [B, (H/p)*(W/p), D], tokens-major
// straight out of the GEMM (a p x p stride-p convolution would give [B, D, gh, gw] and need a
// transpose). The projection is a Conv2d module, so its weight keeps the checkpoints'
// convolution layout [D, C, p, p] and its initialisation.
class PatchEmbed : public nn::Module {
 public:
  PatchEmbed(int64_t in_channels, int64_t patch, int64_t dim);
  Tensor forward(const Tensor& images) const;
  std::shared_ptr<nn::Conv2d> proj;
  int64_t patch;
};

class VisionTransformer : public ImageModel {
 public:
  VisionTransformer(const ViTConfig& vit, const MoEConfig& moe = {});

  using Output = ModelOutput;  // features: [B, T, D] after the final norm
  // images [B, C, H, W] with H, W multiples of the patch size. A grid other than the
  // position table's is resampled bicubically (inference only: the table gets no gradient).
  ModelOutput forward(const Tensor& images) const override;

  // From-scratch weights as timm's VisionTransformer draws them (vit.cpp lists each rule):
  // normal std 0.02 for linear layers and the position table, near-zero tokens, PyTorch's
  // Conv2d default for the patch embedding, independent experts. Deterministic in `seed`.
  void init_weights(uint64_t seed) override;
  // DINOv2 weights (models/dinov2.h), original or Hugging Face layout.
  std::string load_pretrained(const std::string& path) override;

  nlohmann::json config() const override;
  std::string describe() const override;
  ModelSize size() const override { return model_size(vit, moe); }
  InputSpec input() const override { return {vit.image_size, vit.in_channels}; }
  const MoEConfig& moe_config() const override { return moe; }
  std::string routing_unit() const override { return moe.routing == RoutingLevel::Image ? "images" : "tokens"; }
  // Embeddings layer 0, block i layer i + 1 (the single router: its first MoE block's), the
  // final norm and head depth + 1.
  int64_t num_layers() const override { return vit.depth + 1; }
  int64_t layer_of(const std::string& parameter) const override;
  bool decays(const std::string& parameter, const Tensor& p) const override;

  std::string name = "vit";  // the preset it was made from ("vit_s14"); "vit": none

  ViTConfig vit;
  MoEConfig moe;
  std::shared_ptr<PatchEmbed> patch_embed;
  Tensor cls_token, register_tokens, pos_embed;
  std::vector<std::shared_ptr<Block>> blocks;  // also registered, in order, as "blocks.<i>"
  std::shared_ptr<SingleRouter> moe_router;    // null unless moe.single_router
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;  // null without classes
};

// The factory's builder for the ViT presets (models::preset): options are ViTConfig's fields
// by name, plus mlp_ratio (hidden = ratio x width), layer_scale (0: none), head ("cls" or
// "cls+mean"), pretrained (a DINOv2 .safetensors whose shape the model takes: width, depth,
// heads, hidden, patch, registers; the input size and head stay the options'), and moe
// (models/options.h; placements "every2" and "last2", the Sweet-spot paper's: every second
// block, and the last two of those).
std::shared_ptr<ImageModel> create_vit(const std::string& name, const nlohmann::json& options);

}  // namespace vimoe::models
