// The interface every image model of the engine implements, and all the apps see: a model
// is created by name from a JSON configuration (models/factory.h), runs images to logits
// with its MoE routing, and says what it is (configuration, description, size) and how its
// parameters group for the optimiser. An app never names a concrete model class.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/nn/module.h"
#include "engine/ops/routing.h"
#include "engine/optim/adamw.h"
#include "models/config.h"

namespace vimoe::models {

// Where an MoE layer's routed rows lie in the image. Each image owns `rows_per_image`
// consecutive rows of the layer's Routing; under token / pixel routing its patch grid
// [height x width] (row-major) starts at row `first` of them (ViT: after the CLS and register
// tokens). Under image routing rows_per_image is 1 and the grid is empty (height = width = 0).
struct RoutingGrid {
  int64_t rows_per_image = 1, first = 0, height = 0, width = 0;
  int64_t cell = 0;  // the input pixels one grid cell spans per side (ViT: the patch size)
};

struct ModelOutput {
  Tensor logits;    // [B, classes]; a segmentation model's [B, classes, H, W] over the input's
                    // pixels; undefined without a head
  Tensor features;  // the last features before pooling: ViT [B, T, D] after its final norm,
                    // ConvNeXt [B, C, h, w] out of its last stage
  Tensor aux_loss;  // 0-dim: the sum of the MoE layers' load-balancing losses (0 when dense;
                    // the single router's once under a single router)
  std::vector<Routing> routing;     // one per MoE layer, in depth order (under a single
                                    // router, every layer's is that router's decision)
  Tensor router_logits;             // [B, N]: the single router's logits; undefined otherwise
  std::vector<int64_t> moe_blocks;  // each MoE layer's block, counted over all stages from 0
  std::vector<RoutingGrid> routing_grids;  // one per MoE layer
};

// The input a model is built for.
struct InputSpec {
  int64_t image_size = 0;  // square side the position table / size counts assume
  int64_t channels = 0;
};

class ImageModel : public nn::Module {
 public:
  // images [B, C, H, W], normalised.
  virtual ModelOutput forward(const Tensor& images) const = 0;

  // The configuration the factory rebuilds this model from: create_model(config()) makes a
  // model of the same shape and parameter names. Holds "name" (the preset) and every
  // resolved field, the MoE layer's under "moe".
  virtual nlohmann::json config() const = 0;
  // One line for logs: family, widths, depth, the MoE layers.
  virtual std::string describe() const = 0;
  // Parameters (all, and those one image uses) and multiply-adds per image at input().
  virtual ModelSize size() const = 0;
  virtual InputSpec input() const = 0;
  virtual const MoEConfig& moe_config() const = 0;
  // What one routing decision moves: "images", "tokens" or "pixels".
  virtual std::string routing_unit() const = 0;

  // From-scratch weights by module type, deterministic in `seed` (each model's file lists
  // its rules, after timm's _init_weights for that family).
  virtual void init_weights(uint64_t seed) = 0;
  // Loads pretrained weights into a model the factory shaped for them (its "pretrained"
  // option); returns a report for the log. The default refuses: the model has no importer.
  virtual std::string load_pretrained(const std::string& path);

  // Layer-wise learning-rate decay: parameters belong to layers 0 (embeddings / stem) to
  // num_layers() (the head); layer i's rate is scaled by layer_decay^(num_layers() - i).
  virtual int64_t num_layers() const = 0;
  virtual int64_t layer_of(const std::string& parameter) const = 0;
  // Whether weight decay applies: matrices and kernels yes; biases, norms, scales, tokens and
  // position tables no (the default: tensors of two or more dimensions that are not biases).
  virtual bool decays(const std::string& parameter, const Tensor& p) const;
};

// AdamW groups of `model`: one per (layer, decays) pair, in layer order.
std::vector<optim::ParamGroup> param_groups(const ImageModel& model, double weight_decay, double layer_decay);

// The MoE part of a one-line description: "dense", or "8 experts (top-2, token routing,
// shared) in 2 blocks".
std::string describe_moe(const MoEConfig& moe, const std::string& unit);

}  // namespace vimoe::models
