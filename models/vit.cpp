#include "models/vit.h"

#include <cmath>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/ops/attention.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/gelu.h"
#include "engine/ops/index.h"
#include "engine/ops/linalg.h"
#include "engine/ops/moe_dispatch.h"
#include "engine/ops/random.h"
#include "engine/ops/reduce.h"
#include "models/pos_embed.h"

namespace vimoe::models {

// ---- Mlp, attention, LayerScale --------------------------------------------------------

Mlp::Mlp(int64_t dim, int64_t hidden) {
  fc1 = register_module("fc1", std::make_shared<nn::Linear>(dim, hidden));
  fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, dim));
}

Tensor Mlp::forward(const Tensor& x) const {
  return fc2->forward(bias_gelu(linear(x, fc1->weight), fc1->bias));
}

SelfAttention::SelfAttention(int64_t dim, int64_t heads_in) : heads(heads_in) {
  VIMOE_CHECK(heads > 0 && dim % heads == 0, "SelfAttention: width ", dim,
              " is not a multiple of ", heads, " heads");
  qkv = register_module("qkv", std::make_shared<nn::Linear>(dim, 3 * dim));
  proj = register_module("proj", std::make_shared<nn::Linear>(dim, dim));
}

Tensor SelfAttention::forward(const Tensor& x) const {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), Dh = D / heads;
  // q, k and v from row blocks of the fused qkv weight: three GEMMs of one third each. (Taking
  // them as views of one [B, T, 3D] product would make each view's backward fill a zero
  // buffer the size of all three activations; a weight slice's is only [3D, D].)
  auto project = [&](int64_t i) {
    const Tensor w = qkv->weight.narrow(0, i * D, D), b = qkv->bias.narrow(0, i * D, D);
    return linear(x, w, b).view({B, T, heads, Dh}).permute({0, 2, 1, 3});
  };
  const Tensor o = attention(project(0), project(1), project(2));
  return proj->forward(o.permute({0, 2, 1, 3}).reshape({B, T, D}));
}

LayerScale::LayerScale(int64_t dim, double init) {
  gamma = Tensor::full({dim}, init);
  register_parameter("gamma", &gamma);
}

Tensor LayerScale::forward(const Tensor& x) const { return x * gamma; }

// ---- MoE FFN ---------------------------------------------------------------------------

MoEFFN::MoEFFN(int64_t dim, int64_t hidden, const MoEConfig& cfg) : config(cfg) {
  VIMOE_CHECK(cfg.experts >= 1 && cfg.top_k >= 1 && cfg.top_k <= cfg.experts, "MoEFFN: top-",
              cfg.top_k, " of ", cfg.experts, " experts is not a valid configuration");
  router = register_module("router", std::make_shared<nn::Linear>(dim, cfg.experts));
  const int64_t N = cfg.experts;
  fc1_weight = Tensor::zeros({N, hidden, dim});
  fc1_bias = Tensor::zeros({N, hidden});
  fc2_weight = Tensor::zeros({N, dim, hidden});
  fc2_bias = Tensor::zeros({N, dim});
  register_parameter("fc1_weight", &fc1_weight);
  register_parameter("fc1_bias", &fc1_bias);
  register_parameter("fc2_weight", &fc2_weight);
  register_parameter("fc2_bias", &fc2_bias);
  if (cfg.shared_expert) shared = register_module("shared", std::make_shared<Mlp>(dim, hidden));
  // Built as copies of one fresh dense FFN (what an MoE layer upcycled from a dense model is);
  // VisionTransformer::init_weights then draws every expert afresh, while load_dinov2 and
  // init_from_dense seed them all from a pretrained FFN.
  Mlp fresh(dim, hidden);
  init_from_dense(fresh);
}

void MoEFFN::init_from_dense(const Mlp& dense) {
  NoGradGuard no_grad;
  fc1_weight.copy_(dense.fc1->weight);
  fc1_bias.copy_(dense.fc1->bias);
  fc2_weight.copy_(dense.fc2->weight);
  fc2_bias.copy_(dense.fc2->bias);
  if (shared) shared->load_state_dict(dense.state_dict());
}

MoEFFN::Output MoEFFN::forward(const Tensor& h) const {
  const int64_t B = h.size(0), T = h.size(1), D = h.size(2);
  const bool image_level = config.routing == RoutingLevel::Image;
  // Image-level routing decides on the CLS token and moves whole images; token-level
  // routing decides and moves each token on its own.
  // Under autocast the experts run in the half type: cast before dispatch, so that it moves
  // half-width rows. The router and the shared expert read h and cast in their own linear
  // layers, so the three gradients meet at h in f32 rather than in a half-precision sum.
  const Tensor hx = autocast::lower(h);
  const Tensor rows = image_level ? hx : hx.reshape({B * T, D});
  const Tensor router_in = image_level ? h.select(1, 0) : h.reshape({B * T, D});
  Output out;
  out.routing = route_topk(router->forward(router_in), config.top_k,
                           /*renormalize=*/config.top_k > 1, config.aux_alpha);
  const DispatchPlan plan = plan_dispatch(out.routing.expert_ids, config.experts);
  const Tensor hidden = gelu(grouped_linear(dispatch_rows(rows, plan), fc1_weight, fc1_bias, plan));
  const Tensor expert_out = grouped_linear(hidden, fc2_weight, fc2_bias, plan);
  Tensor y = combine_rows(expert_out, out.routing.gates, plan).reshape({B, T, D});
  if (shared) y = y + shared->forward(h);
  out.y = y;
  return out;
}

// ---- blocks ----------------------------------------------------------------------------

Block::Block(const ViTConfig& vit, const MoEConfig& moe_cfg, bool is_moe, double dp)
    : drop_path(dp) {
  norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(vit.width, vit.ln_eps));
  attn = register_module("attn", std::make_shared<SelfAttention>(vit.width, vit.heads));
  VIMOE_CHECK(vit.layer_scale_init >= 0, "Block: LayerScale init must be >= 0 (0: none), found ",
              vit.layer_scale_init);
  const bool scaled = vit.layer_scale_init > 0;
  if (scaled) ls1 = register_module("ls1", std::make_shared<LayerScale>(vit.width, vit.layer_scale_init));
  norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(vit.width, vit.ln_eps));
  if (is_moe) moe = register_module("moe", std::make_shared<MoEFFN>(vit.width, vit.mlp_hidden, moe_cfg));
  else mlp = register_module("mlp", std::make_shared<Mlp>(vit.width, vit.mlp_hidden));
  if (scaled) ls2 = register_module("ls2", std::make_shared<LayerScale>(vit.width, vit.layer_scale_init));
}

Tensor Block::forward(const Tensor& x_in, MoEFFN::Output* moe_out) const {
  const bool train = is_training() && drop_path > 0;
  Tensor a = attn->forward(norm1->forward(x_in));
  if (ls1) a = ls1->forward(a);
  if (train) a = vimoe::drop_path(a, drop_path, true, next_seed());
  const Tensor x = x_in + a;
  const Tensor h = norm2->forward(x);
  Tensor f;
  if (moe) {
    MoEFFN::Output o = moe->forward(h);
    f = o.y;
    if (moe_out) *moe_out = std::move(o);
  } else {
    f = mlp->forward(h);
  }
  if (ls2) f = ls2->forward(f);
  if (train) f = vimoe::drop_path(f, drop_path, true, next_seed());
  return x + f;
}

// ---- the transformer -------------------------------------------------------------------

PatchEmbed::Projection::Projection(int64_t in_channels, int64_t patch, int64_t dim) {
  weight = Tensor::zeros({dim, in_channels, patch, patch});
  bias = Tensor::zeros({dim});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

PatchEmbed::PatchEmbed(int64_t in_channels, int64_t patch_in, int64_t dim) : patch(patch_in) {
  proj = register_module("proj", std::make_shared<Projection>(in_channels, patch, dim));
}

Tensor PatchEmbed::forward(const Tensor& images) const {
  VIMOE_CHECK(images.dim() == 4 && images.size(1) == proj->weight.size(1), "PatchEmbed: expected "
              "images [B, ", proj->weight.size(1), ", H, W], found ", shape_str(images.shape()));
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  VIMOE_CHECK(H % patch == 0 && W % patch == 0, "PatchEmbed: image size ", H, "x", W,
              " is not a multiple of the patch size ", patch);
  const int64_t gh = H / patch, gw = W / patch, D = proj->weight.size(0);
  // [B, C, gh, p, gw, p] -> [B, gh, gw, C, p, p]: each patch flattened in (C, p, p) order,
  // the order of the convolution weight.
  const Tensor patches = images.view({B, C, gh, patch, gw, patch})
                             .permute({0, 2, 4, 1, 3, 5})
                             .reshape({B, gh * gw, C * patch * patch});
  return linear(patches, proj->weight.view({D, C * patch * patch}), proj->bias);
}

VisionTransformer::VisionTransformer(const ViTConfig& v, const MoEConfig& m) : vit(v), moe(m) {
  VIMOE_CHECK(v.width % v.heads == 0, "VisionTransformer: width ", v.width,
              " is not a multiple of ", v.heads, " heads");
  for (int64_t b : m.blocks)
    VIMOE_CHECK(b >= 0 && b < v.depth, "VisionTransformer: MoE block ", b, " outside 0..", v.depth - 1);
  patch_embed = register_module("patch_embed", std::make_shared<PatchEmbed>(v.in_channels, v.patch_size, v.width));
  cls_token = Tensor::zeros({1, 1, v.width});
  register_parameter("cls_token", &cls_token);
  if (v.registers > 0) {
    register_tokens = Tensor::zeros({1, v.registers, v.width});
    register_parameter("register_tokens", &register_tokens);
  }
  pos_embed = Tensor::zeros({1, 1 + v.pos_grid * v.pos_grid, v.width});
  register_parameter("pos_embed", &pos_embed);
  auto block_list = register_module("blocks", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < v.depth; ++i) {
    // Stochastic depth grows linearly to its full rate at the last block.
    const double dp = v.depth > 1 ? v.drop_path * static_cast<double>(i) / (v.depth - 1) : v.drop_path;
    blocks.push_back(block_list->append(std::make_shared<Block>(v, m, m.is_moe_block(i), dp)));
  }
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(v.width, v.ln_eps));
  if (v.num_classes > 0) {
    const int64_t in = v.head_input == HeadInput::Cls ? v.width : 2 * v.width;
    head = register_module("head", std::make_shared<nn::Linear>(in, v.num_classes));
  }
}

// From-scratch initialisation, as timm's VisionTransformer does it (init_weights with
// init_weights_vit_timm), the recipe most from-scratch ViT results use:
//   - matrices of linear layers (attention, MLP, router, head, and each expert's slice of the
//     stacked expert weights): trunc_normal_(std 0.02) with timm's bounds, absolute -2 and 2,
//     in effect an untruncated normal (the engine truncated at +-2 std before, which shrinks
//     the actual std to 0.88 x 0.02);
//   - biases 0; LayerNorm weight 1, bias 0; LayerScale keeps its configured value;
//   - the position table: trunc_normal_(std 0.02); the CLS and register tokens: normal with
//     std 1e-6 (timm's "near zero", a small draw rather than exact zeros);
//   - the patch embedding: PyTorch's Conv2d default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
//     weight and bias (kaiming_uniform with a = sqrt(5)), which timm leaves in place: it
//     initialises only nn.Linear layers;
//   - experts: independent draws, so that a fresh MoE layer starts with distinct experts
//     (identical ones receive identical updates until routing tells them apart). Starting
//     from DINOv2, load_dinov2 seeds every expert from the pretrained FFN instead.
// Only the draws change: checkpoints load as before.
void VisionTransformer::init_weights(uint64_t seed) {
  NoGradGuard no_grad;
  uint64_t counter = 0;
  auto offset = [&counter] { return counter++ << 32; };
  const std::string patch_prefix = "patch_embed.";
  const double patch_bound =
      1.0 / std::sqrt(static_cast<double>(vit.in_channels * vit.patch_size * vit.patch_size));
  for (auto& [name, p] : named_parameters()) {
    Tensor t = p;
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    const bool is_norm = name.find("norm") != std::string::npos;
    const bool is_scale = name.find(".gamma") != std::string::npos;
    if (is_scale) continue;  // LayerScale keeps its configured initial value
    if (name.rfind(patch_prefix, 0) == 0) {
      uniform_(t, -patch_bound, patch_bound, seed, offset());
    } else if (name == "cls_token" || name == "register_tokens") {
      normal_(t, 0.0, 1e-6, seed, offset());
    } else if (is_norm) {
      t.fill_(is_bias ? 0.0 : 1.0);
    } else if (is_bias) {
      t.zero_();
    } else {
      // Linear weights, the position table and the stacked expert weights (one draw over
      // the whole [experts, out, in] tensor: every expert gets its own values).
      trunc_normal_(t, 0.02, -2.0, 2.0, seed, offset());
    }
  }
}

VisionTransformer::Output VisionTransformer::forward(const Tensor& images) const {
  const int64_t B = images.size(0);
  Tensor x = patch_embed->forward(images);  // [B, P, D]
  const int64_t gh = images.size(2) / vit.patch_size, gw = images.size(3) / vit.patch_size;
  Tensor pos = pos_embed;
  if (gh != vit.pos_grid || gw != vit.pos_grid) {
    VIMOE_CHECK(!(grad_enabled() && pos_embed.requires_grad() && is_training()),
                "VisionTransformer: training on a ", gh, "x", gw, " grid with a ", vit.pos_grid,
                "x", vit.pos_grid, " position table; build the model for this image size");
    pos = resample_pos_embed(pos_embed, 1, gh, gw).to(pos_embed.device());
  }
  const int64_t D = vit.width;
  x = concat({cls_token.expand({B, 1, D}), x}, 1) + pos;
  if (vit.registers > 0)
    x = concat({x.narrow(1, 0, 1), register_tokens.expand({B, vit.registers, D}), x.narrow(1, 1, gh * gw)}, 1);

  Output out;
  for (size_t i = 0; i < blocks.size(); ++i) {
    MoEFFN::Output moe_out;
    x = blocks[i]->forward(x, blocks[i]->moe ? &moe_out : nullptr);
    if (blocks[i]->moe) {
      out.aux_loss = out.aux_loss.defined() ? out.aux_loss + moe_out.routing.aux_loss
                                            : moe_out.routing.aux_loss;
      out.routing.push_back(std::move(moe_out.routing));
      out.moe_blocks.push_back(static_cast<int64_t>(i));
    }
  }
  out.features = norm->forward(x);
  if (!out.aux_loss.defined()) out.aux_loss = Tensor::zeros({}, TensorOptions(DType::F32, x.device()));
  if (head) {
    Tensor pooled = out.features.select(1, 0);
    if (vit.head_input == HeadInput::ClsAndMeanPatch) {
      const Tensor patches = out.features.narrow(1, 1 + vit.registers, gh * gw);
      pooled = concat({pooled, mean(patches, {1})}, 1);
    }
    out.logits = head->forward(pooled);
  }
  return out;
}

}  // namespace vimoe::models
