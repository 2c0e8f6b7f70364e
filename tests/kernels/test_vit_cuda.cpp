// A whole tiny ViMoE on the GPU against the same model on the CPU: forward, routing and every
// parameter gradient, in f32 and under bf16 autocast, for both routing levels.
#include <gtest/gtest.h>

#include "models/vit.h"
#include "tests/test_util.h"

using namespace vimoe;
using namespace vimoe::models;
using vimoe::testing::cosine;
using vimoe::testing::gpu_close;
using vimoe::testing::scaled_tol_for;
using vimoe::testing::uniform;

namespace {

struct Pass {
  VisionTransformer::Output out;
  Tensor loss;
  std::vector<std::pair<std::string, Tensor>> grads;  // undefined where a parameter got none
};

Pass run(VisionTransformer& model, Device device, bool autocast) {
  const Tensor images = uniform({5, 3, 16, 16}, 9).to(device);
  const Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 3, 6, 1, 2}, {5}).to(device);
  model.zero_grad();
  Pass p;
  {
    AutocastGuard mixed(DType::BF16, autocast);
    p.out = model.forward(images);
    p.loss = cross_entropy(p.out.logits.to(DType::F32), labels) + p.out.aux_loss;
  }
  p.loss.backward();
  for (const auto& [name, t] : model.named_parameters())
    p.grads.emplace_back(name, t.grad().defined() ? t.grad().clone() : Tensor());
  return p;
}

// Head dim 64 (the CUDA attention kernel's), four register tokens, a shared expert.
std::pair<ViTConfig, MoEConfig> tiny(RoutingLevel level) {
  ViTConfig v;
  v.image_size = 16;
  v.patch_size = 4;
  v.in_channels = 3;
  v.width = 128;
  v.depth = 2;
  v.heads = 2;
  v.mlp_hidden = 256;
  v.registers = 4;
  v.pos_grid = 4;
  v.num_classes = 7;
  v.layer_scale_init = 0.5;
  MoEConfig m;
  m.experts = 4;
  m.top_k = level == RoutingLevel::Token ? 2 : 1;
  m.shared_expert = true;
  m.routing = level;
  m.aux_alpha = 0.01;
  m.blocks = {1};
  return {v, m};
}

}  // namespace

TEST(ViTCuda, TinyViMoEMatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  for (const RoutingLevel level : {RoutingLevel::Image, RoutingLevel::Token}) {
    SCOPED_TRACE(level == RoutingLevel::Image ? "image-level" : "token-level");
    const auto [v, m] = tiny(level);
    VisionTransformer on_cpu(v, m), on_gpu(v, m);
    on_cpu.init_weights(5);
    on_gpu.init_weights(5);
    on_gpu.to(Device::cuda());
    const Pass c = run(on_cpu, Device::cpu(), false);
    const Pass g = run(on_gpu, Device::cuda(), false);
    EXPECT_TRUE(gpu_close(g.out.logits, c.out.logits, scaled_tol_for(DType::F32)));
    EXPECT_TRUE(gpu_close(g.loss, c.loss, scaled_tol_for(DType::F32)));
    EXPECT_TRUE(vimoe::testing::all_close(g.out.routing[0].expert_ids.cpu(), c.out.routing[0].expert_ids, 0, 0));
    ASSERT_EQ(g.grads.size(), c.grads.size());
    for (size_t i = 0; i < c.grads.size(); ++i) {
      SCOPED_TRACE(c.grads[i].first);
      ASSERT_EQ(g.grads[i].second.defined(), c.grads[i].second.defined());
      if (c.grads[i].second.defined()) {
        EXPECT_TRUE(gpu_close(g.grads[i].second, c.grads[i].second, scaled_tol_for(DType::F32), 1e-7));
      }
    }
  }
}

// Under bf16 autocast the GPU model must stay as close to the f32 CPU model as the CPU's own
// autocast run does (tests/test_autocast.cpp).
TEST(ViTCuda, TinyViMoEUnderBf16AutocastTracksF32) {
  VIMOE_REQUIRE_GPU();
  for (const RoutingLevel level : {RoutingLevel::Image, RoutingLevel::Token}) {
    SCOPED_TRACE(level == RoutingLevel::Image ? "image-level" : "token-level");
    const auto [v, m] = tiny(level);
    VisionTransformer on_cpu(v, m), on_gpu(v, m);
    on_cpu.init_weights(5);
    on_gpu.init_weights(5);
    on_gpu.to(Device::cuda());
    const Pass c = run(on_cpu, Device::cpu(), false);
    const Pass g = run(on_gpu, Device::cuda(), true);
    EXPECT_EQ(g.out.logits.dtype(), DType::BF16);
    EXPECT_GE(cosine(g.out.logits, c.out.logits), 0.999);
    for (size_t i = 0; i < c.grads.size(); ++i) {
      SCOPED_TRACE(c.grads[i].first);
      if (!c.grads[i].second.defined()) continue;
      EXPECT_EQ(g.grads[i].second.dtype(), DType::F32);
      if (sum(abs(c.grads[i].second)).item<double>() > 0) {
        EXPECT_GE(cosine(g.grads[i].second, c.grads[i].second), 0.99);
      }
    }
  }
}
