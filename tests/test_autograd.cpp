#include <gtest/gtest.h>

#include "tests/test_util.h"

using namespace vimoe;

namespace {
Tensor param(std::vector<double> v) {
  const Shape shape{static_cast<int64_t>(v.size())};
  Tensor t = Tensor::from_vector(v, shape);
  t.set_requires_grad(true);
  return t;
}
std::vector<double> grad_of(const Tensor& t) { return t.grad().to_vector<double>(); }
}  // namespace

TEST(Autograd, TensorUsedTwiceGetsBothContributions) {
  const Tensor x = param({2, 3});
  // y = x*x + x  ->  dy/dx = 2x + 1
  sum(x * x + x).backward();
  EXPECT_EQ(grad_of(x), (std::vector<double>{5, 7}));
}

TEST(Autograd, DiamondGraph) {
  const Tensor x = param({1, 2});
  const Tensor a = x * 3.0, b = x * x;
  const Tensor c = a * b;  // 3x^3 -> 9x^2
  sum(c + a).backward();  // + 3
  EXPECT_EQ(grad_of(x), (std::vector<double>{12, 39}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  const Tensor x = param({1, -1});
  sum(x * 2.0).backward();
  sum(x * 3.0).backward();
  EXPECT_EQ(grad_of(x), (std::vector<double>{5, 5}));
  Tensor(x).zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, GradIsIndependentOfTheIncomingGradient) {
  // add's backward hands the same gradient to both inputs; modifying one leaf's .grad in
  // place must not change the other's.
  const Tensor a = param({1}), b = param({2});
  (a + b).backward(Tensor::ones({1}, DType::F64));
  NoGradGuard g;
  a.grad().fill_(100);
  EXPECT_EQ(grad_of(b), (std::vector<double>{1}));
}

TEST(Autograd, GraphIsFreedAfterBackwardUnlessRetained) {
  const Tensor x = param({1, 2});
  const Tensor y = sum(x * x);
  y.backward({}, /*retain_graph=*/true);
  y.backward();
  EXPECT_EQ(grad_of(x), (std::vector<double>{4, 8}));
  EXPECT_VIMOE_ERROR(y.backward(), "backward", "retain_graph");
}

TEST(Autograd, NoGradGuardAndDetach) {
  const Tensor x = param({1, 2});
  {
    NoGradGuard g;
    EXPECT_FALSE((x * 2.0).requires_grad());
  }
  EXPECT_TRUE((x * 2.0).requires_grad());
  const Tensor d = (x * 2.0).detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  // A detached branch contributes nothing.
  sum(x * d).backward();
  EXPECT_EQ(grad_of(x), (std::vector<double>{2, 4}));
}

TEST(Autograd, NonScalarNeedsAGradient) {
  const Tensor x = param({1, 2});
  const Tensor y = x * 2.0;
  EXPECT_VIMOE_ERROR(y.backward(), "backward", "non-scalar", "[2]");
  EXPECT_VIMOE_ERROR(y.backward(Tensor::ones({3}, DType::F64)), "backward", "[3]", "[2]");
  y.backward(Tensor::from_vector<double>({1, 10}, {2}));
  EXPECT_EQ(grad_of(x), (std::vector<double>{2, 20}));
  EXPECT_VIMOE_ERROR(Tensor::ones({1}).backward(), "does not require grad");
  Tensor non_leaf = y;
  EXPECT_VIMOE_ERROR(non_leaf.set_requires_grad(false), "leaf");
}

TEST(Autograd, BranchWithoutGradientDoesNotStallOthers) {
  // `a` feeds both a path whose gradient is dropped (into an integer cast) and a real one.
  const Tensor x = param({1, 2});
  const Tensor a = x * 2.0;
  const Tensor dropped = a.to(DType::I32).to(DType::F64);  // integer cast cuts the graph
  EXPECT_FALSE(dropped.requires_grad());
  sum(a * 3.0 + dropped).backward();
  EXPECT_EQ(grad_of(x), (std::vector<double>{6, 6}));
}

TEST(Autograd, LongChainsDoNotOverflowTheStack) {
  const Tensor x = param({1});
  Tensor y = x;
  for (int i = 0; i < 200000; ++i) y = y + 1.0;
  y.backward(Tensor::ones({1}, DType::F64));
  EXPECT_EQ(grad_of(x), (std::vector<double>{1}));
}

TEST(Autograd, GradientDtypeMatchesTheLeaf) {
  Tensor w = Tensor::ones({3}, DType::BF16);
  w.set_requires_grad(true);
  sum(w.to(DType::F32) * 2.0).backward();
  EXPECT_EQ(w.grad().dtype(), DType::BF16);
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{2, 2, 2}));
}

namespace {
// A two-output op written with record_multi: (2x, x^2).
std::pair<Tensor, Tensor> twice_and_square(const Tensor& x) {
  Tensor a, b;
  {
    NoGradGuard g;
    a = x * 2.0;
    b = x * x;
  }
  autograd::record_multi("twice_and_square", {&a, &b}, {x}, [x](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0] * 2.0 + g[1] * x * 2.0};
  });
  return {a, b};
}
}  // namespace

TEST(Autograd, MultiOutputNodes) {
  const Tensor x = param({1, 3});
  auto [a, b] = twice_and_square(x);
  EXPECT_EQ(a.grad_fn(), b.grad_fn());
  sum(b).backward();  // only the second output: d/dx = 2x (the first output's gradient is zero)
  EXPECT_EQ(grad_of(x), (std::vector<double>{2, 6}));

  const Tensor y = param({1, 3});
  auto [c, d] = twice_and_square(y);
  sum(c * 5.0 + d + c).backward();  // 12 + 2y
  EXPECT_EQ(grad_of(y), (std::vector<double>{14, 18}));
  EXPECT_TRUE(vimoe::testing::grad_ok(
      [](const std::vector<Tensor>& in) {
        auto [p, q] = twice_and_square(in[0]);
        return p * q + q;
      },
      {vimoe::testing::leaf64({4}, 3)}));
}

// gradcheck's finite differences stay accurate when the op has many outputs of size ~10
// (log_softmax over 771 values in [-8, 8)): the outputs are differenced before they are
// summed, so the rounding of a large total does not reach the numeric gradient.
TEST(Gradcheck, ManyLargeOutputsKeepTheNumericGradientAccurate) {
  const Tensor x = (rand({3, 257}, 7, TensorOptions(DType::F64)) * 16.0 - 8.0).detach().set_requires_grad(true);
  const GradcheckResult r =
      gradcheck([](const std::vector<Tensor>& a) { return log_softmax(a[0], 1); }, {x}, 1e-6, 1e-6, 1e-4);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_LT(r.max_abs_error, 1e-6);
}

// And it still catches a gradient off by 0.1%: y + (e - e.detach()) with e = 0.001 y has
// y's values but 1.001 times its gradient.
TEST(Gradcheck, ReportsAWrongGradient) {
  const Tensor x = (rand({4, 5}, 8, TensorOptions(DType::F64)) + 0.5).detach().set_requires_grad(true);
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& a) {
        const Tensor y = a[0] * a[0];
        const Tensor e = y * 0.001;
        return y + (e - e.detach());
      },
      {x}, 1e-6, 1e-6, 1e-4);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("input 0 element"), std::string::npos) << r.message;
}
