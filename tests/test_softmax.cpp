// softmax / log_softmax on the CPU: values against plain loops, rows summing to one, large
// and masked logits, gradients by finite differences, bad input.
#include <cmath>
#include <limits>

#include "engine/ops/reduce.h"
#include "engine/ops/softmax.h"
#include "tests/test_util.h"

namespace vimoe {
namespace {

using testing::all_close;
using testing::grad_ok;
using testing::leaf64;
using testing::uniform;

// softmax (or log_softmax) of a row-major tensor along axis d, by loops in double.
std::vector<double> ref_softmax(const std::vector<double>& v, const Shape& shape, int64_t d, bool log) {
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < static_cast<int64_t>(shape.size()); ++k) {
    if (k < d) outer *= shape[k];
    if (k > d) inner *= shape[k];
  }
  const int64_t n = shape[d];
  std::vector<double> out(v.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t c) { return (o * n + c) * inner + i; };
      double m = -INFINITY;
      for (int64_t c = 0; c < n; ++c) m = std::fmax(m, v[at(c)]);
      double s = 0;
      for (int64_t c = 0; c < n; ++c) s += std::exp(v[at(c)] - m);
      for (int64_t c = 0; c < n; ++c)
        out[at(c)] = log ? v[at(c)] - m - std::log(s) : std::exp(v[at(c)] - m) / s;
    }
  return out;
}

TEST(Softmax, MatchesLoopsOnEveryAxis) {
  const Shape shape{3, 4, 5};
  const Tensor x = uniform(shape, 1, -4, 4, DType::F64);
  const std::vector<double> v = x.to_vector<double>();
  for (int64_t d = 0; d < 3; ++d) {
    EXPECT_TRUE(all_close(softmax(x, d), Tensor::from_vector(ref_softmax(v, shape, d, false), shape), 1e-14, 1e-12))
        << "dim " << d;
    EXPECT_TRUE(all_close(log_softmax(x, d), Tensor::from_vector(ref_softmax(v, shape, d, true), shape), 1e-12, 1e-12))
        << "dim " << d;
  }
  // Negative axes count from the end; f32 inputs give f32 outputs.
  const Tensor xf = x.to(DType::F32);
  const Tensor y = softmax(xf, -1);
  EXPECT_EQ(y.dtype(), DType::F32);
  EXPECT_TRUE(all_close(y, Tensor::from_vector(ref_softmax(v, shape, 2, false), shape), 1e-6, 1e-5));
  EXPECT_TRUE(all_close(log_softmax(xf, -3), Tensor::from_vector(ref_softmax(v, shape, 0, true), shape), 1e-5, 1e-5));
}

TEST(Softmax, PermutedInput) {
  const Tensor base = uniform({4, 3, 5}, 2, -3, 3);
  const Tensor x = base.permute({2, 0, 1});  // [5, 4, 3]
  const std::vector<double> v = x.contiguous().to_vector<double>();
  for (int64_t d = 0; d < 3; ++d) {
    const Tensor y = softmax(x, d);
    EXPECT_EQ(y.shape(), x.shape());
    EXPECT_TRUE(y.is_contiguous());
    EXPECT_TRUE(all_close(y, Tensor::from_vector(ref_softmax(v, x.shape(), d, false), x.shape()), 1e-6, 1e-5));
    EXPECT_TRUE(all_close(log_softmax(x, d), Tensor::from_vector(ref_softmax(v, x.shape(), d, true), x.shape()), 1e-5, 1e-5));
  }
}

TEST(Softmax, RowsSumToOne) {
  const Tensor x = uniform({7, 33, 2}, 3, -20, 20);
  for (int64_t d = 0; d < 3; ++d) {
    const Tensor s = sum(softmax(x, d), {d});
    EXPECT_TRUE(all_close(s, Tensor::ones(s.shape()), 1e-6, 0)) << "dim " << d;
    std::vector<double> p = log_softmax(x, d).to_vector<double>();
    for (double& v : p) v = std::exp(v);
    const Tensor ls = sum(Tensor::from_vector(p, x.shape()), {d});
    EXPECT_TRUE(all_close(ls, Tensor::ones(ls.shape(), DType::F64), 1e-5, 0)) << "dim " << d;
  }
}

TEST(Softmax, LargeLogitsStayFinite) {
  const Tensor x = Tensor::from_vector<float>({1000, 999, -1000, /**/ -1000, -1000, -999}, {2, 3});
  const std::vector<double> y = softmax(x, 1).to_vector<double>();
  const std::vector<double> l = log_softmax(x, 1).to_vector<double>();
  for (double v : y) EXPECT_TRUE(std::isfinite(v));
  for (double v : l) EXPECT_TRUE(std::isfinite(v));
  const double e = std::exp(-1.0), z = 1 + e;  // row 0: [1, e^-1, 0] / z; row 1: [e^-1, e^-1, 1] / (1 + 2e^-1)
  EXPECT_NEAR(y[0], 1 / z, 1e-6);
  EXPECT_NEAR(y[1], e / z, 1e-6);
  EXPECT_EQ(y[2], 0.0);
  EXPECT_NEAR(y[5], 1 / (1 + 2 * e), 1e-6);
  EXPECT_NEAR(l[0], -std::log(z), 1e-5);
  EXPECT_NEAR(l[2], -2000 - std::log(z), 1e-3);
  EXPECT_NEAR(l[5], -std::log(1 + 2 * e), 1e-5);
}

// -inf is how attention masks a position: it gets probability 0 and the rest renormalise.
// A row of only -inf, or one holding NaN, comes out NaN, as in PyTorch.
TEST(Softmax, MaskedAndNaNRows) {
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor x = Tensor::from_vector<float>({-inf, 0, 0, -inf, /**/ -inf, -inf, -inf, -inf,
                                               /**/ 1, std::nanf(""), 2, 3},
                                              {3, 4});
  const std::vector<double> y = softmax(x, 1).to_vector<double>();
  EXPECT_EQ(y[0], 0.0);
  EXPECT_NEAR(y[1], 0.5, 1e-7);
  EXPECT_NEAR(y[2], 0.5, 1e-7);
  EXPECT_EQ(y[3], 0.0);
  for (int c = 4; c < 12; ++c) EXPECT_TRUE(std::isnan(y[c])) << c;
  const std::vector<double> l = log_softmax(x, 1).to_vector<double>();
  EXPECT_EQ(l[0], -inf);
  EXPECT_NEAR(l[1], -std::log(2.0), 1e-6);
  for (int c = 4; c < 12; ++c) EXPECT_TRUE(std::isnan(l[c])) << c;
}

TEST(Softmax, HalfPrecisionComputesInWideType) {
  const Tensor x = uniform({5, 9}, 4, -8, 8);
  for (DType dt : {DType::BF16, DType::F16}) {
    const Tensor xh = x.to(dt);
    const Tensor y = softmax(xh, 1);
    EXPECT_EQ(y.dtype(), dt);
    // The exact softmax of the rounded input, rounded once: within half an ulp of 2^-8.
    const std::vector<double> v = xh.to_vector<double>();
    EXPECT_TRUE(all_close(y, Tensor::from_vector(ref_softmax(v, {5, 9}, 1, false), {5, 9}), 1e-6, 1.0 / 256));
  }
}

TEST(Softmax, LengthOneRowsAndZeroDim) {
  const Tensor x = uniform({4, 1}, 5);
  EXPECT_TRUE(all_close(softmax(x, 1), Tensor::ones({4, 1}), 0, 0));
  EXPECT_TRUE(all_close(log_softmax(x, 1), Tensor::zeros({4, 1}), 0, 0));
  EXPECT_EQ(softmax(Tensor::scalar(3.0), 0).item<double>(), 1.0);
  EXPECT_EQ(softmax(Tensor::zeros({0, 3}), 1).shape(), (Shape{0, 3}));
}

TEST(Softmax, Gradcheck) {
  for (int64_t d : {0, 1, 2, -1}) {
    EXPECT_TRUE(grad_ok([&](const auto& in) { return softmax(in[0], d); }, {leaf64({2, 3, 4}, 10, -2, 2)}))
        << "dim " << d;
    EXPECT_TRUE(grad_ok([&](const auto& in) { return log_softmax(in[0], d); }, {leaf64({2, 3, 4}, 11, -2, 2)}))
        << "dim " << d;
  }
  EXPECT_TRUE(grad_ok([](const auto& in) { return softmax(in[0].permute({1, 0, 2}), 0); },
                      {leaf64({2, 3, 4}, 12, -2, 2)}));
  EXPECT_TRUE(grad_ok([](const auto& in) { return log_softmax(in[0].t(), 1); }, {leaf64({5, 3}, 13, -2, 2)}));
}

TEST(Softmax, BackwardHelpersMatchFormulas) {
  const Tensor x = uniform({3, 6}, 14, -2, 2, DType::F64);
  const Tensor dy = uniform({3, 6}, 15, -1, 1, DType::F64);
  const Tensor y = softmax(x, 1), ly = log_softmax(x, 1);
  const std::vector<double> yv = y.to_vector<double>(), lv = ly.to_vector<double>(),
                            g = dy.to_vector<double>();
  std::vector<double> want(18), want_log(18);
  for (int r = 0; r < 3; ++r) {
    double dot = 0, gs = 0;
    for (int c = 0; c < 6; ++c) {
      dot += g[r * 6 + c] * yv[r * 6 + c];
      gs += g[r * 6 + c];
    }
    for (int c = 0; c < 6; ++c) {
      want[r * 6 + c] = yv[r * 6 + c] * (g[r * 6 + c] - dot);
      want_log[r * 6 + c] = g[r * 6 + c] - std::exp(lv[r * 6 + c]) * gs;
    }
  }
  EXPECT_TRUE(all_close(softmax_backward(dy, y, 1), Tensor::from_vector(want, {3, 6}), 1e-14, 1e-12));
  EXPECT_TRUE(all_close(log_softmax_backward(dy, ly, -1), Tensor::from_vector(want_log, {3, 6}), 1e-14, 1e-12));
}

TEST(Softmax, BadInput) {
  const Tensor x = uniform({2, 3}, 16);
  EXPECT_VIMOE_ERROR(softmax(x, 2), "softmax", "dimension 2");
  EXPECT_VIMOE_ERROR(log_softmax(x, -3), "log_softmax", "dimension -3");
  EXPECT_VIMOE_ERROR(softmax(Tensor::from_vector<int64_t>({1, 2}, {2}), 0), "softmax", "floating", "i64");
  EXPECT_VIMOE_ERROR(softmax(Tensor(), 0), "softmax", "undefined");
  EXPECT_VIMOE_ERROR(softmax_backward(uniform({2, 2}, 17), x, 1), "softmax_backward", "[2, 2]", "[2, 3]");
}

}  // namespace
}  // namespace vimoe
