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

namespace {

std::vector<float> keep_of(const std::vector<int32_t>& ids, int64_t k, int64_t experts, int64_t capacity,
                           const std::vector<float>& priority = {}) {
  const int64_t rows = static_cast<int64_t>(ids.size()) / k;
  const Tensor prio = priority.empty() ? Tensor() : Tensor::from_vector<float>(priority, {rows});
  return capacity_mask(Tensor::from_vector<int32_t>(ids, {rows, k}), experts, capacity, prio, DType::F32)
      .to_vector<float>();
}

}  // namespace

TEST(Capacity, RowsBeyondAnExpertsCapacityAreDroppedInRowOrder) {
  // Five rows, top-1, two experts of capacity 2: expert 0 is chosen by rows 0, 1, 3, 4 and keeps
  // the first two; expert 1 (row 2) has room.
  EXPECT_EQ(keep_of({0, 0, 1, 0, 0}, 1, 2, 2), (std::vector<float>{1, 1, 1, 0, 0}));
  // Capacity 0 drops everything; a capacity above the demand drops nothing.
  EXPECT_EQ(keep_of({0, 1, 1}, 1, 2, 0), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(keep_of({0, 1, 1}, 1, 2, 3), (std::vector<float>{1, 1, 1}));
}

TEST(Capacity, BatchPrioritizedRoutingServesTheMostConfidentRowsFirst) {
  // The same five rows, now with priorities (their top gate values): expert 0's rows 0, 1, 3, 4
  // have 0.3, 0.6, 0.9, 0.5, so rows 3 and 1 keep their slots and rows 0 and 4 are dropped.
  EXPECT_EQ(keep_of({0, 0, 1, 0, 0}, 1, 2, 2, {0.3f, 0.6f, 0.8f, 0.9f, 0.5f}), (std::vector<float>{0, 1, 1, 1, 0}));
  // Equal priorities fall back to row order.
  EXPECT_EQ(keep_of({0, 0, 0}, 1, 1, 2, {0.5f, 0.5f, 0.5f}), (std::vector<float>{1, 1, 0}));
}

TEST(Capacity, FirstChoicesClaimCapacityBeforeSecondChoices) {
  // Top-2 over three experts, capacity 2. Row order: row 0 (0, 1), row 1 (1, 0), row 2 (0, 2).
  // First choices: expert 0 <- rows 0, 2; expert 1 <- row 1. Second choices: row 0's expert 1
  // fits (1 used), row 1's expert 0 does not (full), row 2's expert 2 fits.
  EXPECT_EQ(keep_of({0, 1, 1, 0, 0, 2}, 2, 3, 2), (std::vector<float>{1, 1, 1, 0, 1, 1}));
  // Had the slots gone row by row instead, row 1's second choice (expert 0) would have taken
  // the place of row 2's first choice.
  // With priority row 2 > row 1 > row 0, the first choices are served 2, 1, 0 and the second
  // choices in that order: expert 0 <- rows 2, 0 (full), expert 1 <- row 1, then row 1's
  // expert 0 is dropped, row 0's expert 1 fits.
  EXPECT_EQ(keep_of({0, 1, 1, 0, 0, 2}, 2, 3, 2, {0.1f, 0.2f, 0.3f}), (std::vector<float>{1, 1, 1, 0, 1, 1}));
  // Capacity 1 with the same priority: first choices 2 -> e0, 1 -> e1, 0 -> e0 dropped; second
  // choices 2 -> e2 kept, 1 -> e0 dropped, 0 -> e1 dropped.
  EXPECT_EQ(keep_of({0, 1, 1, 0, 0, 2}, 2, 3, 1, {0.1f, 0.2f, 0.3f}), (std::vector<float>{0, 0, 1, 0, 1, 1}));
}

TEST(Capacity, CapacityFromTheFactorAndBadInputs) {
  EXPECT_EQ(expert_capacity(1.0, 1, 6, 3), 2);   // exactly 2, not 3 from a rounding error
  EXPECT_EQ(expert_capacity(1.0, 2, 6, 4), 3);
  EXPECT_EQ(expert_capacity(1.25, 1, 10, 4), 4);  // ceil(3.125)
  EXPECT_EQ(expert_capacity(0.01, 1, 10, 4), 1);  // never 0
  EXPECT_VIMOE_ERROR(expert_capacity(0, 1, 10, 4), "expert_capacity", "positive");
  EXPECT_VIMOE_ERROR(keep_of({0, 3}, 1, 2, 1), "capacity_mask", "expert id 3", "[0, 2)");
  EXPECT_VIMOE_ERROR(capacity_mask(Tensor::zeros({2, 1}), 2, 1, Tensor(), DType::F32), "capacity_mask", "i32");
  EXPECT_VIMOE_ERROR(capacity_mask(Tensor::from_vector<int32_t>({0, 1}, {2, 1}), 2, 1, Tensor::zeros({3}), DType::F32),
                     "capacity_mask", "priority must be [2]");
}
