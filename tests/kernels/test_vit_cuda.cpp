// A whole tiny ViMoE on the GPU against the same model on the CPU: forward, routing and every
// parameter gradient, in f32 and under bf16 autocast, for both routing levels.
#include "tests/tiny_vimoe.h"

using namespace vimoe;
using namespace vimoe::models;
using namespace vimoe::testing;

namespace {

// The pass of the f32 CPU model and of its copy on the GPU (under autocast if asked).
std::pair<Pass, Pass> cpu_and_gpu(RoutingLevel level, bool gpu_autocast) {
  const auto [v, m] = tiny_vimoe(level);
  VisionTransformer on_cpu(v, m), on_gpu(v, m);
  on_cpu.init_weights(5);
  on_gpu.init_weights(5);
  on_gpu.to(Device::cuda());
  return {run_pass(on_cpu, Device::cpu(), false), run_pass(on_gpu, Device::cuda(), gpu_autocast)};
}

}  // namespace

TEST(ViTCuda, TinyViMoEMatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  for (const RoutingLevel level : {RoutingLevel::Image, RoutingLevel::Token}) {
    SCOPED_TRACE(level == RoutingLevel::Image ? "image-level" : "token-level");
    const auto [c, g] = cpu_and_gpu(level, false);
    EXPECT_TRUE(gpu_close(g.out.logits, c.out.logits, scaled_tol_for(DType::F32)));
    EXPECT_TRUE(gpu_close(g.loss, c.loss, scaled_tol_for(DType::F32)));
    EXPECT_TRUE(all_close(g.out.routing[0].expert_ids.cpu(), c.out.routing[0].expert_ids, 0, 0));
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

// Under bf16 autocast the GPU model must track the f32 CPU model as closely as the CPU's own
// autocast run does (tests/test_autocast.cpp).
TEST(ViTCuda, TinyViMoEUnderBf16AutocastTracksF32) {
  VIMOE_REQUIRE_GPU();
  for (const RoutingLevel level : {RoutingLevel::Image, RoutingLevel::Token}) {
    SCOPED_TRACE(level == RoutingLevel::Image ? "image-level" : "token-level");
    const auto [c, g] = cpu_and_gpu(level, true);
    expect_tracks_f32(g, c);
  }
}
