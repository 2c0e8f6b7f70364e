// cross_entropy on the CPU: values against a loop over rows, label smoothing, ignored rows,
// gradients by finite differences, and bad targets and shapes.
#include <cmath>

#include "engine/ops/loss.h"
#include "tests/test_util.h"

namespace vimoe {
namespace {

using testing::all_close;
using testing::grad_ok;
using testing::leaf64;
using testing::uniform;

// torch.nn.functional.cross_entropy(x, t, label_smoothing=eps, ignore_index=ignore) by its
// definition: -sum_c q_c log p_c with q = (1 - eps) onehot(t) + eps / C, averaged over the
// rows whose target is not ignored.
double ref_cross_entropy(const std::vector<double>& x, const std::vector<int64_t>& t, int64_t classes,
                         double eps, int64_t ignore) {
  double total = 0;
  int64_t count = 0;
  for (size_t r = 0; r < t.size(); ++r) {
    if (t[r] == ignore) continue;
    double m = -INFINITY;
    for (int64_t c = 0; c < classes; ++c) m = std::max(m, x[r * classes + c]);
    double s = 0;
    for (int64_t c = 0; c < classes; ++c) s += std::exp(x[r * classes + c] - m);
    for (int64_t c = 0; c < classes; ++c) {
      const double log_p = x[r * classes + c] - m - std::log(s);
      const double q = (c == t[r] ? 1 - eps : 0) + eps / static_cast<double>(classes);
      total -= q * log_p;
    }
    ++count;
  }
  return total / static_cast<double>(count);
}

TEST(CrossEntropy, MatchesDefinition) {
  const int64_t n = 6, c = 7;
  const Tensor x = uniform({n, c}, 1, -3, 3, DType::F64);
  const std::vector<int64_t> t{3, 0, 6, -100, 2, 6};
  const Tensor target = Tensor::from_vector(t, {n});
  for (double eps : {0.0, 0.1, 1.0}) {
    const Tensor loss = cross_entropy(x, target, eps);
    EXPECT_EQ(loss.dim(), 0);
    EXPECT_EQ(loss.dtype(), DType::F64);
    EXPECT_NEAR(loss.item<double>(), ref_cross_entropy(x.to_vector<double>(), t, c, eps, -100), 1e-12)
        << "eps " << eps;
  }
  // f32 logits: f32 result, same value to f32 precision; a custom ignore_index (a class).
  const std::vector<int64_t> t6{3, 0, 6, 1, 2, 6};
  const Tensor loss = cross_entropy(x.to(DType::F32), Tensor::from_vector(t6, {n}), 0.25, 6);
  EXPECT_EQ(loss.dtype(), DType::F32);
  EXPECT_NEAR(loss.item<double>(), ref_cross_entropy(x.to(DType::F32).to_vector<double>(), t6, c, 0.25, 6), 1e-5);
}

TEST(CrossEntropy, NonContiguousLogits) {
  const Tensor base = uniform({5, 4}, 2, -2, 2, DType::F64);
  const Tensor x = base.t();  // [4, 5]
  const std::vector<int64_t> t{4, 0, 1, 3};
  EXPECT_NEAR(cross_entropy(x, Tensor::from_vector(t, {4})).item<double>(),
              ref_cross_entropy(x.contiguous().to_vector<double>(), t, 5, 0, -100), 1e-12);
}

TEST(CrossEntropy, LargeLogitsStayFinite) {
  const Tensor x = Tensor::from_vector<float>({1000, -1000, 999, /**/ -1000, -1000, -999}, {2, 3});
  const Tensor t = Tensor::from_vector<int64_t>({2, 2}, {2});
  // Row 0: lse = 1000 + log(1 + e^-1), loss = lse - 999; row 1: lse = -999 + log(1 + 2e^-1), loss = lse + 999.
  const double e = std::exp(-1.0);
  const double want = ((1 + std::log(1 + e)) + std::log(1 + 2 * e)) / 2;
  EXPECT_NEAR(cross_entropy(x, t).item<double>(), want, 1e-4);
}

TEST(CrossEntropy, Gradcheck) {
  const Tensor target = Tensor::from_vector<int64_t>({2, -100, 0, 4, 2}, {5});
  for (double eps : {0.0, 0.2})
    EXPECT_TRUE(grad_ok([&](const auto& in) { return cross_entropy(in[0], target, eps); },
                        {leaf64({5, 5}, 3, -2, 2)}))
        << "eps " << eps;
  // Transposed logits, smoothing, and an ignore_index that is a valid class.
  const Tensor t2 = Tensor::from_vector<int64_t>({1, 3, 0}, {3});
  EXPECT_TRUE(grad_ok([&](const auto& in) { return cross_entropy(in[0].t(), t2, 0.3, 3); },
                      {leaf64({4, 3}, 4, -2, 2)}));
}

TEST(CrossEntropy, GradientIsSoftmaxMinusSmoothedTarget) {
  Tensor x = Tensor::from_vector<double>({0, 0, 0, 0, /**/ 1, 2, 3, 4}, {2, 4});
  x.set_requires_grad(true);
  const Tensor t = Tensor::from_vector<int64_t>({1, -100}, {2});
  cross_entropy(x, t, 0.2).backward(Tensor::scalar(3.0, DType::F64));
  // One counted row: 3 * (0.25 - 0.8 [c == 1] - 0.05); the ignored row gets nothing.
  EXPECT_TRUE(all_close(x.grad(), Tensor::from_vector<double>({0.6, -1.8, 0.6, 0.6, 0, 0, 0, 0}, {2, 4}),
                        1e-12, 1e-12));
}

// Every row ignored: the mean over no rows is reported as 0 with a zero gradient, where
// PyTorch returns NaN (0 / 0). A batch made only of padding then leaves training untouched.
TEST(CrossEntropy, AllIgnoredGivesZero) {
  Tensor x = uniform({3, 4}, 5, -1, 1, DType::F64);
  x.set_requires_grad(true);
  const Tensor loss = cross_entropy(x, Tensor::from_vector<int64_t>({-100, -100, -100}, {3}), 0.1);
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  EXPECT_TRUE(all_close(x.grad(), Tensor::zeros({3, 4}, DType::F64), 0, 0));
  EXPECT_EQ(cross_entropy(Tensor::zeros({0, 4}), Tensor::zeros({0}, DType::I64)).item<double>(), 0.0);
}

TEST(CrossEntropy, HalfPrecisionLogits) {
  const Tensor x = uniform({4, 9}, 6, -4, 4);
  const std::vector<int64_t> t{8, 0, 3, 3};
  const Tensor xb = x.to(DType::BF16);
  const Tensor loss = cross_entropy(xb, Tensor::from_vector(t, {4}), 0.1);
  EXPECT_EQ(loss.dtype(), DType::BF16);
  EXPECT_EQ(loss.dim(), 0);
  // Exact on the rounded inputs, then rounded once to bf16.
  const double want = ref_cross_entropy(xb.to_vector<double>(), t, 9, 0.1, -100);
  EXPECT_NEAR(loss.item<double>(), want, std::fabs(want) / 256);
}

TEST(CrossEntropy, TargetOutOfRange) {
  const Tensor x = uniform({4, 5}, 7);
  EXPECT_VIMOE_ERROR(cross_entropy(x, Tensor::from_vector<int64_t>({0, 2, 7, 9}, {4})), "cross_entropy",
                     "target 7 at row 2", "5 classes");
  EXPECT_VIMOE_ERROR(cross_entropy(x, Tensor::from_vector<int64_t>({0, -1, 1, 1}, {4})), "cross_entropy",
                     "target -1 at row 1");
  // -100 is ignored by default but not once ignore_index is changed.
  EXPECT_VIMOE_ERROR(cross_entropy(x, Tensor::from_vector<int64_t>({-100, 0, 1, 1}, {4}), 0, 4),
                     "target -100 at row 0");
}

TEST(CrossEntropy, BadShapesAndTypes) {
  const Tensor x = uniform({4, 5}, 8);
  const Tensor t = Tensor::from_vector<int64_t>({0, 1, 2, 3}, {4});
  EXPECT_VIMOE_ERROR(cross_entropy(uniform({20}, 9), t), "cross_entropy", "[N, C]", "[20]");
  EXPECT_VIMOE_ERROR(cross_entropy(x, Tensor::from_vector<int64_t>({0, 1, 2}, {3})), "cross_entropy",
                     "i64 [4]", "[3] i64");
  EXPECT_VIMOE_ERROR(cross_entropy(x, t.to(DType::I32)), "cross_entropy", "[4] i32");
  EXPECT_VIMOE_ERROR(cross_entropy(x, t.reshape({2, 2})), "cross_entropy", "[2, 2]");
  EXPECT_VIMOE_ERROR(cross_entropy(x.to(DType::I64), t), "cross_entropy", "floating");
  EXPECT_VIMOE_ERROR(cross_entropy(x, t, 1.5), "cross_entropy", "label_smoothing", "1.5");
  EXPECT_VIMOE_ERROR(cross_entropy(x, t, -0.1), "cross_entropy", "label_smoothing");
  EXPECT_VIMOE_ERROR(cross_entropy(Tensor::zeros({4, 0}), t), "cross_entropy", "at least one class");
}

}  // namespace
}  // namespace vimoe
