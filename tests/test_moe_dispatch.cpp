#include <gtest/gtest.h>

#include "engine/ops/linalg.h"
#include "engine/ops/moe_dispatch.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;
using vimoe::testing::uniform;

namespace {
Tensor ids(std::vector<int32_t> v, int64_t k) {
  const int64_t rows = static_cast<int64_t>(v.size()) / k;
  return Tensor::from_vector(v, {rows, k});
}
}  // namespace

TEST(MoeDispatch, PlanIsAStableCountingSort) {
  // Rows 0..3 with k = 2: slots 0..7 choose experts 2,0 | 1,2 | 2,1 | 0,2 (expert 3 empty).
  const DispatchPlan p = plan_dispatch(ids({2, 0, 1, 2, 2, 1, 0, 2}, 2), 4);
  EXPECT_EQ(p.offsets, (std::vector<int64_t>{0, 2, 4, 8, 8}));
  EXPECT_EQ(p.order.to_vector<int32_t>(), (std::vector<int32_t>{1, 6, 2, 5, 0, 3, 4, 7}));
  const std::vector<int32_t> order = p.order.to_vector<int32_t>(), pos = p.position.to_vector<int32_t>();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(pos[order[i]], i);
}

TEST(MoeDispatch, DispatchAndCombineValues) {
  // Three images of 2 tokens x 3 channels, top-2 over 3 experts.
  const Tensor x = Tensor::arange(0, 18).reshape({3, 2, 3});
  const DispatchPlan p = plan_dispatch(ids({1, 0, 2, 1, 0, 2}, 2), 3);
  const Tensor buf = dispatch_rows(x, p);
  EXPECT_EQ(buf.shape(), (Shape{6, 2, 3}));
  // Expert 0 holds slots 1 (image 0) and 4 (image 2); expert 1 slots 0 and 3; expert 2 slots 2, 5.
  const std::vector<int64_t> expect_images{0, 2, 0, 1, 1, 2};
  for (int i = 0; i < 6; ++i)
    EXPECT_TRUE(all_close(buf.select(0, i), x.select(0, expect_images[i]), 0, 0)) << i;
  const Tensor gates = Tensor::from_vector<float>({0.75f, 0.25f, 0.5f, 0.5f, 1.0f, 0.0f}, {3, 2});
  const Tensor y = combine_rows(buf, gates, p);
  // Both choices of a row carry the same image here, so y = x * (sum of its gates).
  const Tensor expect = x * Tensor::from_vector<float>({1.0f, 1.0f, 1.0f}, {3, 1, 1});
  EXPECT_TRUE(all_close(y, expect, 1e-6, 0));
  // With different values per slot, each row's gates weight its own slots.
  const Tensor eo = Tensor::arange(0, 6).reshape({6, 1});
  const Tensor y2 = combine_rows(eo, gates, p);
  const std::vector<int32_t> pos = p.position.to_vector<int32_t>();
  const std::vector<float> g = gates.to_vector<float>();
  for (int r = 0; r < 3; ++r)
    EXPECT_FLOAT_EQ(y2.to_vector<float>()[r], g[2 * r] * pos[2 * r] + g[2 * r + 1] * pos[2 * r + 1]);
}

TEST(MoeDispatch, Gradients) {
  const DispatchPlan p = plan_dispatch(ids({2, 0, 1, 2, 2, 1, 0, 2, 1, 1}, 2), 3);
  const Tensor x = leaf64({5, 2, 3}, 1);
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) { return dispatch_rows(in[0], p) * 1.5; }, {x}));
  const Tensor eo = leaf64({10, 2, 3}, 2), gates = leaf64({5, 2}, 3, 0, 1);
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) { return combine_rows(in[0], in[1], p); }, {eo, gates}));
  // The full path: dispatch, a per-slot transform, combine.
  EXPECT_TRUE(grad_ok(
      [&](const std::vector<Tensor>& in) {
        const Tensor buf = dispatch_rows(in[0], p);
        return combine_rows(buf * buf, in[1], p);
      },
      {x, gates}));
}

TEST(MoeDispatch, BadInputs) {
  EXPECT_VIMOE_ERROR(plan_dispatch(ids({0, 3}, 1), 3), "plan_dispatch", "expert id 3", "[0, 3)");
  EXPECT_VIMOE_ERROR(plan_dispatch(ids({0, -1}, 1), 3), "plan_dispatch", "expert id -1");
  EXPECT_VIMOE_ERROR(plan_dispatch(Tensor::zeros({2, 1}, DType::I64), 3), "plan_dispatch", "i32", "i64");
  const DispatchPlan p = plan_dispatch(ids({0, 1, 2}, 1), 3);
  EXPECT_VIMOE_ERROR(dispatch_rows(Tensor::zeros({4, 2}), p), "dispatch_rows", "3 rows", "[4, 2]");
  EXPECT_VIMOE_ERROR(combine_rows(Tensor::zeros({3, 2}), Tensor::zeros({3, 2}), p), "combine_rows",
                     "gates", "[3, 1]", "[3, 2]");
}

TEST(MoeDispatch, GroupedLinearMatchesPerExpertLinear) {
  // 4 images of 3 tokens, top-2 over 3 experts; expert 2 gets nothing.
  const DispatchPlan p = plan_dispatch(ids({1, 0, 0, 1, 1, 0, 0, 1}, 2), 3);
  const Tensor x = uniform({4, 3, 5}, 1);
  const Tensor w = uniform({3, 2, 5}, 2), b = uniform({3, 2}, 3);
  const Tensor buf = dispatch_rows(x, p);
  const Tensor out = grouped_linear(buf, w, b, p);
  EXPECT_EQ(out.shape(), (Shape{8, 3, 2}));
  const std::vector<int32_t> order = p.order.to_vector<int32_t>();
  for (int64_t i = 0; i < 8; ++i) {
    const int64_t e = i < p.offsets[1] ? 0 : 1;
    const Tensor expect = matmul(x.select(0, order[i] / 2), w.select(0, e).t()) + b.select(0, e);
    EXPECT_TRUE(all_close(out.select(0, i), expect, 1e-6, 1e-6)) << i;
  }
  EXPECT_VIMOE_ERROR(grouped_linear(buf, uniform({2, 2, 5}, 4), b, p), "grouped_linear", "[3, out, in]");
  EXPECT_VIMOE_ERROR(grouped_linear(buf, w, uniform({3, 3}, 5), p), "grouped_linear", "bias", "[3, 2]");
}

TEST(MoeDispatch, GroupedLinearGradients) {
  for (bool image_rows : {true, false}) {
    const DispatchPlan p = plan_dispatch(ids({2, 0, 0, 2, 2, 0}, 2), 4);  // experts 1 and 3 empty
    const Tensor x = image_rows ? leaf64({3, 2, 4}, 1) : leaf64({3, 4}, 1);
    const Tensor w = leaf64({4, 3, 4}, 2), b = leaf64({4, 3}, 3);
    EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) {
      return grouped_linear(dispatch_rows(in[0], p), in[1], in[2], p);
    }, {x, w, b})) << image_rows;
    EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) {
      return grouped_linear(dispatch_rows(in[0], p), in[1], Tensor(), p);
    }, {x, w})) << image_rows;
  }
}
