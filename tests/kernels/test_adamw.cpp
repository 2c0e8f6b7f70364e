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
