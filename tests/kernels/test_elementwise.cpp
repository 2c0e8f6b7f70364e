// Elementwise ops on the GPU: what the op-parity rows (tests/op_parity/cases_elementwise.cpp:
// every op, dtype, odd shape and view, forward and backward) do not state. NaN and tie
// semantics of maximum / minimum and of comparisons on hand-picked values, where results
// live, and device-mismatch errors.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/op_parity/op_case.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::parity::compare;
using vimoe::parity::kExact;
using vimoe::testing::uniform;

TEST(ElementwiseCuda, MaximumMinimumTiesAndNaN) {
  VIMOE_REQUIRE_GPU();
  // Ties split the gradient; NaN propagates from either side. The same IEEE comparisons on
  // both sides: exact, NaN meeting NaN.
  const Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, NAN, 0}, {5});
  const Tensor b = Tensor::from_vector(std::vector<float>{2, 2, 2, 1, NAN}, {5});
  const Tensor g = Tensor::from_vector(std::vector<float>{0.5f, -1, 2, 0.25f, 3}, {5});
  for (auto op : {maximum, minimum}) {
    Tensor ha = a.clone(), hb = b.clone(), da = a.cuda().detach(), db = b.cuda().detach();
    for (Tensor* t : {&ha, &hb, &da, &db}) t->set_requires_grad(true);
    const Tensor yh = op(ha, hb), yd = op(da, db);
    ASSERT_TRUE(yd.is_cuda());
    EXPECT_TRUE(compare(yd, yh, kExact, "forward"));
    yh.backward(g);
    yd.backward(g.cuda());
    EXPECT_TRUE(compare(da.grad(), ha.grad(), kExact, "gradient of a"));
    EXPECT_TRUE(compare(db.grad(), hb.grad(), kExact, "gradient of b"));
  }
}

TEST(ElementwiseCuda, ComparisonsOfMixedDtypesAndNaN) {
  VIMOE_REQUIRE_GPU();
  // Mixed dtypes compare after promotion; NaN compares unequal to everything.
  const Tensor a = Tensor::from_vector(std::vector<float>{1, 2.5f, NAN, 3}, {4});
  const Tensor b = Tensor::from_vector(std::vector<int32_t>{1, 2, 2, 3}, {4});
  Tensor (*const ops[])(const Tensor&, const Tensor&) = {eq, ne, lt, le, gt, ge};
  const char* names[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  for (int k = 0; k < 6; ++k) {
    const Tensor d = ops[k](a.cuda(), b.cuda());
    EXPECT_TRUE(d.is_cuda());
    EXPECT_TRUE(compare(d, ops[k](a, b), kExact, names[k]));
  }
}

TEST(ElementwiseCuda, ResultsAreContiguousAndOnTheDevice) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = uniform({3, 257}, 1, -1, 1, DType::F32, Device::cuda());
  for (const Tensor& r : {exp(x.t()), add(x, x.t().t()), where(gt(x, x * 0.5), x, x * 2.0)}) {
    EXPECT_TRUE(r.is_cuda());
    EXPECT_TRUE(r.is_contiguous());
  }
  EXPECT_EQ(lt(x, x).dtype(), DType::U8);
  EXPECT_TRUE(lt(x, x).is_cuda());
}

TEST(ElementwiseCuda, DeviceMismatch) {
  VIMOE_REQUIRE_GPU();
  const Tensor h = Tensor::zeros({2, 3}), d = Tensor::zeros({2, 3}, Device::cuda());
  EXPECT_VIMOE_ERROR(add(h, d), "add", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(maximum(d, h), "maximum", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(pow(h, d), "pow", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(lt(h, d), "lt", "cpu", "cuda");
  const Tensor cond = gt(d, d);
  EXPECT_VIMOE_ERROR(where(cond, h, d), "where", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(where(cond.cpu(), d, d), "where", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(where(cond, d, h), "where", "cpu", "cuda");
}
