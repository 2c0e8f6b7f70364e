// Softmax top-k routing: CUDA against the CPU reference, forward and backward.
#include <gtest/gtest.h>

#include "engine/ops/routing.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

TEST(RoutingCuda, MatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  for (int64_t rows : {1, 3, 257, 65792}) {
    for (int64_t n : {1, 2, 8, 33, 64}) {
      for (int64_t k : {1, 2}) {
        if (k > n) continue;
        for (bool renorm : {false, true}) {
          // Spread logits so near-ties (where f32 and f64 could pick differently) are rare;
          // bf16 logits exercise the conversion on entry.
          for (DType dt : {DType::F32, DType::BF16}) {
            Tensor host = uniform({rows, n}, rows * 100 + n, -4, 4).to(dt);
            Tensor dev = host.cuda();
            host.set_requires_grad(true);
            dev.set_requires_grad(true);
            const Routing rc = route_topk(host, k, renorm, 0.01);
            const Routing rg = route_topk(dev, k, renorm, 0.01);
            const std::string what = std::to_string(rows) + "x" + std::to_string(n) + " k" +
                                     std::to_string(k) + (renorm ? " renorm " : " ") + dtype_name(dt);
            EXPECT_TRUE(all_close(rg.expert_ids.cpu(), rc.expert_ids, 0, 0)) << what;
            EXPECT_TRUE(all_close(rg.probs.cpu(), rc.probs, 1e-6, 1e-5)) << what;
            EXPECT_TRUE(all_close(rg.gates.cpu(), rc.gates, 1e-6, 1e-5)) << what;
            EXPECT_TRUE(all_close(rg.load.cpu(), rc.load, 0, 0)) << what;
            EXPECT_TRUE(all_close(rg.aux_loss.cpu(), rc.aux_loss, 1e-6, 1e-4)) << what;
            const Tensor w = uniform({rows, k}, 7);
            (sum(rc.gates * w) + rc.aux_loss * 3.0).backward();
            (sum(rg.gates * w.cuda()) + rg.aux_loss * 3.0).backward();
            EXPECT_TRUE(all_close(dev.grad().cpu(), host.grad(), dt == DType::BF16 ? 1e-2 : 1e-6, 1e-2))
                << what;
          }
        }
      }
    }
  }
}
