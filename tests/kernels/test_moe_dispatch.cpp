// Expert dispatch: CUDA against the CPU reference (plan, gather, combine, backward).
#include <gtest/gtest.h>

#include "engine/ops/moe_dispatch.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {
Tensor random_ids(int64_t rows, int64_t k, int64_t experts, uint64_t seed) {
  // Skewed on purpose: low experts are popular and some experts may stay empty.
  const Tensor u = uniform({rows, k}, seed, 0, 1, DType::F64);
  return (u * u * static_cast<double>(experts)).to(DType::I32);
}
}  // namespace

TEST(MoeDispatchCuda, PlanMatchesTheCpuExactly) {
  VIMOE_REQUIRE_GPU();
  for (int64_t rows : {1, 3, 257, 65792}) {
    for (int64_t k : {1, 2}) {
      for (int64_t experts : {1, 8, 64, 100}) {
        const Tensor id = random_ids(rows, k, experts, rows + k + experts);
        const DispatchPlan c = plan_dispatch(id, experts), g = plan_dispatch(id.cuda(), experts);
        EXPECT_EQ(g.offsets, c.offsets) << rows << " " << k << " " << experts;
        EXPECT_TRUE(all_close(g.order.cpu(), c.order, 0, 0)) << rows << " " << k << " " << experts;
        EXPECT_TRUE(all_close(g.position.cpu(), c.position, 0, 0));
      }
    }
  }
  const Tensor bad = Tensor::from_vector<int32_t>({0, 9}, {2, 1}).cuda();
  EXPECT_VIMOE_ERROR(plan_dispatch(bad, 8), "plan_dispatch", "outside [0, 8)");
}

TEST(MoeDispatchCuda, GatherCombineAndBackwardMatchTheCpu) {
  VIMOE_REQUIRE_GPU();
  struct Case { int64_t rows, k, experts; Shape row_shape; };
  for (const Case& c : {Case{1, 1, 8, {257, 384}}, Case{3, 2, 8, {3, 5}}, Case{257, 2, 64, {385}},
                        Case{65792, 1, 8, {384}}}) {
    for (DType dt : {DType::F32, DType::BF16}) {
      const Tensor id = random_ids(c.rows, c.k, c.experts, 7);
      const DispatchPlan pc = plan_dispatch(id, c.experts), pg = plan_dispatch(id.cuda(), c.experts);
      Shape xs{c.rows};
      xs.insert(xs.end(), c.row_shape.begin(), c.row_shape.end());
      Tensor x = uniform(xs, 8).to(dt), xg = x.cuda();
      Tensor gates = uniform({c.rows, c.k}, 9, 0, 1), gg = gates.cuda();
      for (Tensor* t : {&x, &xg, &gates, &gg}) t->set_requires_grad(true);
      const Tensor bc = dispatch_rows(x, pc), bg = dispatch_rows(xg, pg);
      EXPECT_TRUE(all_close(bg.cpu(), bc, 0, 0));
      const Tensor yc = combine_rows(bc * bc, gates, pc), yg = combine_rows(bg * bg, gg, pg);
      // f32 accumulation over k <= 2 terms: agrees to rounding; bf16 rounds the result once.
      const double tol = dt == DType::BF16 ? 1e-2 : 1e-6;
      EXPECT_TRUE(all_close(yg.cpu(), yc, tol, tol));
      const Tensor w = uniform(yc.shape(), 10);
      sum(yc * w.to(dt)).backward();
      sum(yg * w.to(dt).cuda()).backward();
      EXPECT_TRUE(all_close(xg.grad().cpu(), x.grad(), tol, tol));
      // Gate gradients are dot products over a whole row: f32 sums in a different order.
      EXPECT_TRUE(all_close(gg.grad().cpu(), gates.grad(), 1e-3 * std::sqrt(static_cast<double>(x.numel() / c.rows)), 1e-3));
    }
  }
}

TEST(MoeDispatchCuda, GroupedLinearMatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16}) {
    for (bool image_rows : {true, false}) {
      const int64_t rows = image_rows ? 33 : 4099, experts = 8, k = 2;
      const Tensor id = random_ids(rows, k, experts, 11);
      const DispatchPlan pc = plan_dispatch(id, experts), pg = plan_dispatch(id.cuda(), experts);
      const Shape xs = image_rows ? Shape{rows, 17, 64} : Shape{rows, 64};
      Tensor x = uniform(xs, 1).to(dt), w = uniform({experts, 96, 64}, 2, -0.2, 0.2).to(dt);
      Tensor b = uniform({experts, 96}, 3).to(dt);
      Tensor xg = x.cuda(), wg = w.cuda(), bg = b.cuda();
      for (Tensor* t : {&x, &w, &b, &xg, &wg, &bg}) t->set_requires_grad(true);
      const Tensor yc = grouped_linear(dispatch_rows(x, pc), w, b, pc);
      const Tensor yg = grouped_linear(dispatch_rows(xg, pg), wg, bg, pg);
      // f32 without TF32 agrees to summation order; bf16 rounds products summed over K = 64
      // (forward) and over up to rows * tokens (weight gradient).
      const double tol = dt == DType::BF16 ? 5e-2 : 1e-4;
      EXPECT_TRUE(all_close(yg.cpu(), yc, tol, tol)) << dtype_name(dt) << image_rows;
      const Tensor gw = uniform(yc.shape(), 4).to(dt);
      sum(yc * gw).backward();
      sum(yg * gw.cuda()).backward();
      EXPECT_TRUE(all_close(xg.grad().cpu(), x.grad(), tol, tol));
      EXPECT_TRUE(all_close(wg.grad().cpu(), w.grad(), tol * 30, tol));
      EXPECT_TRUE(all_close(bg.grad().cpu(), b.grad(), tol * 30, tol));
    }
  }
}
