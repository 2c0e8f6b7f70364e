#include "models/dinov2.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "engine/autograd.h"
#include "engine/io/safetensors.h"
#include "engine/ops/index.h"
#include "models/pos_embed.h"

namespace vimoe::models {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// Hugging Face name -> our name, for everything but q/k/v (merged separately). Empty: no mapping.
std::string map_hf_key(const std::string& key) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex(R"(^embeddings\.cls_token$)"), "cls_token"},
      {std::regex(R"(^embeddings\.position_embeddings$)"), "pos_embed"},
      {std::regex(R"(^embeddings\.register_tokens$)"), "register_tokens"},
      {std::regex(R"(^embeddings\.patch_embeddings\.projection\.(weight|bias)$)"), "patch_embed.proj.$1"},
      {std::regex(R"(^encoder\.layer\.(\d+)\.norm([12])\.(weight|bias)$)"), "blocks.$1.norm$2.$3"},
      {std::regex(R"(^encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)$)"), "blocks.$1.attn.proj.$2"},
      {std::regex(R"(^encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1$)"), "blocks.$1.ls$2.gamma"},
      {std::regex(R"(^encoder\.layer\.(\d+)\.mlp\.(fc[12])\.(weight|bias)$)"), "blocks.$1.mlp.$2.$3"},
      {std::regex(R"(^layernorm\.(weight|bias)$)"), "norm.$1"},
  };
  for (const auto& [re, fmt] : rules)
    if (std::regex_match(key, re)) return std::regex_replace(key, re, fmt);
  return "";
}

bool is_original_key(const std::string& key) {
  static const std::regex re(
      R"(^(cls_token|pos_embed|register_tokens|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)|)"
      R"(blocks\.\d+\.(norm[12]\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)|ls[12]\.gamma|mlp\.fc[12]\.(weight|bias)))$)");
  return std::regex_match(key, re);
}

// Reads config.json beside the weights, if any.
nlohmann::json read_config_json(const std::string& weights_path) {
  const std::filesystem::path cfg = std::filesystem::path(weights_path).parent_path() / "config.json";
  if (!std::filesystem::exists(cfg)) return nlohmann::json();
  std::ifstream in(cfg);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    VIMOE_FAIL(cfg.string(), ": invalid JSON (", e.what(), ")");
  }
}

ViTConfig infer_config(const std::map<std::string, Tensor>& t, const nlohmann::json& cfg,
                       const std::string& path) {
  auto need = [&](const std::string& k) -> const Tensor& {
    auto it = t.find(k);
    VIMOE_CHECK(it != t.end(), path, ": DINOv2 checkpoint without \"", k, "\"");
    return it->second;
  };
  ViTConfig c;
  const Tensor& patch = need("patch_embed.proj.weight");
  VIMOE_CHECK(patch.dim() == 4, path, ": patch_embed.proj.weight must be [D, C, p, p], found ",
              shape_str(patch.shape()));
  c.width = patch.size(0);
  c.in_channels = patch.size(1);
  c.patch_size = patch.size(2);
  c.depth = 0;
  while (t.count("blocks." + std::to_string(c.depth) + ".norm1.weight")) ++c.depth;
  VIMOE_CHECK(c.depth > 0, path, ": no transformer blocks found");
  c.heads = c.width / 64;
  const Tensor& fc1 = need("blocks.0.mlp.fc1.weight");
  VIMOE_CHECK(fc1.dim() == 2, path, ": blocks.0.mlp.fc1.weight must be [hidden, D], found ", shape_str(fc1.shape()));
  c.mlp_hidden = fc1.size(0);
  if (t.count("register_tokens")) {
    const Tensor& r = t.at("register_tokens");
    VIMOE_CHECK(r.dim() == 3, path, ": register_tokens must be [1, R, D], found ", shape_str(r.shape()));
    c.registers = r.size(1);
  }
  const Tensor& pos = need("pos_embed");
  VIMOE_CHECK(pos.dim() == 3 && pos.size(1) >= 1, path, ": pos_embed must be [1, 1 + grid^2, D], found ",
              shape_str(pos.shape()));
  const int64_t rows = pos.size(1) - 1;
  c.pos_grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(rows))));
  VIMOE_CHECK(c.pos_grid * c.pos_grid == rows, path, ": position table of ", rows + 1,
              " rows is not CLS + a square grid");
  c.image_size = c.pos_grid * c.patch_size;
  c.ln_eps = 1e-6;
  c.layer_scale_init = 1.0;
  if (cfg.is_object()) {
    auto get = [&](const char* k, auto fallback) {
      return cfg.contains(k) && !cfg[k].is_null() ? cfg[k].get<decltype(fallback)>() : fallback;
    };
    c.heads = get("num_attention_heads", c.heads);
    c.ln_eps = get("layer_norm_eps", c.ln_eps);
    const int64_t width = get("hidden_size", c.width), depth = get("num_hidden_layers", c.depth);
    VIMOE_CHECK(width == c.width && depth == c.depth, path, ": config.json says width ", width,
                " and depth ", depth, ", the weights have ", c.width, " and ", c.depth);
  }
  return c;
}

}  // namespace

Dinov2Weights read_dinov2(const std::string& path) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);
  std::vector<std::string> names = f.names();
  const bool prefixed = std::all_of(names.begin(), names.end(),
                                    [](const std::string& n) { return starts_with(n, "dinov2."); });
  auto strip = [prefixed](const std::string& n) { return prefixed ? n.substr(7) : n; };
  const bool hf = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
    return strip(n) == "embeddings.patch_embeddings.projection.weight";
  });
  const bool original = f.contains("patch_embed.proj.weight");
  VIMOE_CHECK(hf || original, path, ": not a DINOv2 checkpoint (neither embeddings.patch_embeddings."
              "projection.weight nor patch_embed.proj.weight is present)");
  Dinov2Weights w;
  w.layout = hf ? "huggingface" : "original";
  std::map<std::string, std::map<char, Tensor>> qkv;  // "blocks.i.attn.qkv.weight" -> q/k/v parts
  static const std::regex qkv_re(R"(^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$)");
  for (const std::string& name : names) {
    const std::string key = strip(name);
    if (key == "mask_token" || key == "embeddings.mask_token") {
      w.ignored.push_back(name);
      continue;
    }
    if (!hf) {
      VIMOE_CHECK(is_original_key(key), path, ": unexpected key \"", name, "\" in an original-layout DINOv2 checkpoint");
      w.tensors.emplace(key, f.get(name));
      continue;
    }
    std::smatch m;
    if (std::regex_match(key, m, qkv_re)) {
      qkv["blocks." + m[1].str() + ".attn.qkv." + m[3].str()][m[2].str()[0]] = f.get(name);
      continue;
    }
    const std::string ours = map_hf_key(key);
    VIMOE_CHECK(!ours.empty(), path, ": unexpected key \"", name, "\" in a Hugging Face DINOv2 checkpoint");
    w.tensors.emplace(ours, f.get(name));
  }
  NoGradGuard no_grad;
  for (auto& [ours, parts] : qkv) {
    VIMOE_CHECK(parts.count('q') && parts.count('k') && parts.count('v'), path, ": ", ours,
                " needs query, key and value; found ", parts.size(), " of them");
    try {
      w.tensors.emplace(ours, concat({parts['q'], parts['k'], parts['v']}, 0));
    } catch (const Error& e) {
      VIMOE_FAIL(path, ": the query, key and value tensors of \"", ours, "\" do not stack (",
                 shape_str(parts['q'].shape()), ", ", shape_str(parts['k'].shape()), ", ",
                 shape_str(parts['v'].shape()), "): ", e.what());
    }
  }
  w.config = infer_config(w.tensors, read_config_json(path), path);
  return w;
}

ViTConfig dinov2_config(const std::string& path) { return read_dinov2(path).config; }

ImportReport load_dinov2(VisionTransformer& model, const std::string& path) {
  const Dinov2Weights w = read_dinov2(path);
  const ViTConfig& c = w.config;
  VIMOE_CHECK(c.width == model.vit.width && c.depth == model.vit.depth && c.patch_size == model.vit.patch_size &&
                  c.in_channels == model.vit.in_channels && c.registers == model.vit.registers,
              path, ": checkpoint is width ", c.width, ", depth ", c.depth, ", patch ", c.patch_size,
              ", ", c.in_channels, " channels, ", c.registers, " registers; the model is ", model.vit.width, ", ",
              model.vit.depth, ", ", model.vit.patch_size, ", ", model.vit.in_channels, ", ", model.vit.registers);
  std::map<std::string, Tensor> targets;
  for (auto& [n, p] : model.named_parameters()) targets.emplace(n, p);
  ImportReport report;
  std::map<std::string, Tensor> plan;  // our name -> value to copy
  auto assign = [&](const std::string& name, const Tensor& value) {
    const Tensor& dst = targets.at(name);
    VIMOE_CHECK(dst.shape() == value.shape(), path, ": \"", name, "\" has shape ",
                shape_str(value.shape()), " in the checkpoint, ", shape_str(dst.shape()), " in the model");
    plan[name] = value;
  };
  NoGradGuard no_grad;
  for (const auto& [name, value] : w.tensors) {
    if (name == "pos_embed") {
      Tensor resampled;
      try {
        resampled = resample_pos_embed(value, 1, model.vit.pos_grid, model.vit.pos_grid);
      } catch (const Error& e) {
        VIMOE_FAIL(path, ": \"pos_embed\" of shape ", shape_str(value.shape()), " cannot be resampled to the model's ",
                   model.vit.pos_grid, "x", model.vit.pos_grid, " grid: ", e.what());
      }
      assign(name, resampled);
      continue;
    }
    // A dense FFN of a block that is MoE in the model seeds every expert and the shared one.
    static const std::regex ffn(R"(^blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)$)");
    std::smatch m;
    if (std::regex_match(name, m, ffn) && !targets.count(name)) {
      const std::string moe = "blocks." + m[1].str() + ".moe.";
      const std::string stacked = moe + m[2].str() + "_" + m[3].str();
      if (targets.count(stacked)) {
        Shape s = targets.at(stacked).shape();
        VIMOE_CHECK(value.numel() * s[0] == shape_numel(s), path, ": \"", name, "\" has shape ",
                    shape_str(value.shape()), ", the experts of ", moe, " take ", shape_str(s));
        Shape one = s;
        one[0] = 1;
        plan[stacked] = value.reshape(one).expand(s);
        const std::string shared_name = moe + "shared." + m[2].str() + "." + m[3].str();
        if (targets.count(shared_name)) assign(shared_name, value);
        continue;
      }
    }
    if (!targets.count(name)) {
      report.unexpected.push_back(name);
      continue;
    }
    assign(name, value);
  }
  // Only what no DINOv2 checkpoint has -- the classifier head and the MoE routers -- may be
  // absent; a missing backbone tensor means a broken or foreign file, not a fresh start.
  static const std::regex may_be_absent(R"(^(head\..*|blocks\.\d+\.moe\.router\..*|moe_router\..*)$)");
  std::vector<std::string> lacking;
  for (const auto& [name, t] : targets) {
    if (plan.count(name)) continue;
    report.missing.push_back(name);
    if (!std::regex_match(name, may_be_absent)) lacking.push_back(name);
  }
  if (!lacking.empty()) {
    std::string list;
    for (const std::string& n : lacking) list += (list.empty() ? "" : ", ") + n;
    VIMOE_FAIL(path, ": the ", w.layout, "-layout checkpoint lacks ", lacking.size(), " backbone tensor",
               lacking.size() == 1 ? "" : "s", " the model needs (named as in the model): ", list,
               "; only the classifier head and the MoE routers may be absent");
  }
  for (const auto& [name, value] : plan) {
    Tensor dst = targets.at(name);
    dst.copy_(value);
    report.loaded.push_back(name);
  }
  return report;
}

}  // namespace vimoe::models
