#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/io/safetensors.h"
#include "models/dinov2.h"
#include "models/pos_embed.h"
#include "tests/test_util.h"

using namespace vimoe;
using namespace vimoe::models;
using vimoe::testing::all_close;
using vimoe::testing::uniform;
namespace fs = std::filesystem;

namespace {

ViTConfig backbone(int64_t grid) {
  ViTConfig v;
  v.patch_size = 4;
  v.in_channels = 2;
  v.width = 128;  // two heads of 64: what a checkpoint without config.json implies
  v.depth = 2;
  v.heads = 2;
  v.mlp_hidden = 24;
  v.pos_grid = grid;
  v.image_size = grid * 4;
  v.layer_scale_init = 0.3;
  return v;
}

// A source model with non-trivial weights everywhere (LayerNorms and LayerScales included).
std::shared_ptr<VisionTransformer> source_model(int64_t grid) {
  auto m = std::make_shared<VisionTransformer>(backbone(grid));
  NoGradGuard g;
  uint64_t seed = 1;
  for (auto& [n, p] : m->named_parameters()) {
    Tensor t = p;
    t.copy_(uniform(t.shape(), seed++, -0.5, 0.5));
  }
  return m;
}

class Dinov2Import : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vimoe_dinov2_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Original layout: our names plus a mask token.
  std::string save_original(const VisionTransformer& m, const std::string& sub) {
    fs::create_directories(dir_ / sub);
    std::vector<std::pair<std::string, Tensor>> out;
    for (auto& [n, t] : m.state_dict()) out.emplace_back(n, t);
    out.emplace_back("mask_token", Tensor::zeros({1, m.vit.width}));
    const std::string path = (dir_ / sub / "model.safetensors").string();
    io::save_safetensors(path, out);
    return path;
  }

  // Hugging Face layout: renamed keys, q/k/v split, optional "dinov2." prefix, config.json.
  std::string save_hf(const VisionTransformer& m, const std::string& sub, bool prefix, bool config) {
    fs::create_directories(dir_ / sub);
    const std::string p = prefix ? "dinov2." : "";
    const int64_t D = m.vit.width;
    std::vector<std::pair<std::string, Tensor>> out;
    const auto sd = m.state_dict();
    out.emplace_back(p + "embeddings.cls_token", sd.at("cls_token"));
    out.emplace_back(p + "embeddings.mask_token", Tensor::zeros({1, D}));
    out.emplace_back(p + "embeddings.position_embeddings", sd.at("pos_embed"));
    out.emplace_back(p + "embeddings.patch_embeddings.projection.weight", sd.at("patch_embed.proj.weight"));
    out.emplace_back(p + "embeddings.patch_embeddings.projection.bias", sd.at("patch_embed.proj.bias"));
    for (int64_t i = 0; i < m.vit.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".", l = p + "encoder.layer." + std::to_string(i) + ".";
      for (const char* wb : {"weight", "bias"}) {
        const std::string s = wb;
        out.emplace_back(l + "norm1." + s, sd.at(b + "norm1." + s));
        out.emplace_back(l + "norm2." + s, sd.at(b + "norm2." + s));
        const Tensor qkv = sd.at(b + "attn.qkv." + s);
        out.emplace_back(l + "attention.attention.query." + s, qkv.narrow(0, 0, D).contiguous());
        out.emplace_back(l + "attention.attention.key." + s, qkv.narrow(0, D, D).contiguous());
        out.emplace_back(l + "attention.attention.value." + s, qkv.narrow(0, 2 * D, D).contiguous());
        out.emplace_back(l + "attention.output.dense." + s, sd.at(b + "attn.proj." + s));
        out.emplace_back(l + "mlp.fc1." + s, sd.at(b + "mlp.fc1." + s));
        out.emplace_back(l + "mlp.fc2." + s, sd.at(b + "mlp.fc2." + s));
      }
      out.emplace_back(l + "layer_scale1.lambda1", sd.at(b + "ls1.gamma"));
      out.emplace_back(l + "layer_scale2.lambda1", sd.at(b + "ls2.gamma"));
    }
    out.emplace_back(p + "layernorm.weight", sd.at("norm.weight"));
    out.emplace_back(p + "layernorm.bias", sd.at("norm.bias"));
    const std::string path = (dir_ / sub / "model.safetensors").string();
    io::save_safetensors(path, out);
    if (config) {
      std::ofstream(dir_ / sub / "config.json")
          << R"({"model_type": "dinov2", "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,)"
          << R"( "layer_norm_eps": 1e-5, "patch_size": 4})";
    }
    return path;
  }

  fs::path dir_;
};

void expect_same_backbone(VisionTransformer& a, VisionTransformer& b) {
  for (auto& [n, t] : a.state_dict()) EXPECT_TRUE(all_close(b.state_dict().at(n), t, 0, 0)) << n;
  const Tensor x = uniform({2, 2, a.vit.image_size, a.vit.image_size}, 77);
  NoGradGuard g;
  EXPECT_TRUE(all_close(b.forward(x).features, a.forward(x).features, 1e-6, 1e-6));
}

}  // namespace

TEST_F(Dinov2Import, OriginalLayoutLoadsByName) {
  const auto src = source_model(3);
  const std::string path = save_original(*src, "orig");
  const Dinov2Weights w = read_dinov2(path);
  EXPECT_EQ(w.layout, "original");
  EXPECT_EQ(w.ignored, (std::vector<std::string>{"mask_token"}));
  EXPECT_EQ(w.config.width, 128);
  EXPECT_EQ(w.config.heads, 2);  // width / 64 without config.json
  EXPECT_EQ(w.config.depth, 2);
  EXPECT_EQ(w.config.mlp_hidden, 24);
  EXPECT_EQ(w.config.pos_grid, 3);
  VisionTransformer dst(backbone(3));
  const ImportReport r = load_dinov2(dst, path);
  EXPECT_TRUE(r.missing.empty());
  EXPECT_TRUE(r.unexpected.empty());
  expect_same_backbone(*src, dst);
}

TEST_F(Dinov2Import, HuggingFaceLayoutWithAndWithoutPrefix) {
  const auto src = source_model(3);
  for (bool prefix : {false, true}) {
    const std::string path = save_hf(*src, prefix ? "hfp" : "hf", prefix, /*config=*/true);
    const Dinov2Weights w = read_dinov2(path);
    EXPECT_EQ(w.layout, "huggingface");
    EXPECT_EQ(w.config.heads, 4);          // from config.json
    EXPECT_DOUBLE_EQ(w.config.ln_eps, 1e-5);
    EXPECT_EQ(w.ignored.size(), 1u);
    VisionTransformer dst(backbone(3));
    const ImportReport r = load_dinov2(dst, path);
    EXPECT_TRUE(r.missing.empty()) << r.missing.size();
    for (auto& [n, t] : src->state_dict()) EXPECT_TRUE(all_close(dst.state_dict().at(n), t, 0, 0)) << n;
  }
}

TEST_F(Dinov2Import, MoEExpertsStartAsCopiesAndThePositionTableIsResampled) {
  const auto src = source_model(4);  // checkpoint grid 4 (16x16 images)
  const std::string path = save_hf(*src, "hf", false, false);
  ViTConfig v = backbone(2);  // model grid 2 (8x8 images)
  v.num_classes = 7;
  MoEConfig moe;
  moe.experts = 3;
  moe.shared_expert = true;
  moe.blocks = {1};
  VisionTransformer dst(v, moe);
  const ImportReport r = load_dinov2(dst, path);
  const std::vector<std::string> expect_missing{"blocks.1.moe.router.bias", "blocks.1.moe.router.weight",
                                                "head.bias", "head.weight"};
  EXPECT_EQ(r.missing, expect_missing);
  const auto sd = src->state_dict();
  for (int64_t e = 0; e < 3; ++e) {
    EXPECT_TRUE(all_close(dst.blocks[1]->moe->fc1_weight.select(0, e), sd.at("blocks.1.mlp.fc1.weight"), 0, 0));
    EXPECT_TRUE(all_close(dst.blocks[1]->moe->fc2_bias.select(0, e), sd.at("blocks.1.mlp.fc2.bias"), 0, 0));
  }
  EXPECT_TRUE(all_close(dst.blocks[1]->moe->shared->fc1->weight, sd.at("blocks.1.mlp.fc1.weight"), 0, 0));
  EXPECT_TRUE(all_close(dst.pos_embed, resample_pos_embed(sd.at("pos_embed"), 1, 2, 2), 0, 0));
}

TEST_F(Dinov2Import, BadCheckpoints) {
  const auto src = source_model(3);
  ViTConfig deeper = backbone(3);
  deeper.depth = 3;
  VisionTransformer too_deep(deeper);
  const std::string path = save_original(*src, "orig");
  EXPECT_VIMOE_ERROR(load_dinov2(too_deep, path), "model.safetensors", "depth 2", "3");

  const std::string odd = (dir_ / "odd.safetensors").string();
  io::save_safetensors(odd, {{"encoder.weight", Tensor::zeros({2})}});
  EXPECT_VIMOE_ERROR(read_dinov2(odd), "odd.safetensors", "not a DINOv2 checkpoint");

  std::vector<std::pair<std::string, Tensor>> extra;
  for (auto& [n, t] : src->state_dict()) extra.emplace_back(n, t);
  extra.emplace_back("blocks.0.attn.rope", Tensor::zeros({2}));
  const std::string with_extra = (dir_ / "extra.safetensors").string();
  io::save_safetensors(with_extra, extra);
  EXPECT_VIMOE_ERROR(read_dinov2(with_extra), "unexpected key", "blocks.0.attn.rope");
}

// A backbone tensor missing from the file is an error listing it (the head and the routers
// may be absent), and the model is left untouched.
TEST_F(Dinov2Import, AMissingBackboneTensorIsAnError) {
  const auto src = source_model(3);
  VisionTransformer dst(backbone(3));
  const Tensor before = dst.blocks[1]->norm1->weight.clone();
  for (const char* drop : {"blocks.1.attn.proj.weight", "norm.bias", "blocks.0.ls2.gamma"}) {
    SCOPED_TRACE(drop);
    std::vector<std::pair<std::string, Tensor>> out;
    for (auto& [n, t] : src->state_dict())
      if (n != std::string(drop)) out.emplace_back(n, t);
    const std::string path = (dir_ / "partial.safetensors").string();
    io::save_safetensors(path, out);
    EXPECT_VIMOE_ERROR(load_dinov2(dst, path), "partial.safetensors", "lacks 1 backbone tensor", drop,
                       "only the classifier head and the MoE routers may be absent");
    EXPECT_TRUE(all_close(dst.blocks[1]->norm1->weight, before, 0, 0));
  }
}

// Shape errors name the file and the key, wherever they are found.
TEST_F(Dinov2Import, ShapeErrorsNameTheFileAndTheKey) {
  const auto src = source_model(3);
  VisionTransformer dst(backbone(3));
  auto with = [&](const std::string& key, const Tensor& value, bool hf) {
    const std::string path = save_hf(*src, hf ? "hf_bad" : "orig_bad", false, false);
    const io::SafetensorsFile f = io::SafetensorsFile::open(path);
    std::vector<std::pair<std::string, Tensor>> out;
    if (hf) {
      for (const std::string& n : f.names()) out.emplace_back(n, n == key ? value : f.get(n).clone());
    } else {
      for (auto& [n, t] : src->state_dict()) out.emplace_back(n, n == key ? value : t);
    }
    const std::string bad = (dir_ / "bad.safetensors").string();
    io::save_safetensors(bad, out);
    return bad;
  };
  // A tensor of the wrong size (original layout).
  EXPECT_VIMOE_ERROR(load_dinov2(dst, with("blocks.1.mlp.fc2.bias", Tensor::zeros({127}), false)),
                     "bad.safetensors", "blocks.1.mlp.fc2.bias", "[127]", "[128]");
  // q, k and v that do not stack (Hugging Face layout).
  EXPECT_VIMOE_ERROR(load_dinov2(dst, with("encoder.layer.0.attention.attention.key.weight",
                                           Tensor::zeros({128, 5}), true)),
                     "bad.safetensors", "blocks.0.attn.qkv.weight", "[128, 5]");
  // A position table of the wrong rank, and register tokens of the wrong rank.
  EXPECT_VIMOE_ERROR(load_dinov2(dst, with("pos_embed", Tensor::zeros({10, 128}), false)), "bad.safetensors",
                     "pos_embed", "[10, 128]");
  EXPECT_VIMOE_ERROR(load_dinov2(dst, with("blocks.0.mlp.fc1.weight", Tensor::zeros({24}), false)),
                     "bad.safetensors", "blocks.0.mlp.fc1.weight", "[24]");
}
