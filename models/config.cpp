#include "models/config.h"

#include <algorithm>

#include "engine/error.h"
#include "models/moe.h"

namespace vimoe::models {

std::string balance_name(BalanceLoss b) {
  switch (b) {
    case BalanceLoss::Switch: return "switch";
    case BalanceLoss::ImportanceLoad: return "importance_load";
    case BalanceLoss::None: return "none";
  }
  VIMOE_FAIL("balance_name: unknown BalanceLoss ", static_cast<int>(b));
}

BalanceLoss parse_balance(const std::string& name) {
  for (BalanceLoss b : {BalanceLoss::Switch, BalanceLoss::ImportanceLoad, BalanceLoss::None})
    if (name == balance_name(b)) return b;
  VIMOE_FAIL("unknown load-balancing loss \"", name, "\": expected one of switch, importance_load, none");
}

bool MoEConfig::is_moe_block(int64_t block) const {
  return enabled() && std::find(blocks.begin(), blocks.end(), block) != blocks.end();
}

std::vector<int64_t> last_blocks(int64_t depth, int64_t count) {
  VIMOE_CHECK(count >= 0 && count <= depth, "last_blocks: ", count, " MoE blocks requested in a ",
              depth, "-block model");
  std::vector<int64_t> out;
  for (int64_t b = depth - count; b < depth; ++b) out.push_back(b);
  return out;
}

std::vector<int64_t> every_second_block(int64_t depth) {
  std::vector<int64_t> out;
  for (int64_t b = 1; b < depth; b += 2) out.push_back(b);
  return out;
}

ViTConfig preset(const std::string& name) {
  ViTConfig c;
  if (name == "vit_s14") return c;
  if (name == "vit_b14") {
    c.width = 768;
    c.heads = 12;
    c.mlp_hidden = 3072;
    return c;
  }
  if (name == "vit_l14") {
    c.width = 1024;
    c.depth = 24;
    c.heads = 16;
    c.mlp_hidden = 4096;
    return c;
  }
  if (name == "vit_tiny") {  // 28x28 single-channel inputs (Fashion-MNIST) in 4x4 patches
    c.image_size = 28;
    c.patch_size = 4;
    c.in_channels = 1;
    c.width = 64;
    c.depth = 4;
    c.heads = 4;
    c.mlp_hidden = 128;
    c.pos_grid = 7;
    c.layer_scale_init = 1e-1;
    return c;
  }
  VIMOE_FAIL("unknown model preset \"", name, "\" (expected vit_s14, vit_b14, vit_l14 or vit_tiny)");
}

std::string head_input_name(HeadInput h) {
  switch (h) {
    case HeadInput::Cls: return "cls";
    case HeadInput::ClsAndMeanPatch: return "cls+mean";
    case HeadInput::Patches: return "patches";
  }
  return "?";
}

HeadInput parse_head_input(const std::string& model, const std::string& name) {
  for (HeadInput h : {HeadInput::Cls, HeadInput::ClsAndMeanPatch, HeadInput::Patches})
    if (head_input_name(h) == name) return h;
  VIMOE_FAIL(model, ": head must be \"cls\", \"cls+mean\" or \"patches\" (segmentation), found \"", name, "\"");
}

ModelSize model_size(const ViTConfig& v, const MoEConfig& m) {
  VIMOE_CHECK(v.image_size % v.patch_size == 0 || v.head_input == HeadInput::Patches, "model_size: image size ",
              v.image_size, " is not a multiple of the patch size ", v.patch_size);
  const int64_t D = v.width, H = v.mlp_hidden, T = v.tokens(), P = v.patches();
  const int64_t patch_in = v.in_channels * v.patch_size * v.patch_size;
  const int64_t ffn_params = (D * H + H) + (H * D + D);
  const int64_t ffn_macs = 2 * T * D * H;
  const int64_t ln_params = 2 * D, ln_macs = 5 * T * D;

  ModelSize s;
  // Embeddings: patch projection, CLS and register tokens, position table (CLS + grid).
  s.total_params = patch_in * D + D + D + v.registers * D + (1 + v.pos_grid * v.pos_grid) * D;
  s.macs = P * patch_in * D;
  const int64_t attn_params = (D * 3 * D + 3 * D) + (D * D + D);
  const int64_t attn_macs = T * D * 3 * D + 2 * T * T * D + T * D * D;
  int64_t inactive = 0;
  for (int64_t b = 0; b < v.depth; ++b) {
    s.total_params += 2 * ln_params + attn_params;  // norms, attention
    if (v.layer_scale_init > 0) s.total_params += 2 * D;  // two LayerScales
    s.macs += 2 * ln_macs + attn_macs;
    if (!m.is_moe_block(b)) {
      s.total_params += ffn_params;
      s.macs += ffn_macs;
      continue;
    }
    const int64_t router_rows = m.routing == RoutingLevel::Image ? 1 : T;
    const MoELayerSize layer = moe_layer_size(D, H, m);
    s.total_params += layer.total_params;
    s.expert_params.push_back(ffn_params);
    inactive += layer.total_params - layer.active_params;
    s.macs += (m.top_k + (m.shared_expert ? 1 : 0)) * ffn_macs + router_rows * layer.router_macs;
  }
  if (m.enabled() && m.single_router) {
    const MoELayerSize router = single_router_size(D, m);
    s.total_params += router.total_params;
    s.macs += router.router_macs;
  }
  s.total_params += ln_params;  // final norm
  s.macs += ln_macs;
  if (v.num_classes > 0) {
    const int64_t in = v.head_input == HeadInput::ClsAndMeanPatch ? 2 * D : D;
    s.total_params += in * v.num_classes + v.num_classes;
    // A segmentation head runs on every patch; its bilinear upsampling is not a matrix
    // product and is not counted.
    s.macs += (v.head_input == HeadInput::Patches ? P : 1) * in * v.num_classes;
  }
  s.active_params = s.total_params - inactive;
  return s;
}

}  // namespace vimoe::models
