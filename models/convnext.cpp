#include "models/convnext.h"

#include <numeric>

#include "engine/autograd.h"
#include "engine/io/safetensors.h"
#include "engine/nn/init.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "models/options.h"

namespace vimoe::models {

namespace {

// LayerNorm over the channels of an NCHW map (timm's LayerNorm2d).
Tensor norm_2d(const nn::LayerNorm& ln, const Tensor& x) {
  return ln.forward(x.permute({0, 2, 3, 1})).permute({0, 3, 1, 2});
}

std::string join_ints(const std::vector<int64_t>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + std::to_string(v[i]);
  return s;
}

// A module that only names its children (timm's nn.Sequential / stage containers).
struct Container : nn::Module {
  template <typename M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    return register_module(name, std::move(m));
  }
};

}  // namespace

int64_t ConvNeXtConfig::blocks() const { return std::accumulate(depths.begin(), depths.end(), int64_t{0}); }

// ---- block -------------------------------------------------------------------------------

ConvNeXtBlock::ConvNeXtBlock(const ConvNeXtConfig& c, size_t stage, const MoEConfig* moe_cfg, double dp) {
  const int64_t dim = c.dims[stage];
  Conv2dOptions dw;
  dw.padding = {c.kernel_size / 2, c.kernel_size / 2};
  dw.groups = dim;
  conv_dw = register_module("conv_dw", std::make_shared<nn::Conv2d>(dim, dim, std::array<int64_t, 2>{c.kernel_size, c.kernel_size}, dw));
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(dim, c.ln_eps));
  if (moe_cfg) moe = register_module("moe", std::make_shared<MoEFFN>(dim, c.hidden(stage), *moe_cfg));
  else mlp = register_module("mlp", std::make_shared<nn::Mlp>(dim, c.hidden(stage)));
  if (c.layer_scale_init > 0) {
    gamma = Tensor::full({dim}, c.layer_scale_init);
    register_parameter("gamma", &gamma);
  }
  drop_path = register_module("drop_path", std::make_shared<nn::DropPath>(dp));
}

Tensor ConvNeXtBlock::forward(const Tensor& x, MoEFFN::Output* moe_out) const {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const Tensor h = norm->forward(conv_dw->forward(x).permute({0, 2, 3, 1}));  // [B, H, W, C]
  Tensor f;
  if (moe) {
    const Tensor pixels = h.reshape({B, H * W, C});
    const Tensor router_input =
        moe->config.routing == RoutingLevel::Image ? mean(pixels, {1}) : pixels.reshape({B * H * W, C});
    MoEFFN::Output o = moe->forward(pixels, router_input);
    f = (pixels + o.y).view({B, H, W, C});  // the skip connection around the MoE (Figure 1b)
    if (moe_out) *moe_out = std::move(o);
  } else {
    f = mlp->forward(h);
  }
  if (gamma.defined()) f = f * gamma;
  return x + drop_path->forward(f.permute({0, 3, 1, 2}));
}

// ---- model -------------------------------------------------------------------------------

ConvNeXt::Head::Head(int64_t dim, int64_t classes, double eps) {
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(dim, eps));
  if (classes > 0) fc = register_module("fc", std::make_shared<nn::Linear>(dim, classes));
}

ConvNeXt::ConvNeXt(const ConvNeXtConfig& c, const MoEConfig& m) : cfg(c), moe(m) {
  VIMOE_CHECK(!m.single_router, "ConvNeXt: a single router (Mobile V-MoE) is a ViT option; ConvNeXt-MoE layers "
              "route themselves");
  const size_t stages = c.depths.size();
  VIMOE_CHECK(stages >= 1 && c.dims.size() == stages, "ConvNeXt: depths [", join_ints(c.depths, ", "), "] and dims [",
              join_ints(c.dims, ", "), "] must be non-empty and of one length");
  for (size_t i = 0; i < stages; ++i)
    VIMOE_CHECK(c.depths[i] >= 1 && c.dims[i] >= 1 && c.hidden(i) >= 1, "ConvNeXt: stage ", i, " has depth ",
                c.depths[i], ", width ", c.dims[i], " and MLP hidden ", c.hidden(i), "; all must be >= 1");
  VIMOE_CHECK(c.stem_patch >= 1 && c.kernel_size >= 1 && c.kernel_size % 2 == 1, "ConvNeXt: the stem patch (",
              c.stem_patch, ") must be >= 1 and the depthwise kernel (", c.kernel_size, ") odd");
  VIMOE_CHECK(c.layer_scale_init >= 0 && c.drop_path >= 0 && c.drop_path < 1, "ConvNeXt: layer scale init ",
              c.layer_scale_init, " must be >= 0 and drop path ", c.drop_path, " in [0, 1)");
  const int64_t total = c.blocks();
  for (int64_t b : m.blocks)
    VIMOE_CHECK(b >= 0 && b < total, "ConvNeXt: MoE block ", b, " outside 0..", total - 1);

  auto stem = register_module("stem", std::make_shared<Container>());
  stem_conv = stem->add("0", std::make_shared<nn::Conv2d>(c.in_channels, c.dims[0],
                                                         std::array<int64_t, 2>{c.stem_patch, c.stem_patch},
                                                         Conv2dOptions{{c.stem_patch, c.stem_patch}}));
  stem_norm = stem->add("1", std::make_shared<nn::LayerNorm>(c.dims[0], c.ln_eps));
  auto stage_list = register_module("stages", std::make_shared<Container>());
  int64_t index = 0;
  for (size_t s = 0; s < stages; ++s) {
    auto stage = stage_list->add(std::to_string(s), std::make_shared<Container>());
    if (s == 0) {
      down_norm.push_back(nullptr);
      down_conv.push_back(nullptr);
    } else {
      auto down = stage->add("downsample", std::make_shared<Container>());
      down_norm.push_back(down->add("0", std::make_shared<nn::LayerNorm>(c.dims[s - 1], c.ln_eps)));
      down_conv.push_back(down->add("1", std::make_shared<nn::Conv2d>(c.dims[s - 1], c.dims[s],
                                                                      std::array<int64_t, 2>{2, 2},
                                                                      Conv2dOptions{{2, 2}})));
    }
    auto list = stage->add("blocks", std::make_shared<nn::ModuleList>());
    blocks.emplace_back();
    for (int64_t j = 0; j < c.depths[s]; ++j, ++index) {
      // Stochastic depth grows linearly over all blocks, from 0 at the first (timm's).
      const double dp = total > 1 ? c.drop_path * static_cast<double>(index) / static_cast<double>(total - 1) : 0.0;
      blocks.back().push_back(list->append(std::make_shared<ConvNeXtBlock>(c, s, m.is_moe_block(index) ? &m : nullptr, dp)));
    }
  }
  head = register_module("head", std::make_shared<Head>(c.dims.back(), c.num_classes, c.ln_eps));
}

ModelOutput ConvNeXt::forward(const Tensor& images) const {
  VIMOE_CHECK(images.dim() == 4 && images.size(1) == cfg.in_channels, "ConvNeXt: expected images [B, ",
              cfg.in_channels, ", H, W], found ", shape_str(images.shape()));
  const int64_t factor = cfg.stem_patch << (cfg.dims.size() - 1);
  VIMOE_CHECK(images.size(2) % factor == 0 && images.size(3) % factor == 0, "ConvNeXt: image size ", images.size(2),
              "x", images.size(3), " is not a multiple of ", factor, " (the stem patch ", cfg.stem_patch, " times 2 per "
              "later stage)");
  Tensor x = norm_2d(*stem_norm, stem_conv->forward(images));
  ModelOutput out;
  int64_t index = 0;
  for (size_t s = 0; s < blocks.size(); ++s) {
    if (s > 0) x = down_conv[s]->forward(norm_2d(*down_norm[s], x));
    for (const auto& block : blocks[s]) {
      MoEFFN::Output moe_out;
      x = block->forward(x, block->moe ? &moe_out : nullptr);
      if (block->moe) {
        out.aux_loss = out.aux_loss.defined() ? out.aux_loss + moe_out.routing.aux_loss : moe_out.routing.aux_loss;
        out.routing.push_back(std::move(moe_out.routing));
        out.moe_blocks.push_back(index);
        out.routing_grids.push_back(moe.routing == RoutingLevel::Image
                                        ? RoutingGrid{}
                                        : RoutingGrid{x.size(2) * x.size(3), 0, x.size(2), x.size(3),
                                                      images.size(2) / x.size(2)});
      }
      ++index;
    }
  }
  out.features = x;
  if (!out.aux_loss.defined()) out.aux_loss = Tensor::zeros({}, TensorOptions(DType::F32, x.device()));
  const Tensor pooled = head->norm->forward(mean(x, {2, 3}));
  if (head->fc) out.logits = head->fc->forward(pooled);
  return out;
}

void ConvNeXt::init_weights(uint64_t seed) {
  NoGradGuard no_grad;
  constexpr double kStd = 0.02;
  for (auto& [path, m] : named_modules()) {
    if (nn::init::linear_and_norm(path, *m, kStd, seed)) continue;
    if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) {
      nn::init::trunc_normal(conv->weight, kStd, seed, nn::init::join(path, "weight"));
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* experts = dynamic_cast<MoEFFN*>(m)) {
      experts->init_experts(path, kStd, seed);
    } else if (auto* gate = dynamic_cast<Gate*>(m)) {
      gate->init_weights(path, seed);
    }
  }
  if (head->fc && cfg.head_init_scale != 1.0) {
    head->fc->weight.copy_(head->fc->weight * cfg.head_init_scale);
    head->fc->bias.copy_(head->fc->bias * cfg.head_init_scale);
  }
}

std::string ConvNeXt::load_pretrained(const std::string& path) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);
  std::map<std::string, Tensor> dict;
  for (const std::string& n : f.names()) dict.emplace(n, f.get(n));
  // The checkpoint's dense MLPs seed the experts of MoE blocks (and are consumed there).
  std::vector<int64_t> upcycled;
  int64_t index = 0;
  for (size_t s = 0; s < blocks.size(); ++s)
    for (size_t j = 0; j < blocks[s].size(); ++j, ++index) {
      if (!blocks[s][j]->moe) continue;
      const std::string prefix = "stages." + std::to_string(s) + ".blocks." + std::to_string(j) + ".mlp.";
      nn::Mlp dense(cfg.dims[s], cfg.hidden(s));
      std::map<std::string, Tensor> mlp;
      for (const char* k : {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}) {
        const auto it = dict.find(prefix + k);
        VIMOE_CHECK(it != dict.end(), path, ": MoE block ", index, " needs ", prefix, k, " to seed its experts");
        mlp.emplace(k, it->second);
        dict.erase(it);
      }
      dense.load_state_dict(mlp);
      blocks[s][j]->moe->init_from_dense(dense);
      upcycled.push_back(index);
    }
  const LoadReport r = load_state_dict(dict, /*strict=*/false);
  std::vector<std::string> missing;
  for (const std::string& n : r.missing)
    if (n.find(".moe.") == std::string::npos && n.rfind("head.fc.", 0) != 0) missing.push_back(n);
  VIMOE_CHECK(missing.empty(), path, ": the checkpoint lacks ", missing.size(), " tensor(s) the model needs, e.g. ",
              missing.front(), "; only the classifier (head.fc) and the MoE routers may be absent");
  std::string report = "loaded " + std::to_string(dict.size() - r.unexpected.size()) + " tensors from " + path;
  if (!upcycled.empty()) report += "; the experts of MoE blocks " + join_ints(upcycled, ", ") + " copied from their MLPs";
  if (!r.unexpected.empty()) report += "; " + std::to_string(r.unexpected.size()) + " unused (e.g. " + r.unexpected.front() + ")";
  return report;
}

int64_t ConvNeXt::layer_of(const std::string& name) const {
  if (name.rfind("stem.", 0) == 0) return 0;
  if (name.rfind("stages.", 0) == 0) {
    const size_t s = std::stoul(name.substr(7));
    int64_t first = 0;
    for (size_t i = 0; i < s; ++i) first += cfg.depths[i];
    const std::string blocks_prefix = "stages." + std::to_string(s) + ".blocks.";
    if (name.rfind(blocks_prefix, 0) == 0) return first + std::stoll(name.substr(blocks_prefix.size())) + 1;
    return first + 1;  // the stage's downsampling goes with its first block
  }
  return cfg.blocks() + 1;  // head
}

std::string ConvNeXt::describe() const {
  std::string s = name + ": depths " + join_ints(cfg.depths, "-") + ", widths " + join_ints(cfg.dims, "-") + ", " +
                  std::to_string(cfg.image_size) + "x" + std::to_string(cfg.image_size) + " images, " +
                  std::to_string(cfg.stem_patch) + "x" + std::to_string(cfg.stem_patch) + " stem, " +
                  describe_moe(moe, routing_unit());
  if (moe.enabled()) s += " (" + join_ints(moe.blocks, ", ") + ")";
  return s;
}

ModelSize convnext_size(const ConvNeXtConfig& c, const MoEConfig& m) {
  ModelSize s;
  int64_t inactive = 0;
  auto ln = [&](int64_t dim, int64_t elements) {
    s.total_params += 2 * dim;
    s.macs += 5 * elements;
  };
  VIMOE_CHECK(c.image_size % c.stem_patch == 0, "convnext_size: image size ", c.image_size,
              " is not a multiple of the stem patch ", c.stem_patch);
  int64_t side = c.image_size / c.stem_patch;
  const int64_t stem_in = c.in_channels * c.stem_patch * c.stem_patch;
  s.total_params += stem_in * c.dims[0] + c.dims[0];
  s.macs += side * side * c.dims[0] * stem_in;
  ln(c.dims[0], side * side * c.dims[0]);
  int64_t index = 0;
  for (size_t st = 0; st < c.dims.size(); ++st) {
    const int64_t d = c.dims[st], hidden = c.hidden(st);
    if (st > 0) {
      const int64_t in = c.dims[st - 1];
      ln(in, side * side * in);
      side /= 2;
      s.total_params += in * d * 4 + d;
      s.macs += side * side * d * in * 4;
    }
    const int64_t pixels = side * side;
    for (int64_t j = 0; j < c.depths[st]; ++j, ++index) {
      s.total_params += d * c.kernel_size * c.kernel_size + d;  // depthwise conv
      s.macs += pixels * d * c.kernel_size * c.kernel_size;
      ln(d, pixels * d);
      if (c.layer_scale_init > 0) s.total_params += d;
      const int64_t mlp_macs = 2 * pixels * d * hidden;
      if (!m.is_moe_block(index)) {
        s.total_params += mlp_params(d, hidden);
        s.macs += mlp_macs;
        continue;
      }
      const MoELayerSize layer = moe_layer_size(d, hidden, m);
      s.total_params += layer.total_params;
      s.expert_params.push_back(mlp_params(d, hidden));
      inactive += layer.total_params - layer.active_params;
      const int64_t router_rows = m.routing == RoutingLevel::Image ? 1 : pixels;
      s.macs += (m.top_k + (m.shared_expert ? 1 : 0)) * mlp_macs + router_rows * layer.router_macs;
    }
  }
  ln(c.dims.back(), c.dims.back());
  if (c.num_classes > 0) {
    s.total_params += c.dims.back() * c.num_classes + c.num_classes;
    s.macs += c.dims.back() * c.num_classes;
  }
  s.active_params = s.total_params - inactive;
  return s;
}

ModelSize ConvNeXt::size() const { return convnext_size(cfg, moe); }

std::vector<int64_t> convnext_placement(const std::string& placement, const std::vector<int64_t>& depths) {
  std::vector<int64_t> first(depths.size(), 0), out;
  for (size_t i = 1; i < depths.size(); ++i) first[i] = first[i - 1] + depths[i - 1];
  const int64_t total = first.back() + depths.back();
  const int64_t stages = static_cast<int64_t>(depths.size());
  auto last_of = [&](int64_t stage) { return first[stage] + depths[stage] - 1; };
  if (placement == "every2") {
    for (int64_t b = 1; b < total; b += 2) out.push_back(b);
  } else if (placement == "stage") {
    for (int64_t st = 0; st < stages; ++st) out.push_back(last_of(st));
  } else if (placement == "last2" || placement == "last3") {
    VIMOE_CHECK(stages >= 3 || placement == "last2", "MoE placement last3 needs at least 3 stages, found ", stages);
    VIMOE_CHECK(stages >= 2, "MoE placement last2 needs at least 2 stages, found ", stages);
    if (placement == "last3") {
      const int64_t st = stages - 2;  // the third stage of four: the middle of its blocks
      const int64_t middle = first[st] + depths[st] / 2;
      if (middle != last_of(st)) out.push_back(middle);
    }
    out.push_back(last_of(stages - 2));
    out.push_back(last_of(stages - 1));
  } else {
    VIMOE_FAIL("unknown MoE placement \"", placement, "\" for a ConvNeXt (every2, stage, last2, last3; or the last L "
               "blocks, or a list of blocks)");
  }
  return out;
}

// ---- configuration and the factory's builder ---------------------------------------------

nlohmann::json ConvNeXt::config() const {
  return {{"name", name},
          {"image_size", cfg.image_size},
          {"in_channels", cfg.in_channels},
          {"depths", cfg.depths},
          {"dims", cfg.dims},
          {"stem_patch", cfg.stem_patch},
          {"kernel_size", cfg.kernel_size},
          {"mlp_ratio", cfg.mlp_ratio},
          {"layer_scale_init", cfg.layer_scale_init},
          {"ln_eps", cfg.ln_eps},
          {"drop_path", cfg.drop_path},
          {"head_init_scale", cfg.head_init_scale},
          {"num_classes", cfg.num_classes},
          {"moe", moe_to_json(moe)}};
}

std::shared_ptr<ImageModel> create_convnext(const std::string& name, const nlohmann::json& options) {
  ConvNeXtConfig c;
  if (name == "convnext_small") {
    c.depths = {3, 3, 27, 3};
  } else if (name == "convnext_base") {
    c.depths = {3, 3, 27, 3};
    c.dims = {128, 256, 512, 1024};
  } else if (name == "convnext_cifar") {
    c.image_size = 32;
    c.depths = {2, 2, 2, 2};
    c.dims = {32, 64, 128, 256};
    c.stem_patch = 2;
  } else {
    VIMOE_CHECK(name == "convnext_tiny", "create_convnext: unknown preset \"", name, "\"");
  }
  OptionReader r(name, options);
  r.allow("name");
  r.get("image_size", c.image_size);
  r.get("in_channels", c.in_channels);
  r.get("depths", c.depths);
  r.get("dims", c.dims);
  int64_t width = 0;
  if (r.get("width", width)) {
    VIMOE_CHECK(width > 0 && !r.has("dims"), name, ": width must be > 0 and not given with dims, found ", width);
    for (size_t i = 0; i < c.dims.size(); ++i) c.dims[i] = width << i;
  }
  const bool stem_given = r.get("stem_patch", c.stem_patch);
  if (r.get("patch_size", c.stem_patch))
    VIMOE_CHECK(!stem_given, name, ": give one of patch_size and stem_patch");
  r.get("kernel_size", c.kernel_size);
  r.get("mlp_ratio", c.mlp_ratio);
  r.get("layer_scale_init", c.layer_scale_init);
  r.get("layer_scale", c.layer_scale_init);
  r.get("ln_eps", c.ln_eps);
  r.get("drop_path", c.drop_path);
  r.get("head_init_scale", c.head_init_scale);
  r.get("num_classes", c.num_classes);
  std::string pretrained;
  r.get("pretrained", pretrained);  // a timm checkpoint of the preset's shape: nothing to derive
  VIMOE_CHECK(c.depths.size() == c.dims.size() && !c.depths.empty(), name, ": depths [", join_ints(c.depths, ", "),
              "] and dims [", join_ints(c.dims, ", "), "] must be non-empty and of one length");
  VIMOE_CHECK(c.mlp_ratio > 0, name, ": mlp_ratio must be > 0, found ", c.mlp_ratio);
  const int64_t factor = c.stem_patch << (c.dims.size() - 1);
  VIMOE_CHECK(c.stem_patch >= 1 && c.image_size % factor == 0, name, ": image size ", c.image_size,
              " is not a multiple of ", factor, " (the stem patch ", c.stem_patch, " times 2 per later stage)");
  const MoEConfig m = read_moe(r, c.blocks(), [&](const std::string& p) { return convnext_placement(p, c.depths); });
  r.finish();
  auto model = std::make_shared<ConvNeXt>(c, m);
  model->name = name;
  return model;
}

}  // namespace vimoe::models
