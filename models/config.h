// Model configuration: the Vision Transformer in the DINOv2 layout and its ViMoE variant.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vimoe::models {

// What the head reads: the CLS row, CLS with the mean patch token (classification), or every
// patch token (semantic segmentation: a linear layer per patch, the logit map upsampled
// bilinearly to the image; models/vit.h).
enum class HeadInput { Cls, ClsAndMeanPatch, Patches };
// "cls", "cls+mean", "patches"; parse_head_input throws naming `model` and the accepted values.
std::string head_input_name(HeadInput h);
HeadInput parse_head_input(const std::string& model, const std::string& name);
enum class RoutingLevel { Image, Token };       // router input: the CLS row, or every token
enum class GateKind { Linear, Cosine, L2 };     // the router's scoring (models/gates.h)
// The load-balancing loss an MoE layer adds (models/moe.h): Switch's alpha * N * sum f_i P_i,
// Shazeer's importance + load losses as V-MoE states them, or none.
enum class BalanceLoss { Switch, ImportanceLoad, None };
// "switch", "importance_load", "none"; parse_balance throws naming the accepted values.
std::string balance_name(BalanceLoss b);
BalanceLoss parse_balance(const std::string& name);

struct ViTConfig {
  // Square input side (non-square inputs work if divisible). A segmentation model (head on
  // the patches) takes any size and pads it to the patch grid: 512 makes a 37 x 37 grid of
  // 14-pixel patches.
  int64_t image_size = 224;
  int64_t patch_size = 14;
  int64_t in_channels = 3;
  int64_t width = 384;
  int64_t depth = 12;
  int64_t heads = 6;
  int64_t mlp_hidden = 1536;
  int64_t registers = 0;                  // DINOv2 register tokens (0 or 4)
  int64_t pos_grid = 16;                  // side of the stored position-embedding grid
  // LayerScale's initial value (DINOv2: 1.0 in its checkpoints, 1e-5 when it trains from
  // scratch); 0: no LayerScale in the blocks, as timm's VisionTransformer unless init_values
  // is given.
  double layer_scale_init = 1.0;
  double ln_eps = 1e-6;
  double drop_path = 0.0;                 // stochastic depth rate of the last block (linear ramp)
  int64_t num_classes = 0;                // 0: no head (a backbone)
  HeadInput head_input = HeadInput::Cls;

  int64_t grid() const { return (image_size + patch_size - 1) / patch_size; }
  int64_t patches() const { return grid() * grid(); }
  int64_t tokens() const { return 1 + registers + patches(); }
};

struct MoEConfig {
  int64_t experts = 0;            // 0: dense model
  int64_t top_k = 1;
  bool shared_expert = false;     // a dense FFN added to the routed output
  RoutingLevel routing = RoutingLevel::Image;
  double aux_alpha = 0.01;        // load-balancing loss weight
  BalanceLoss balance = BalanceLoss::Switch;
  GateKind gate = GateKind::Linear;
  int64_t gate_dim = 0;           // cosine / l2 gates' projection width (0: min(D / 2, 256))
  // Gates renormalised over the chosen k (sum to 1). Off as in the papers' equations (V-MoE,
  // Sweet spot: the top-k softmax probabilities as they are); configurations stored before
  // the option existed had it on whenever top_k > 1, and load so (models/options.h).
  bool renormalize = false;
  // Expert capacity ceil(C * k * rows / N) per forward (engine/ops/routing.h); 0: dropless.
  double capacity_factor = 0;
  bool bpr = false;               // Batch Prioritized Routing: capacity by top gate, not position
  // Mobile V-MoE (Daxberger et al.): one per-image router, placed before the first MoE block,
  // whose decision every MoE layer takes; the layers have no router of their own. Image
  // routing only.
  bool single_router = false;
  std::vector<int64_t> blocks;    // which blocks get an MoE FFN

  bool enabled() const { return experts > 0; }
  bool is_moe_block(int64_t block) const;
};

// Placement helpers: the last L blocks, or every second block (1, 3, 5, ...).
std::vector<int64_t> last_blocks(int64_t depth, int64_t count);
std::vector<int64_t> every_second_block(int64_t depth);

// Named presets: "vit_s14", "vit_b14", "vit_l14" (DINOv2 sizes, 224x224, position grid 16),
// and "vit_tiny" (a small model for tests and CPU demos). Throws on an unknown name.
ViTConfig preset(const std::string& name);

// Parameter and multiply-add counts of a model, counted as the ViMoE paper does: the
// position table at the model's own grid, routers included; MACs count matrix products
// (patch embedding, q/k/v, attention scores and values, projections, FFNs, router, head)
// plus 5 per element for each LayerNorm.
struct ModelSize {
  int64_t total_params = 0;
  int64_t active_params = 0;  // what one input uses: top-k experts, shared expert, router
  int64_t macs = 0;           // per image
  // One routed expert's parameters, per MoE layer in depth order: what an image adds to its
  // activated parameters for each further expert its tokens reach (routing_analysis.h).
  std::vector<int64_t> expert_params;
};
ModelSize model_size(const ViTConfig& vit, const MoEConfig& moe);

}  // namespace vimoe::models
