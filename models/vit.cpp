#include "models/vit.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/ops/attention.h"
#include "engine/nn/init.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/index.h"
#include "engine/ops/interpolate.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "models/dinov2.h"
#include "models/options.h"
#include "models/pos_embed.h"

namespace vimoe::models {

// ---- attention -------------------------------------------------------------------------

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

// ---- blocks ----------------------------------------------------------------------------

Block::Block(const ViTConfig& vit, const MoEConfig& moe_cfg, bool is_moe, double dp) {
  norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(vit.width, vit.ln_eps));
  attn = register_module("attn", std::make_shared<SelfAttention>(vit.width, vit.heads));
  VIMOE_CHECK(vit.layer_scale_init >= 0, "Block: LayerScale init must be >= 0 (0: none), found ",
              vit.layer_scale_init);
  const bool scaled = vit.layer_scale_init > 0;
  if (scaled) ls1 = register_module("ls1", std::make_shared<nn::LayerScale>(vit.width, vit.layer_scale_init));
  norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(vit.width, vit.ln_eps));
  if (is_moe) moe = register_module("moe", std::make_shared<MoEFFN>(vit.width, vit.mlp_hidden, moe_cfg));
  else mlp = register_module("mlp", std::make_shared<nn::Mlp>(vit.width, vit.mlp_hidden));
  if (scaled) ls2 = register_module("ls2", std::make_shared<nn::LayerScale>(vit.width, vit.layer_scale_init));
  drop_path = register_module("drop_path", std::make_shared<nn::DropPath>(dp));
}

Tensor Block::forward(const Tensor& x_in, MoEFFN::Output* moe_out, const Routing* given) const {
  Tensor a = attn->forward(norm1->forward(x_in));
  if (ls1) a = ls1->forward(a);
  const Tensor x = x_in + drop_path->forward(a);
  const Tensor h = norm2->forward(x);
  Tensor f;
  if (moe) {
    MoEFFN::Output o;
    if (given) {
      o = moe->forward(h, *given);
    } else {
      const Tensor router_input = moe->config.routing == RoutingLevel::Image
                                      ? h.select(1, 0)
                                      : h.reshape({h.size(0) * h.size(1), h.size(2)});
      o = moe->forward(h, router_input);
    }
    f = o.y;
    if (moe_out) *moe_out = std::move(o);
  } else {
    f = mlp->forward(h);
  }
  if (ls2) f = ls2->forward(f);
  return x + drop_path->forward(f);
}

// ---- the transformer -------------------------------------------------------------------

PatchEmbed::PatchEmbed(int64_t in_channels, int64_t patch_in, int64_t dim) : patch(patch_in) {
  proj = register_module("proj", std::make_shared<nn::Conv2d>(in_channels, dim, std::array<int64_t, 2>{patch, patch},
                                                              Conv2dOptions{{patch, patch}}));
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
  if (m.enabled() && m.single_router)
    moe_router = register_module("moe_router", std::make_shared<SingleRouter>(v.width, m, v.ln_eps));
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(v.width, v.ln_eps));
  if (v.num_classes > 0) {
    const int64_t in = v.head_input == HeadInput::ClsAndMeanPatch ? 2 * v.width : v.width;
    head = register_module("head", std::make_shared<nn::Linear>(in, v.num_classes));
  }
}

// From-scratch initialisation, as timm's VisionTransformer does it (init_weights with
// init_weights_vit_timm), the recipe most from-scratch ViT results use, by module type:
//   - Linear (attention, MLP, head): trunc_normal_(std 0.02) with timm's bounds,
//     absolute -2 and 2, in effect an untruncated normal; biases 0;
//   - MoE routers: the gate's rule (models/gates.h; the linear gate's is the Linear one);
//   - MoE experts: the same draw over each stacked expert weight (independent experts: identical
//     ones would receive identical updates until routing tells them apart; starting from
//     DINOv2, load_dinov2 seeds every expert from the pretrained MLP instead); biases 0;
//   - LayerNorm weight 1, bias 0; LayerScale keeps its configured value;
//   - the patch embedding (a Conv2d): PyTorch's default, U(+-1/sqrt(fan_in)) for weight and
//     bias, which timm leaves in place (it initialises only nn.Linear layers);
//   - the position table trunc_normal_(std 0.02); the CLS and register tokens normal with std
//     1e-6 (timm's "near zero", a small draw rather than exact zeros).
// Each draw is keyed by the parameter's name (engine/nn/init.h).
void VisionTransformer::init_weights(uint64_t seed) {
  NoGradGuard no_grad;
  constexpr double kStd = 0.02;
  for (auto& [path, m] : named_modules()) {
    if (nn::init::linear_and_norm(path, *m, kStd, seed)) continue;
    if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) {
      const int64_t fan_in = conv->weight.numel() / conv->weight.size(0);
      nn::init::fan_in_uniform(conv->weight, fan_in, seed, nn::init::join(path, "weight"));
      nn::init::fan_in_uniform(conv->bias, fan_in, seed, nn::init::join(path, "bias"));
    } else if (auto* experts = dynamic_cast<MoEFFN*>(m)) {
      experts->init_experts(path, kStd, seed);
    } else if (auto* gate = dynamic_cast<Gate*>(m)) {
      gate->init_weights(path, seed);
    }
  }
  nn::init::trunc_normal(pos_embed, kStd, seed, "pos_embed");
  nn::init::normal(cls_token, 1e-6, seed, "cls_token");
  if (register_tokens.defined()) nn::init::normal(register_tokens, 1e-6, seed, "register_tokens");
}

std::string VisionTransformer::load_pretrained(const std::string& path) {
  const ImportReport r = load_dinov2(*this, path);
  auto list = [](const std::vector<std::string>& names) {
    if (names.empty()) return std::string("none");
    std::string s;
    const size_t shown = std::min<size_t>(names.size(), 8);
    for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + names[i];
    if (shown < names.size()) s += " and " + std::to_string(names.size() - shown) + " more";
    return s;
  };
  return "loaded " + std::to_string(r.loaded.size()) + " tensors from " + path +
         "\n  not in the checkpoint (kept as initialised): " + list(r.missing) +
         "\n  in the checkpoint but unused: " + list(r.unexpected);
}

int64_t VisionTransformer::layer_of(const std::string& name) const {
  if (name.rfind("blocks.", 0) == 0) return std::stoll(name.substr(7)) + 1;
  if (name.rfind("patch_embed", 0) == 0 || name == "cls_token" || name == "pos_embed" || name == "register_tokens")
    return 0;
  if (name.rfind("moe_router.", 0) == 0) return *std::min_element(moe.blocks.begin(), moe.blocks.end()) + 1;
  return vit.depth + 1;  // final norm and head
}

bool VisionTransformer::decays(const std::string& name, const Tensor& p) const {
  return ImageModel::decays(name, p) && name.find("token") == std::string::npos && name != "pos_embed";
}

std::string VisionTransformer::describe() const {
  return name + ": width " + std::to_string(vit.width) + ", depth " + std::to_string(vit.depth) + ", " +
         std::to_string(vit.heads) + " heads, " + std::to_string(vit.image_size) + "x" +
         std::to_string(vit.image_size) + " images in " + std::to_string(vit.patch_size) + "-pixel patches, " +
         describe_moe(moe, routing_unit());
}

// Zeros appended below and to the right of [B, C, H, W] images up to Hp x Wp (the padding
// mmseg and DINOv2 give segmentation inputs, after normalisation).
static Tensor pad_bottom_right(const Tensor& images, int64_t Hp, int64_t Wp) {
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  const TensorOptions opts(images.dtype(), images.device());
  Tensor x = images;
  if (Wp > W) x = concat({x, Tensor::zeros({B, C, H, Wp - W}, opts)}, 3);
  if (Hp > H) x = concat({x, Tensor::zeros({B, C, Hp - H, Wp}, opts)}, 2);
  return x;
}

ModelOutput VisionTransformer::forward(const Tensor& images_in) const {
  VIMOE_CHECK(images_in.dim() == 4, "VisionTransformer: expected images [B, C, H, W], found ",
              shape_str(images_in.shape()));
  const int64_t B = images_in.size(0), H = images_in.size(2), W = images_in.size(3), p = vit.patch_size;
  const bool segmentation = head && vit.head_input == HeadInput::Patches;
  // A segmentation model takes any size: the image is padded to the patch grid and the logit
  // map cropped back after upsampling, so every logit lies over its own pixel.
  const Tensor images = segmentation ? pad_bottom_right(images_in, (H + p - 1) / p * p, (W + p - 1) / p * p)
                                     : images_in;
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

  ModelOutput out;
  std::optional<Routing> single;  // the single router's decision, made before the first MoE block
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (moe_router && blocks[i]->moe && !single) {
      out.router_logits = moe_router->forward(x.select(1, 0));
      single = route_rows(moe, out.router_logits, is_training());
      out.aux_loss = single->aux_loss;  // counted once, not per layer
    }
    MoEFFN::Output moe_out;
    x = blocks[i]->forward(x, blocks[i]->moe ? &moe_out : nullptr, single ? &*single : nullptr);
    if (blocks[i]->moe) {
      if (!single)
        out.aux_loss = out.aux_loss.defined() ? out.aux_loss + moe_out.routing.aux_loss : moe_out.routing.aux_loss;
      out.routing.push_back(std::move(moe_out.routing));
      out.moe_blocks.push_back(static_cast<int64_t>(i));
      out.routing_grids.push_back(moe.routing == RoutingLevel::Image
                                      ? RoutingGrid{}
                                      : RoutingGrid{x.size(1), 1 + vit.registers, gh, gw, p});
    }
  }
  out.features = norm->forward(x);
  if (!out.aux_loss.defined()) out.aux_loss = Tensor::zeros({}, TensorOptions(DType::F32, x.device()));
  if (segmentation) {
    // [B, P, classes] per patch -> [B, classes, gh, gw] -> bilinear to the padded image -> crop.
    const Tensor grid_logits = head->forward(out.features.narrow(1, 1 + vit.registers, gh * gw))
                                   .view({B, gh, gw, vit.num_classes})
                                   .permute({0, 3, 1, 2});
    out.logits = interpolate_bilinear(grid_logits, gh * p, gw * p).narrow(2, 0, H).narrow(3, 0, W);
  } else if (head) {
    Tensor pooled = out.features.select(1, 0);
    if (vit.head_input == HeadInput::ClsAndMeanPatch) {
      const Tensor patches = out.features.narrow(1, 1 + vit.registers, gh * gw);
      pooled = concat({pooled, mean(patches, {1})}, 1);
    }
    out.logits = head->forward(pooled);
  }
  return out;
}

// ---- configuration and the factory's builder --------------------------------------------

#define VIMOE_VIT_FIELDS(X)                                                                       \
  X(image_size) X(patch_size) X(in_channels) X(width) X(depth) X(heads) X(mlp_hidden) X(registers) \
  X(pos_grid) X(layer_scale_init) X(ln_eps) X(drop_path) X(num_classes)

nlohmann::json VisionTransformer::config() const {
  nlohmann::json j;
  j["name"] = name;
#define X(f) j[#f] = vit.f;
  VIMOE_VIT_FIELDS(X)
#undef X
  j["head_input"] = head_input_name(vit.head_input);
  j["moe"] = moe_to_json(moe);
  return j;
}

std::shared_ptr<ImageModel> create_vit(const std::string& name, const nlohmann::json& options) {
  OptionReader r(name, options);
  ViTConfig v = name == "vit" ? ViTConfig{} : preset(name);
  r.allow("name");
  const bool explicit_hidden = r.has("mlp_hidden"), explicit_grid = r.has("pos_grid");
#define X(f) r.get(#f, v.f);
  VIMOE_VIT_FIELDS(X)
#undef X
  double mlp_ratio = 0;
  if (r.get("mlp_ratio", mlp_ratio)) {
    VIMOE_CHECK(mlp_ratio > 0 && !explicit_hidden, name, ": mlp_ratio must be > 0 and not given with mlp_hidden, found ",
                mlp_ratio);
    v.mlp_hidden = static_cast<int64_t>(mlp_ratio * static_cast<double>(v.width));
  } else if (!explicit_hidden && r.has("width")) {
    v.mlp_hidden = 4 * v.width;
  }
  double layer_scale = 0;
  if (r.get("layer_scale", layer_scale)) v.layer_scale_init = layer_scale;  // 0: none
  std::string head;
  const bool head_given = r.get("head", head), head_input_given = r.get("head_input", head);
  if (head_given || head_input_given) {
    v.head_input = parse_head_input(name, head);
  }
  std::string pretrained;
  if (r.get("pretrained", pretrained)) {
    VIMOE_CHECK(v.layer_scale_init > 0, name, ": layer_scale 0 (none) would drop the LayerScale weights of ",
                pretrained, "; pretrained DINOv2 blocks need theirs");
    // The checkpoint decides the backbone's shape; the options decide input size and head.
    const ViTConfig c = dinov2_config(pretrained);
    v.width = c.width;
    v.depth = c.depth;
    v.heads = c.heads;
    v.mlp_hidden = c.mlp_hidden;
    v.patch_size = c.patch_size;
    v.registers = c.registers;
    v.ln_eps = c.ln_eps;
    v.in_channels = c.in_channels;
  }
  VIMOE_CHECK(v.width > 0 && v.depth > 0 && v.heads > 0 && v.patch_size > 0 && v.mlp_hidden > 0, name,
              ": width, depth, heads, patch size and MLP hidden size must be positive, found width ", v.width,
              ", depth ", v.depth, ", heads ", v.heads, ", patch ", v.patch_size, ", hidden ", v.mlp_hidden);
  VIMOE_CHECK(v.width % v.heads == 0, name, ": width ", v.width, " is not a multiple of ", v.heads, " heads");
  VIMOE_CHECK(v.image_size % v.patch_size == 0 || v.head_input == HeadInput::Patches, name, ": image size ",
              v.image_size, " is not a multiple of the patch size ", v.patch_size,
              " (only a segmentation model, head \"patches\", pads its input to the patch grid)");
  VIMOE_CHECK(v.head_input != HeadInput::Patches || v.num_classes > 0, name,
              ": head \"patches\" (segmentation) needs num_classes > 0");
  VIMOE_CHECK(v.layer_scale_init >= 0, name, ": the LayerScale init must be >= 0 (0: none), found ",
              v.layer_scale_init);
  if (!explicit_grid) v.pos_grid = v.grid();
  const int64_t depth = v.depth;
  const MoEConfig m = read_moe(r, depth, [&](const std::string& placement) {
    std::vector<int64_t> every2 = every_second_block(depth);
    if (placement == "every2") return every2;
    if (placement == "last2") {
      VIMOE_CHECK(every2.size() >= 2, name, ": placement last2 needs at least 4 blocks, the model has ", depth);
      return std::vector<int64_t>(every2.end() - 2, every2.end());
    }
    VIMOE_FAIL(name, ": unknown MoE placement \"", placement, "\" for a ViT (every2, last2; or the last L blocks, or "
               "a list of blocks)");
  });
  r.finish();
  auto model = std::make_shared<VisionTransformer>(v, m);
  model->name = name;
  return model;
}

#undef VIMOE_VIT_FIELDS

}  // namespace vimoe::models
