#include <gtest/gtest.h>

#include <cmath>

#include "engine/ops/routing.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;

TEST(Routing, ValuesAgainstAHandComputation) {
  // Row 0 prefers expert 2, then 0; row 1 prefers expert 1, then 2; row 2 prefers 2.
  const Tensor logits = Tensor::from_vector<float>({1, 0, 2, 0, 3, 1, 0, 0, 5}, {3, 3});
  const Routing r = route_topk(logits, 2, /*renormalize=*/false, /*alpha=*/0.01);
  EXPECT_EQ(r.expert_ids.to_vector<int32_t>(), (std::vector<int32_t>{2, 0, 1, 2, 2, 0}));
  const std::vector<float> p = r.probs.to_vector<float>();
  const double z0 = std::exp(1.0) + 1 + std::exp(2.0);
  EXPECT_NEAR(p[0], std::exp(1.0) / z0, 1e-7);
  EXPECT_NEAR(p[2], std::exp(2.0) / z0, 1e-7);
  EXPECT_NEAR(r.gates.to_vector<float>()[0], std::exp(2.0) / z0, 1e-7);
  EXPECT_NEAR(r.gates.to_vector<float>()[1], std::exp(1.0) / z0, 1e-7);
  // Top-1 load: expert 2 twice, expert 1 once.
  EXPECT_EQ(r.load.to_vector<float>(), (std::vector<float>{0, 1.0f / 3, 2.0f / 3}));
  double aux = 0;
  for (int i = 0; i < 3; ++i) {
    const double P = (p[i] + p[3 + i] + p[6 + i]) / 3;
    aux += r.load.to_vector<float>()[i] * P;
  }
  EXPECT_NEAR(r.aux_loss.item<double>(), 0.01 * 3 * aux, 1e-8);
  EXPECT_EQ(r.aux_loss.dim(), 0);
}

TEST(Routing, RenormalisesAndBreaksTiesTowardsTheLowerIndex) {
  const Tensor logits = Tensor::from_vector<float>({0, 1, 1, 0}, {1, 4});
  const Routing r = route_topk(logits, 2, /*renormalize=*/true, 0.0);
  EXPECT_EQ(r.expert_ids.to_vector<int32_t>(), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(r.gates.to_vector<float>(), (std::vector<float>{0.5f, 0.5f}));
  const Routing all = route_topk(Tensor::zeros({2, 5}), 5, true, 0.0);
  EXPECT_EQ(all.expert_ids.to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 3, 4, 0, 1, 2, 3, 4}));
  EXPECT_EQ(all.load.to_vector<float>(), (std::vector<float>{1, 0, 0, 0, 0}));
}

TEST(Routing, BalancedRoutingMinimisesTheLoss) {
  // With alpha = 1 a perfectly balanced router has aux = N * sum (1/N)(1/N) = 1; a collapsed
  // one (every row to one expert with probability ~1) has aux ~ N.
  const Tensor balanced = Tensor::from_vector<float>({9, 0, 0, 9}, {2, 2});
  EXPECT_NEAR(route_topk(balanced, 1, false, 1.0).aux_loss.item<double>(), 1.0, 1e-6);
  const Tensor collapsed = Tensor::from_vector<float>({20, 0, 20, 0}, {2, 2});
  EXPECT_NEAR(route_topk(collapsed, 1, false, 1.0).aux_loss.item<double>(), 2.0, 1e-6);
}

TEST(Routing, GradientsOfGatesAndLoss) {
  for (bool renorm : {false, true}) {
    for (int64_t k : {1, 2, 3}) {
      const Tensor logits = leaf64({5, 4}, 10 + k, -2, 2);
      EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) { return route_topk(in[0], k, renorm, 0.3).gates; },
                          {logits}))
          << "gates, k=" << k << " renorm=" << renorm;
      EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) { return route_topk(in[0], k, renorm, 0.3).aux_loss; },
                          {logits}))
          << "aux, k=" << k;
      EXPECT_TRUE(grad_ok(
          [&](const std::vector<Tensor>& in) {
            const Routing r = route_topk(in[0], k, renorm, 0.3);
            return r.gates * 2.0 + r.aux_loss;
          },
          {logits}))
          << "both, k=" << k;
    }
  }
  // Logits of another dtype get their gradient in that dtype.
  Tensor f = vimoe::testing::uniform({3, 4}, 5);
  f.set_requires_grad(true);
  sum(route_topk(f, 1, false, 0.01).gates).backward();
  EXPECT_EQ(f.grad().dtype(), DType::F32);
}

TEST(Routing, BadInputs) {
  EXPECT_VIMOE_ERROR(route_topk(Tensor::zeros({2, 3, 4}), 1, false, 0), "route_topk", "[2, 3, 4]");
  EXPECT_VIMOE_ERROR(route_topk(Tensor::zeros({2, 65}), 1, false, 0), "route_topk", "64", "[2, 65]");
  EXPECT_VIMOE_ERROR(route_topk(Tensor::zeros({2, 4}), 5, false, 0), "route_topk", "k must be in 1..4", "5");
  EXPECT_VIMOE_ERROR(route_topk(Tensor::zeros({2, 4}, DType::I32), 1, false, 0), "route_topk", "floating");
}
