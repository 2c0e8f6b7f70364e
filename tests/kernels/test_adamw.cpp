// AdamW on the GPU against the CPU reference, on odd sizes, over several steps.
#include <gtest/gtest.h>

#include "engine/optim/adamw.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

TEST(AdamWCuda, MatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  for (int64_t n : {1, 257, 385 * 3}) {
    Tensor hc = uniform({n}, 1), hd = hc.cuda();
    Tensor bc = uniform({3}, 2), bd = bc.cuda();
    for (Tensor* t : {&hc, &hd, &bc, &bd}) t->set_requires_grad(true);
    optim::AdamW cpu_opt({{{hc}, 1.0, 0.05}, {{bc}, 0.3, 0.0}}, {.lr = 0.01});
    optim::AdamW gpu_opt({{{hd}, 1.0, 0.05}, {{bd}, 0.3, 0.0}}, {.lr = 0.01});
    for (int step = 0; step < 4; ++step) {
      const Tensor g = uniform({n}, 10 + step), gb = uniform({3}, 20 + step);
      hc.set_grad(g);
      hd.set_grad(g.cuda());
      bc.set_grad(gb);
      bd.set_grad(gb.cuda());
      cpu_opt.step();
      gpu_opt.step();
    }
    // f32 on both sides with the same operation order up to fused multiply-adds.
    EXPECT_TRUE(all_close(hd.cpu(), hc, 1e-6, 1e-5)) << n;
    EXPECT_TRUE(all_close(bd.cpu(), bc, 1e-6, 1e-5)) << n;
    const auto sc = cpu_opt.state_dict(), sg = gpu_opt.state_dict();
    EXPECT_TRUE(all_close(sg.at("exp_avg_sq.0.0").cpu(), sc.at("exp_avg_sq.0.0"), 1e-7, 1e-5));
  }
}

// Many tensors of odd sizes in several groups (more than one launch holds, one tensor spanning
// several chunks, empty and one-element tensors), f32 and f64 side by side, some without a
// gradient: every one must match its CPU twin, and the gradient-less ones stay untouched.
TEST(AdamWCuda, ManyTensorsInFewLaunchesMatchTheCpu) {
  VIMOE_REQUIRE_GPU();
  std::vector<Tensor> cpu_params, gpu_params;
  std::vector<optim::ParamGroup> cpu_groups(3), gpu_groups(3);
  const double lr_scale[3] = {1.0, 0.5, 0.25}, decay[3] = {0.05, 0.0, 0.1};
  for (int i = 0; i < 300; ++i) {
    const int64_t n = i == 7 ? 40000 : i == 11 ? 0 : (i * 37) % 401 + 1;
    const DType dt = i % 50 == 3 ? DType::F64 : DType::F32;
    Tensor c = uniform({n}, 100 + i, -1, 1, dt), d = c.cuda();
    c.set_requires_grad(true);
    d.set_requires_grad(true);
    cpu_params.push_back(c);
    gpu_params.push_back(d);
    cpu_groups[i % 3].params.push_back(c);
    gpu_groups[i % 3].params.push_back(d);
  }
  for (int g = 0; g < 3; ++g) {
    cpu_groups[g].lr_scale = gpu_groups[g].lr_scale = lr_scale[g];
    cpu_groups[g].weight_decay = gpu_groups[g].weight_decay = decay[g];
  }
  optim::AdamW cpu_opt(cpu_groups, {.lr = 0.01}), gpu_opt(gpu_groups, {.lr = 0.01});
  std::vector<Tensor> initial;
  for (const Tensor& p : cpu_params) initial.push_back(p.detach().clone());
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < cpu_params.size(); ++i) {
      if (i % 17 == 5) continue;  // never gets a gradient
      const Tensor g = uniform(cpu_params[i].shape(), 1000 * step + i, -1, 1, cpu_params[i].dtype());
      cpu_params[i].set_grad(g);
      gpu_params[i].set_grad(g.cuda());
    }
    cpu_opt.step();
    gpu_opt.step();
  }
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    EXPECT_TRUE(all_close(gpu_params[i].cpu(), cpu_params[i], 1e-6, 1e-5)) << "tensor " << i;
    if (i % 17 == 5) {
      EXPECT_TRUE(all_close(gpu_params[i].cpu(), initial[i], 0, 0)) << "tensor " << i;
    }
  }
}
