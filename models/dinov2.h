// DINOv2 weight import. Checkpoints come in two key layouts, both read from safetensors:
//  - the original repository's ("blocks.3.attn.qkv.weight", "blocks.3.ls1.gamma", "norm.weight"),
//    which is also our own naming;
//  - Hugging Face transformers' ("encoder.layer.3.attention.attention.query.weight",
//    "encoder.layer.3.layer_scale1.lambda1", "layernorm.weight"), with or without a
//    "dinov2." prefix; q, k and v are concatenated into our fused qkv in that order.
// A config.json beside the weights (Hugging Face format) supplies sizes and the LayerNorm
// eps; without one, sizes are read off the tensor shapes (heads = width / 64, eps 1e-6).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "models/vit.h"

namespace vimoe::models {

struct Dinov2Weights {
  std::string layout;                    // "huggingface" or "original"
  ViTConfig config;                      // the backbone the checkpoint describes (no head)
  std::map<std::string, Tensor> tensors;  // in our names, at the checkpoint's own grid
  std::vector<std::string> ignored;      // checkpoint keys with no place in our model (mask_token)
};

// Reads and renames a checkpoint; throws naming the file for an unknown layout or a key
// that does not fit its layout.
Dinov2Weights read_dinov2(const std::string& safetensors_path);

struct ImportReport {
  std::vector<std::string> loaded;      // our parameter names that received weights
  std::vector<std::string> missing;     // model parameters the checkpoint lacks (head, routers)
  std::vector<std::string> unexpected;  // checkpoint tensors the model has no place for
};

// Loads a DINOv2 checkpoint into `model`: resamples the position table to the model's grid,
// copies each dense FFN into every expert and the shared expert of MoE blocks, and checks
// every shape (a mismatch is an error naming the file, the key and both shapes). Width, depth
// and patch size must agree with the checkpoint. Every backbone parameter must come from the
// file: only the head and the MoE routers may be absent (an error lists the others). On any
// error the model is left unchanged.
ImportReport load_dinov2(VisionTransformer& model, const std::string& safetensors_path);

// The configuration a checkpoint implies, for building a matching model (set image size,
// classes and MoE options afterwards).
ViTConfig dinov2_config(const std::string& safetensors_path);

}  // namespace vimoe::models
