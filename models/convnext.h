// ConvNeXt (Liu et al. 2022) in timm's layout and parameter names, with the Sweet-spot
// paper's ConvNeXt-MoE (Videau et al.):
//
//   x [B, C, H, W] -> stem: p x p conv stride p ("stem.0") + LayerNorm over channels ("stem.1")
//   -> four stages; stage i > 0 starts with LayerNorm + 2x2 stride-2 conv ("downsample.0/1")
//   -> blocks: y = x + drop_path(gamma * mlp(norm(conv_dw(x))))   (conv_dw 7x7 depthwise,
//      padding 3; norm and mlp channels-last, per pixel; gamma the layer scale, init 1e-6)
//   -> head: global average pool -> LayerNorm ("head.norm") -> Linear ("head.fc")
//
// In an MoE block the MLP becomes an MoE FFN (models/moe.h) whose experts are the pointwise
// MLP applied per pixel, with the paper's added skip connection around it (its Figure 1b):
// mlp(h) is replaced by h + moe(h), h the normalised pixels. The router reads each pixel
// (pixel routing, the paper's) or the mean of h over the image (image routing).
// Activations stay NCHW, timm's layout, so its checkpoints map one to one; the per-pixel
// part runs on a channels-last copy.
#pragma once
#include <memory>
#include <vector>

#include "engine/nn/layers.h"
#include "models/model.h"
#include "models/moe.h"

namespace vimoe::models {

struct ConvNeXtConfig {
  int64_t image_size = 224;  // what the size counts assume; any multiple of stem_patch * 8 runs
  int64_t in_channels = 3;
  std::vector<int64_t> depths{3, 3, 9, 3};
  std::vector<int64_t> dims{96, 192, 384, 768};
  // The stem's kernel and stride. Unlike timm's patch_size=2, which adds a stride-2
  // downsampling to stage 0 to keep its total stride at 4, a 2x2 stem here leaves stage 0 at
  // half the input side (convnext_cifar: 16x16 maps from 32x32 images).
  int64_t stem_patch = 4;
  int64_t kernel_size = 7;        // the depthwise kernel (padding kernel_size / 2)
  double mlp_ratio = 4;           // the MLP's hidden width per stage: ratio x dim
  double layer_scale_init = 1e-6; // gamma's initial value; 0: no layer scale
  double ln_eps = 1e-6;
  double drop_path = 0;           // stochastic depth, linear over all blocks from 0 to this
  double head_init_scale = 1.0;   // timm's: scales the head's initial weights
  int64_t num_classes = 0;        // 0: no head (a backbone; features pooled and normalised)

  int64_t blocks() const;
  int64_t hidden(size_t stage) const { return static_cast<int64_t>(mlp_ratio * static_cast<double>(dims[stage])); }
};

class ConvNeXtBlock : public nn::Module {
 public:
  ConvNeXtBlock(const ConvNeXtConfig& c, size_t stage, const MoEConfig* moe, double drop_path);
  // x [B, C, H, W]; fills `moe_out` when this block routes.
  Tensor forward(const Tensor& x, MoEFFN::Output* moe_out) const;

  std::shared_ptr<nn::Conv2d> conv_dw;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Mlp> mlp;     // dense blocks
  std::shared_ptr<MoEFFN> moe;      // MoE blocks
  Tensor gamma;                     // [C]; undefined without layer scale
  std::shared_ptr<nn::DropPath> drop_path;
};

class ConvNeXt : public ImageModel {
 public:
  ConvNeXt(const ConvNeXtConfig& config, const MoEConfig& moe = {});

  // images [B, C, H, W], H and W multiples of stem_patch * 8 (each stage halves the side).
  ModelOutput forward(const Tensor& images) const override;
  // timm's _init_weights: Conv2d and Linear weights trunc_normal_(std 0.02), biases 0 (the
  // head's scaled by head_init_scale); LayerNorm 1 / 0; gamma keeps its configured value;
  // MoE experts drawn like Linear weights, each expert independently.
  void init_weights(uint64_t seed) override;
  // A timm ConvNeXt checkpoint (.safetensors, timm's names) of this shape; an MoE block's
  // experts (and shared expert) all start from that block's MLP, as upcycling does.
  std::string load_pretrained(const std::string& path) override;

  nlohmann::json config() const override;
  std::string describe() const override;
  ModelSize size() const override;
  InputSpec input() const override { return {cfg.image_size, cfg.in_channels}; }
  const MoEConfig& moe_config() const override { return moe; }
  std::string routing_unit() const override { return moe.routing == RoutingLevel::Image ? "images" : "pixels"; }
  // The stem is layer 0; block k (counted over all stages) layer k + 1, a stage's
  // downsampling with its first block; the head blocks() + 1.
  int64_t num_layers() const override { return cfg.blocks() + 1; }
  int64_t layer_of(const std::string& parameter) const override;

  std::string name = "convnext";
  ConvNeXtConfig cfg;
  MoEConfig moe;
  std::vector<std::vector<std::shared_ptr<ConvNeXtBlock>>> blocks;  // [stage][block]
  struct Head : nn::Module {
    Head(int64_t dim, int64_t classes, double eps);
    std::shared_ptr<nn::LayerNorm> norm;
    std::shared_ptr<nn::Linear> fc;  // null without classes
  };
  std::shared_ptr<nn::Conv2d> stem_conv;
  std::shared_ptr<nn::LayerNorm> stem_norm;
  std::vector<std::shared_ptr<nn::LayerNorm>> down_norm;  // [stage], null for stage 0
  std::vector<std::shared_ptr<nn::Conv2d>> down_conv;
  std::shared_ptr<Head> head;
};

// Parameters and multiply-adds per image, counted as for the ViT: convolutions and linear
// layers by their multiply-adds, 5 per element for each LayerNorm, routers included.
ModelSize convnext_size(const ConvNeXtConfig& c, const MoEConfig& moe);

// The Sweet-spot placements over stages of `depths` blocks, as block indices counted over
// all stages: "every2" (blocks 1, 3, 5, ...), "stage" (the final block of each stage),
// "last2" (the final block of each of the last two stages), "last3" (last2 and the middle
// block of the third-last stage). Throws for another name.
std::vector<int64_t> convnext_placement(const std::string& placement, const std::vector<int64_t>& depths);

// The factory's builder: presets convnext_tiny / _small / _base (timm's) and convnext_cifar
// (32x32 inputs); options are ConvNeXtConfig's fields by name, plus width (dims width, 2x,
// 4x, 8x), patch_size (the stem's), layer_scale (gamma's init; 0: none) and moe
// (models/options.h, placements as convnext_placement).
std::shared_ptr<ImageModel> create_convnext(const std::string& name, const nlohmann::json& options);

}  // namespace vimoe::models
