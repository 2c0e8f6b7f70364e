// A tiny ViMoE and one training pass over it, shared by the tests that compare whole-model
// runs (bf16 autocast against f32, CUDA against the CPU).
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "models/vit.h"
#include "tests/test_util.h"

namespace vimoe::testing {

// The smallest dense ViT the model tests build by hand: 8x8 two-channel images in 4x4 patches
// (a 2x2 grid), width 8 in 2 heads, 2 blocks, LayerScale 0.5.
inline models::ViTConfig tiny_vit(int64_t classes) {
  models::ViTConfig v;
  v.image_size = 8;
  v.patch_size = 4;
  v.in_channels = 2;
  v.width = 8;
  v.depth = 2;
  v.heads = 2;
  v.mlp_hidden = 12;
  v.pos_grid = 2;
  v.num_classes = classes;
  v.layer_scale_init = 0.5;
  return v;
}

// 16x16 RGB images in 4x4 patches, width 128 in 2 heads of 64 (the CUDA attention kernel's
// head dim), 4 register tokens, 2 blocks; block 1 routes to 4 experts plus a shared expert
// (top-1 for images, top-2 for tokens).
inline std::pair<models::ViTConfig, models::MoEConfig> tiny_vimoe(models::RoutingLevel level) {
  models::ViTConfig v;
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
  models::MoEConfig m;
  m.experts = 4;
  m.top_k = level == models::RoutingLevel::Token ? 2 : 1;
  m.shared_expert = true;
  m.routing = level;
  m.aux_alpha = 0.01;
  m.blocks = {1};
  return {v, m};
}

struct Pass {
  models::VisionTransformer::Output out;
  Tensor loss;
  std::vector<std::pair<std::string, Tensor>> grads;  // undefined where a parameter got none
};

// Forward (under bf16 autocast if asked), cross-entropy + aux loss, backward, on fixed
// images and labels placed on `device`.
inline Pass run_pass(models::VisionTransformer& model, Device device, bool autocast) {
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

// A mixed-precision pass against an f32 one: (almost) the same routing, logits and every
// parameter's gradient close in direction, gradients f32 (the master weights' type).
inline void expect_tracks_f32(const Pass& mixed, const Pass& f32) {
  EXPECT_EQ(mixed.out.logits.dtype(), DType::BF16);
  EXPECT_GE(cosine(mixed.out.logits, f32.out.logits), 0.999);
  ASSERT_EQ(mixed.out.routing.size(), f32.out.routing.size());
  for (size_t i = 0; i < f32.out.routing.size(); ++i) {
    // A router logit near a tie may fall the other way in bf16; a rare one may differ.
    const std::vector<int32_t> got = mixed.out.routing[i].expert_ids.to_vector<int32_t>();
    const std::vector<int32_t> want = f32.out.routing[i].expert_ids.to_vector<int32_t>();
    ASSERT_EQ(got.size(), want.size());
    size_t same = 0;
    for (size_t j = 0; j < want.size(); ++j) same += got[j] == want[j];
    EXPECT_GE(static_cast<double>(same), 0.8 * static_cast<double>(want.size()))
        << same << " of " << want.size() << " routing decisions agree";
  }
  ASSERT_EQ(mixed.grads.size(), f32.grads.size());
  for (size_t i = 0; i < f32.grads.size(); ++i) {
    SCOPED_TRACE(f32.grads[i].first);
    const Tensor& want = f32.grads[i].second;
    const Tensor& got = mixed.grads[i].second;
    ASSERT_EQ(got.defined(), want.defined());
    if (!want.defined()) continue;  // a parameter this forward does not use
    EXPECT_EQ(got.dtype(), DType::F32);
    if (sum(abs(want)).item<double>() == 0) {  // an expert no row was routed to
      EXPECT_EQ(sum(abs(got)).item<double>(), 0);
      continue;
    }
    EXPECT_GE(cosine(got, want), 0.99);
  }
}

}  // namespace vimoe::testing
