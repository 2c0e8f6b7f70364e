// GELU and bias + GELU on the CPU: values against hand-computed numbers and loops written
// here, gradients against finite differences, and the error messages of bad calls.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/ops/gelu.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;
using vimoe::testing::uniform;

namespace {

double loop_gelu(double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }
// d/dv of v * Phi(v): Phi(v) + v * phi(v).
double loop_gelu_grad(double v) {
  const double pi = 3.14159265358979323846;
  return 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-v * v / 2) / std::sqrt(2 * pi);
}

Tensor from(const std::vector<double>& v, const Shape& shape, DType dtype = DType::F64) {
  return Tensor::from_vector(v, shape).to(dtype);
}

// gelu(x[r, c] + b[c]) for a row-major x of `cols` columns (b empty: no bias).
std::vector<double> loop_bias_gelu(const std::vector<double>& x, const std::vector<double>& b,
                                   int64_t cols) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = loop_gelu(x[i] + (b.empty() ? 0.0 : b[i % cols]));
  return y;
}

}  // namespace

TEST(GeluCpu, HandCheckedValues) {
  // x * Phi(x) with Phi from erf; the tanh approximation would give 0.8411920 at 1 and
  // -0.0036374 at -3, far outside these tolerances.
  const Tensor x = from({0, 1, -1, 2, -3, 0.5}, {6});
  EXPECT_TRUE(all_close(gelu(x),
                        from({0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416,
                              -0.00404969409489031, 0.34573123063700656},
                             {6}),
                        1e-14, 1e-12));
}

TEST(GeluCpu, HandCheckedDerivative) {
  Tensor x = from({0, 1, -1, 2, -3, 0.5}, {6});
  x.set_requires_grad(true);
  gelu(x).backward(Tensor::ones({6}, DType::F64));
  EXPECT_TRUE(all_close(x.grad(),
                        from({0.5, 1.0833154705876864, -0.08331547058768629, 1.085231801078197,
                              -0.011945647204183918, 0.8674951246561629},
                             {6}),
                        1e-14, 1e-12));
}

TEST(GeluCpu, MatchesLoopsOn3DInput) {
  for (DType dt : {DType::F64, DType::F32}) {
    const Tensor x = uniform({2, 3, 5}, 1, -4, 4, dt), b = uniform({5}, 2, -1, 1, dt);
    const std::vector<double> xv = x.to_vector<double>(), bv = b.to_vector<double>();
    // f64: a few ulp of erf; f32: erff and the f32 arithmetic, a few f32 ulp.
    const double tol = dt == DType::F64 ? 1e-14 : 1e-6;
    Tensor y = gelu(x);
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_TRUE(all_close(y, from(loop_bias_gelu(xv, {}, 5), {2, 3, 5}), tol, tol))
        << dtype_name(dt);
    y = bias_gelu(x, b);
    EXPECT_EQ(y.shape(), (Shape{2, 3, 5}));
    EXPECT_TRUE(all_close(y, from(loop_bias_gelu(xv, bv, 5), {2, 3, 5}), tol, tol))
        << dtype_name(dt);
  }
  // A 0-dimensional x is one element.
  EXPECT_TRUE(all_close(gelu(Tensor::scalar(1.0, DType::F64)),
                        Tensor::scalar(0.8413447460685429, DType::F64), 1e-14, 0));
}

TEST(GeluCpu, HalfTypesRoundOnce) {
  for (DType dt : {DType::BF16, DType::F16}) {
    const Tensor x = uniform({4, 6}, 3, -3, 3, dt), b = uniform({6}, 4, -1, 1, dt);
    // One rounding of an f32 result: at most 2^-8 (bf16) or 2^-11 (f16) relative, plus
    // f32 error far below that.
    const double rel = dt == DType::BF16 ? 1.0 / 256 : 1.0 / 2048;
    EXPECT_TRUE(all_close(
        bias_gelu(x, b),
        from(loop_bias_gelu(x.to_vector<double>(), b.to_vector<double>(), 6), {4, 6}), 1e-6, rel))
        << dtype_name(dt);
  }
}

TEST(GeluCpu, BiasIsAddedBeforeRounding) {
  // 1 + 2^-9 is not a bf16 value (it would round to 1), but the fused op keeps it:
  // gelu(1.001953125) = 0.843461 rounds to 0.84375, while gelu(1) = 0.841345 rounds to 0.83984375.
  const Tensor x = from({1.0}, {1, 1}, DType::BF16), b = from({0.001953125}, {1}, DType::BF16);
  EXPECT_EQ(bias_gelu(x, b).item<double>(), 0.84375);
  EXPECT_EQ(gelu(x).item<double>(), 0.83984375);
}

TEST(GeluCpu, NonContiguousInput) {
  const Tensor base = uniform({5, 4}, 5, -2, 2, DType::F64), b = uniform({5}, 6, -1, 1, DType::F64);
  const Tensor xt = base.transpose(0, 1);  // [4, 5]
  ASSERT_FALSE(xt.is_contiguous());
  const std::vector<double> xv = xt.contiguous().to_vector<double>();
  EXPECT_TRUE(all_close(bias_gelu(xt, b),
                        from(loop_bias_gelu(xv, b.to_vector<double>(), 5), {4, 5}), 1e-14, 1e-14));
  EXPECT_TRUE(all_close(gelu(xt), from(loop_bias_gelu(xv, {}, 5), {4, 5}), 1e-14, 1e-14));
}

TEST(GeluCpu, Gradcheck) {
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return gelu(in[0]); },
                      {leaf64({3, 4}, 10, -3, 3)}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return bias_gelu(in[0], in[1]); },
                      {leaf64({2, 3, 4}, 11, -3, 3), leaf64({4}, 12)}));
  // Only the bias.
  const Tensor x = uniform({5, 3}, 13, -3, 3, DType::F64);
  EXPECT_TRUE(grad_ok([x](const std::vector<Tensor>& in) { return bias_gelu(x, in[0]); },
                      {leaf64({3}, 14)}));
}

TEST(GeluCpu, GradcheckInsideALargerGraph) {
  // x reaches the op transposed (non-contiguous, non-leaf) and the output is transposed back
  // and squared, so the node receives a non-contiguous, non-constant gradient.
  EXPECT_TRUE(grad_ok(
      [](const std::vector<Tensor>& in) {
        const Tensor y = bias_gelu((in[0] * in[1]).transpose(0, 1), in[2]).transpose(0, 1);
        return y * y + gelu(in[0]);
      },
      {leaf64({4, 3}, 20, -2, 2), leaf64({4, 3}, 21, 0.5, 1.5), leaf64({4}, 22)}));
}

TEST(GeluCpu, DbiasIsTheRowSumOfDx) {
  const int64_t rows = 7, cols = 5;
  const Tensor x0 = uniform({rows, cols}, 30, -3, 3), b0 = uniform({cols}, 31);
  Tensor x = x0.detach(), b = b0.detach();
  x.set_requires_grad(true);
  b.set_requires_grad(true);
  // Handed over transposed (non-contiguous) and as f64.
  const Tensor gt = uniform({cols, rows}, 32, -1, 1, DType::F64);
  bias_gelu(x, b).backward(gt.transpose(0, 1));
  const std::vector<double> xv = x0.to_vector<double>(), bv = b0.to_vector<double>();
  const std::vector<double> dy = gt.transpose(0, 1).contiguous().to(DType::F32).to_vector<double>();
  std::vector<double> dx(rows * cols), db(cols, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      dx[r * cols + c] = dy[r * cols + c] * loop_gelu_grad(xv[r * cols + c] + bv[c]);
      db[c] += dx[r * cols + c];
    }
  // f32 arithmetic on both (a few ulp), dbias summing seven of them.
  EXPECT_TRUE(all_close(x.grad(), from(dx, {rows, cols}), 1e-6, 1e-5));
  EXPECT_TRUE(all_close(b.grad(), from(db, {cols}), 1e-5, 1e-5));
}

TEST(GeluCpu, NoRows) {
  Tensor x = Tensor::zeros({0, 4}), b = Tensor::zeros({4});
  x.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor y = bias_gelu(x, b);
  EXPECT_EQ(y.shape(), (Shape{0, 4}));
  y.backward(Tensor::zeros({0, 4}));
  EXPECT_TRUE(all_close(b.grad(), Tensor::zeros({4}), 0, 0));
}

TEST(GeluCpu, BadInputsNameTheOpAndShapes) {
  const Tensor x = Tensor::zeros({2, 5});
  EXPECT_VIMOE_ERROR(bias_gelu(x, Tensor::zeros({4})), "bias_gelu", "bias", "[5]", "[4]", "[2, 5]");
  EXPECT_VIMOE_ERROR(bias_gelu(x, Tensor::zeros({1, 5})), "bias_gelu", "[1, 5]", "[2, 5]");
  EXPECT_VIMOE_ERROR(bias_gelu(x, Tensor::zeros({5}, DType::F64)), "bias_gelu", "f64", "f32",
                     "[2, 5]");
  EXPECT_VIMOE_ERROR(bias_gelu(Tensor::scalar(1.0), Tensor::zeros({1})), "bias_gelu", "[]");
  EXPECT_VIMOE_ERROR(bias_gelu(x, {}), "bias_gelu", "bias");
  EXPECT_VIMOE_ERROR(gelu(Tensor::zeros({2, 5}, DType::I64)), "gelu", "i64", "[2, 5]");
  EXPECT_VIMOE_ERROR(bias_gelu(Tensor::zeros({2, 5}, DType::I32), Tensor::zeros({5}, DType::I32)),
                     "bias_gelu", "i32", "[2, 5]");
}
