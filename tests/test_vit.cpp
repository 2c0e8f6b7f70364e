#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "models/vit.h"
#include "tests/test_util.h"
#include "tests/tiny_vimoe.h"

using namespace vimoe;
using namespace vimoe::models;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

ViTConfig tiny(int64_t classes = 5) { return vimoe::testing::tiny_vit(classes); }

MoEConfig moe(RoutingLevel level, bool shared, int64_t experts = 3, int64_t k = 1) {
  MoEConfig m;
  m.experts = experts;
  m.top_k = k;
  m.shared_expert = shared;
  m.routing = level;
  m.aux_alpha = 0.1;
  m.blocks = {1};
  return m;
}

// Central differences of a scalar loss w.r.t. a few elements of each named parameter,
// against the autograd gradient. The model must be f64 on the CPU.
void expect_param_grads(VisionTransformer& model, const std::function<Tensor()>& loss_fn,
                        const std::vector<std::string>& names) {
  model.zero_grad();
  loss_fn().backward();
  std::map<std::string, Tensor> params;
  for (auto& [n, p] : model.named_parameters()) params[n] = p;
  for (const std::string& name : names) {
    ASSERT_TRUE(params.count(name)) << name;
    const Tensor p = params[name];
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    const std::vector<double> analytic = p.grad().to_vector<double>();
    double* data = p.data<double>();
    const int64_t n = p.numel(), step = std::max<int64_t>(1, n / 7);
    for (int64_t i = 0; i < n; i += step) {
      const double saved = data[i], eps = 1e-6;
      double up, down;
      {
        NoGradGuard g;
        data[i] = saved + eps;
        up = loss_fn().item<double>();
        data[i] = saved - eps;
        down = loss_fn().item<double>();
      }
      data[i] = saved;
      const double numeric = (up - down) / (2 * eps);
      EXPECT_NEAR(analytic[i], numeric, 1e-6 + 1e-4 * std::fabs(numeric)) << name << "[" << i << "]";
    }
  }
}

}  // namespace

TEST(ViT, ShapesNamesAndParameterCount) {
  ViTConfig v = tiny();
  v.registers = 2;
  VisionTransformer model(v, moe(RoutingLevel::Image, true));
  model.init_weights(1);
  const auto out = model.forward(uniform({3, 2, 8, 8}, 2));
  EXPECT_EQ(out.logits.shape(), (Shape{3, 5}));
  EXPECT_EQ(out.features.shape(), (Shape{3, 1 + 2 + 4, 8}));
  ASSERT_EQ(out.routing.size(), 1u);
  EXPECT_EQ(out.moe_blocks, (std::vector<int64_t>{1}));
  EXPECT_EQ(out.routing[0].expert_ids.shape(), (Shape{3, 1}));  // one decision per image
  EXPECT_EQ(out.aux_loss.dim(), 0);
  EXPECT_EQ(model.num_parameters(), model_size(v, moe(RoutingLevel::Image, true)).total_params);
  const auto sd = model.state_dict();
  for (const char* key : {"cls_token", "pos_embed", "register_tokens", "patch_embed.proj.weight",
                          "blocks.0.attn.qkv.weight", "blocks.0.ls1.gamma", "blocks.0.mlp.fc1.bias",
                          "blocks.1.moe.router.weight", "blocks.1.moe.fc1_weight",
                          "blocks.1.moe.shared.fc2.weight", "norm.weight", "head.weight"})
    EXPECT_TRUE(sd.count(key)) << key;
  EXPECT_EQ(sd.at("patch_embed.proj.weight").shape(), (Shape{8, 2, 4, 4}));
  EXPECT_EQ(sd.at("blocks.1.moe.fc1_weight").shape(), (Shape{3, 12, 8}));
}

// layer_scale_init 0: blocks without LayerScale (timm's ViT default); the residual branches
// are added unscaled, which a model with LayerScale at 1 reproduces exactly.
TEST(ViT, WithoutLayerScale) {
  ViTConfig v = tiny();
  v.layer_scale_init = 0;
  VisionTransformer bare(v, moe(RoutingLevel::Image, true));
  bare.init_weights(1);
  EXPECT_EQ(bare.num_parameters(), model_size(v, moe(RoutingLevel::Image, true)).total_params);
  std::map<std::string, Tensor> sd = bare.state_dict();
  for (const auto& [name, t] : sd) EXPECT_EQ(name.find(".ls"), std::string::npos) << name;
  v.layer_scale_init = 1;
  VisionTransformer unit(v, moe(RoutingLevel::Image, true));
  EXPECT_EQ(unit.num_parameters(), bare.num_parameters() + 2 * v.depth * v.width);
  unit.init_weights(1);
  for (const auto& [name, t] : unit.state_dict())
    if (name.find(".ls") != std::string::npos) sd.emplace(name, t);
  unit.load_state_dict(sd);
  const Tensor x = uniform({3, 2, 8, 8}, 2);
  EXPECT_TRUE(all_close(bare.forward(x).logits, unit.forward(x).logits, 0, 0));
  v.layer_scale_init = -1;
  EXPECT_VIMOE_ERROR(VisionTransformer(v, {}), "LayerScale", ">= 0", "-1");
}

TEST(ViT, TokenRoutingDecidesPerToken) {
  VisionTransformer model(tiny(), moe(RoutingLevel::Token, false, 4, 2));
  model.init_weights(3);
  const auto out = model.forward(uniform({2, 2, 8, 8}, 4));
  EXPECT_EQ(out.routing[0].expert_ids.shape(), (Shape{2 * 5, 2}));
}

TEST(ViT, SingleExpertMoEEqualsTheDenseModel) {
  // One expert, top-1: the gate is 1 and the expert is a copy of the dense FFN.
  VisionTransformer dense(tiny());
  dense.init_weights(5);
  MoEConfig m = moe(RoutingLevel::Image, false, 1);
  VisionTransformer sparse(tiny(), m);
  sparse.load_state_dict(dense.state_dict(), /*strict=*/false);
  sparse.blocks[1]->moe->init_from_dense(*dense.blocks[1]->mlp);
  const Tensor x = uniform({2, 2, 8, 8}, 6);
  EXPECT_TRUE(all_close(sparse.forward(x).logits, dense.forward(x).logits, 1e-5, 1e-5));
}

TEST(ViT, ResamplesThePositionTableForOtherGridsAtInference) {
  VisionTransformer model(tiny());
  model.init_weights(7);
  model.eval();
  NoGradGuard g;
  EXPECT_EQ(model.forward(uniform({1, 2, 12, 8}, 8)).logits.shape(), (Shape{1, 5}));
  model.train();
  EXPECT_EQ(model.forward(uniform({1, 2, 12, 8}, 8)).features.shape(), (Shape{1, 1 + 6, 8}));
}

TEST(ViT, BadInputs) {
  VisionTransformer model(tiny());
  EXPECT_VIMOE_ERROR(model.forward(uniform({1, 3, 8, 8}, 1)), "PatchEmbed", "[B, 2, H, W]", "[1, 3, 8, 8]");
  EXPECT_VIMOE_ERROR(model.forward(uniform({1, 2, 9, 8}, 1)), "PatchEmbed", "9x8", "patch size 4");
  EXPECT_VIMOE_ERROR(model.forward(uniform({1, 2, 12, 8}, 1)), "position table");
  MoEConfig m = moe(RoutingLevel::Image, false);
  m.blocks = {2};
  EXPECT_VIMOE_ERROR(VisionTransformer(tiny(), m), "MoE block 2");
}

// The gradient check of a whole tiny ViMoE: image- and token-level routing, shared expert.
TEST(ViTGrad, TinyViMoEFiniteDifferences) {
  for (RoutingLevel level : {RoutingLevel::Image, RoutingLevel::Token}) {
    VisionTransformer model(tiny(), moe(level, /*shared=*/true, 3, level == RoutingLevel::Token ? 2 : 1));
    model.init_weights(11);
    {
      // Larger weights than the 0.02 init make every path's gradient measurable.
      NoGradGuard g;
      for (auto& [n, p] : model.named_parameters()) {
        Tensor t = p;
        t.copy_(t * 10.0 + uniform(t.shape(), 99, -0.05, 0.05));
      }
    }
    model.to(DType::F64);
    const Tensor x = uniform({2, 2, 8, 8}, 12, -1, 1, DType::F64);
    const Tensor labels = Tensor::from_vector<int64_t>({1, 3}, {2});
    auto loss = [&] {
      const auto out = model.forward(x);
      return cross_entropy(out.logits, labels) + out.aux_loss;
    };
    expect_param_grads(model, loss,
                       {"blocks.1.moe.router.weight", "blocks.1.moe.fc1_weight", "blocks.1.moe.fc2_bias",
                        "blocks.1.moe.shared.fc1.weight", "blocks.0.attn.qkv.weight", "blocks.1.ls2.gamma",
                        "patch_embed.proj.weight", "pos_embed", "cls_token", "head.bias", "blocks.0.norm1.weight"});
  }
}

// The from-scratch initialisation follows timm's VisionTransformer rule by rule.
TEST(ViT, InitialisationFollowsTimm) {
  ViTConfig v = tiny();
  v.width = 64;
  v.mlp_hidden = 256;
  v.registers = 2;
  VisionTransformer model(v, moe(RoutingLevel::Image, true, 4));
  model.init_weights(13);
  const auto sd = model.state_dict();
  auto stats = [](const Tensor& t) {
    const std::vector<double> x = t.to_vector<double>();
    double s = 0, s2 = 0, mx = 0;
    for (double e : x) {
      s += e;
      s2 += e * e;
      mx = std::max(mx, std::fabs(e));
    }
    const double n = static_cast<double>(x.size());
    return std::array<double, 3>{s / n, std::sqrt(s2 / n - (s / n) * (s / n)), mx};
  };
  // Linear weights: std 0.02, not truncated at 2 std (a 0.04 bound would cap the maximum).
  for (const char* name : {"blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight", "head.weight",
                           "pos_embed", "blocks.1.moe.fc1_weight"}) {
    const auto [m, sd_, mx] = stats(sd.at(name));
    // Five standard errors of the sample mean and std of n normal draws: a wrong rule misses
    // by far more, a right one fails about once in 10^6 seeds.
    const double n = static_cast<double>(sd.at(name).numel());
    EXPECT_NEAR(sd_, 0.02, 5 * 0.02 / std::sqrt(2 * n)) << name;
    EXPECT_NEAR(m, 0.0, 5 * 0.02 / std::sqrt(n)) << name;
    if (sd.at(name).numel() > 10000) {
      EXPECT_GT(mx, 0.05) << name << ": looks truncated at 2 std";
    }
  }
  // Tokens near zero, but not all zero.
  for (const char* name : {"cls_token", "register_tokens"}) {
    const auto [m, sd_, mx] = stats(sd.at(name));
    EXPECT_LT(mx, 1e-5) << name;
    EXPECT_GT(sd_, 1e-7) << name;
  }
  // The patch embedding: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C * p * p = 32.
  const double bound = 1.0 / std::sqrt(32.0);
  for (const char* name : {"patch_embed.proj.weight", "patch_embed.proj.bias"}) {
    const auto [m, sd_, mx] = stats(sd.at(name));
    EXPECT_LE(mx, bound) << name;
    EXPECT_GT(mx, 0.5 * bound) << name;
  }
  EXPECT_NEAR(stats(sd.at("patch_embed.proj.weight"))[1], bound / std::sqrt(3.0), 0.15 * bound);
  // Norms 1 / 0, biases 0, LayerScale at its configured value.
  EXPECT_TRUE(all_close(sd.at("norm.weight"), Tensor::full({64}, 1.0), 0, 0));
  EXPECT_TRUE(all_close(sd.at("blocks.0.mlp.fc1.bias"), Tensor::zeros({256}), 0, 0));
  EXPECT_TRUE(all_close(sd.at("blocks.0.ls1.gamma"), Tensor::full({64}, v.layer_scale_init), 0, 0));
  // Experts are drawn independently, and the draw is deterministic in the seed.
  const Tensor w = sd.at("blocks.1.moe.fc1_weight");
  EXPECT_FALSE(all_close(w.select(0, 0), w.select(0, 1), 1e-3, 0)) << "experts 0 and 1 are copies";
  VisionTransformer again(v, moe(RoutingLevel::Image, true, 4));
  again.init_weights(13);
  EXPECT_TRUE(all_close(again.state_dict().at("blocks.1.moe.fc1_weight"), w, 0, 0));
}
