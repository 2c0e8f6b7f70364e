// LayerNorm on the CPU: values against loops written here, gradients against finite
// differences, and the error messages of bad calls.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/ops/layernorm.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;
using vimoe::testing::uniform;

namespace {

// LayerNorm of each row of a row-major [rows, cols] array, from the definition, in double.
// w and b empty mean no scale / no shift.
std::vector<double> loop_layer_norm(const std::vector<double>& x, const std::vector<double>& w,
                                    const std::vector<double>& b, int64_t rows, int64_t cols,
                                    double eps) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += x[r * cols + c] / cols;
    for (int64_t c = 0; c < cols; ++c) var += std::pow(x[r * cols + c] - mean, 2) / cols;
    for (int64_t c = 0; c < cols; ++c) {
      double v = (x[r * cols + c] - mean) / std::sqrt(var + eps);
      if (!w.empty()) v *= w[c];
      if (!b.empty()) v += b[c];
      y[r * cols + c] = v;
    }
  }
  return y;
}

struct LoopGrads {
  std::vector<double> dx, dw, db;
};

// Gradients through the explicit Jacobian of xhat = (x - mean) * rstd, a different route from
// the engine's closed form: d xhat_j / d x_i = rstd * (delta_ij - 1/n - xhat_i * xhat_j / n).
LoopGrads loop_layer_norm_grads(const std::vector<double>& x, const std::vector<double>& w,
                                const std::vector<double>& dy, int64_t rows, int64_t cols,
                                double eps) {
  LoopGrads g{std::vector<double>(x.size()), std::vector<double>(cols), std::vector<double>(cols)};
  const double n = static_cast<double>(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = &x[r * cols];
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += xr[c] / n;
    for (int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean) / n;
    const double rstd = 1 / std::sqrt(var + eps);
    std::vector<double> xhat(cols);
    for (int64_t c = 0; c < cols; ++c) xhat[c] = (xr[c] - mean) * rstd;
    for (int64_t i = 0; i < cols; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const double jac = rstd * ((i == j ? 1.0 : 0.0) - 1 / n - xhat[i] * xhat[j] / n);
        acc += dy[r * cols + j] * (w.empty() ? 1.0 : w[j]) * jac;
      }
      g.dx[r * cols + i] = acc;
      g.dw[i] += dy[r * cols + i] * xhat[i];
      g.db[i] += dy[r * cols + i];
    }
  }
  return g;
}

Tensor from(const std::vector<double>& v, const Shape& shape, DType dtype = DType::F64) {
  return Tensor::from_vector(v, shape).to(dtype);
}

}  // namespace

TEST(LayerNormCpu, HandCheckedRow) {
  // mean 2.5, biased variance 1.25: xhat = (x - 2.5) / sqrt(1.25) = +-1.3416408, +-0.4472136.
  const Tensor x = from({1, 2, 3, 4}, {1, 4});
  const Tensor w = from({1, 2, 0.5, -1}, {4}), b = from({0, 1, 0, 2}, {4});
  const Tensor y = layer_norm(x, w, b, 0.0);
  EXPECT_TRUE(all_close(y, from({-1.3416407865, 0.1055728090, 0.2236067977, 0.6583592135}, {1, 4}),
                        1e-9, 0));
  EXPECT_TRUE(all_close(layer_norm(x, {}, {}, 0.0),
                        from({-1.3416407865, -0.4472135955, 0.4472135955, 1.3416407865}, {1, 4}),
                        1e-9, 0));
}

TEST(LayerNormCpu, HandCheckedBackward) {
  // dy = e0, w = 1: dx = rstd * (e0 - 1/4 - xhat * xhat_0 / 4)
  //                    = 0.8944272 * [0.3, -0.4, -0.1, 0.2];
  // dweight = dy * xhat = [xhat_0, 0, 0, 0]; dbias = dy.
  Tensor x = from({1, 2, 3, 4}, {1, 4}), w = from({1, 1, 1, 1}, {4}), b = from({0, 0, 0, 0}, {4});
  for (Tensor* t : {&x, &w, &b}) t->set_requires_grad(true);
  layer_norm(x, w, b, 0.0).backward(from({1, 0, 0, 0}, {1, 4}));
  EXPECT_TRUE(all_close(
      x.grad(), from({0.2683281573, -0.3577708764, -0.0894427191, 0.1788854382}, {1, 4}), 1e-9, 0));
  EXPECT_TRUE(all_close(w.grad(), from({-1.3416407865, 0, 0, 0}, {4}), 1e-9, 0));
  EXPECT_TRUE(all_close(b.grad(), from({1, 0, 0, 0}, {4}), 1e-12, 0));
}

TEST(LayerNormCpu, EpsIsAddedToTheVariance) {
  // Row [0, 2]: variance 1, so eps = 3 gives rstd = 1/2 and y = [-0.5, 0.5].
  EXPECT_TRUE(all_close(layer_norm(from({0, 2}, {1, 2}), {}, {}, 3.0), from({-0.5, 0.5}, {1, 2}),
                        1e-12, 0));
  // A constant row has zero variance: eps keeps it finite and the output is the bias.
  const Tensor y = layer_norm(from({5, 5, 5}, {1, 3}, DType::F32), {},
                              from({0.5, -1, 2}, {3}, DType::F32), 1e-5);
  EXPECT_TRUE(all_close(y, from({0.5, -1, 2}, {1, 3}), 0, 0));
}

TEST(LayerNormCpu, MatchesLoopsOn3DInput) {
  const Shape shape{2, 3, 7};
  for (DType dt : {DType::F64, DType::F32}) {
    const Tensor x = uniform(shape, 1, -2, 3, dt), w = uniform({7}, 2, 0.5, 1.5, dt),
                 b = uniform({7}, 3, -1, 1, dt);
    const std::vector<double> want = loop_layer_norm(x.to_vector<double>(), w.to_vector<double>(),
                                                     b.to_vector<double>(), 6, 7, 1e-5);
    const Tensor y = layer_norm(x, w, b, 1e-5);
    EXPECT_EQ(y.shape(), shape);
    EXPECT_EQ(y.dtype(), dt);
    // f64: rounding only; f32: one rounding of each output (|y| < 5) plus f32 inputs.
    const double tol = dt == DType::F64 ? 1e-12 : 2e-6;
    EXPECT_TRUE(all_close(y, from(want, shape), tol, tol)) << dtype_name(dt);
  }
}

TEST(LayerNormCpu, WithoutWeightOrBias) {
  const Tensor x = uniform({4, 5}, 4, -1, 1, DType::F64), w = uniform({5}, 5, -2, 2, DType::F64),
               b = uniform({5}, 6, -2, 2, DType::F64);
  const std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(),
                            bv = b.to_vector<double>();
  EXPECT_TRUE(all_close(layer_norm(x, {}, {}, 1e-6),
                        from(loop_layer_norm(xv, {}, {}, 4, 5, 1e-6), {4, 5}), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(layer_norm(x, w, {}, 1e-6),
                        from(loop_layer_norm(xv, wv, {}, 4, 5, 1e-6), {4, 5}), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(layer_norm(x, {}, b, 1e-6),
                        from(loop_layer_norm(xv, {}, bv, 4, 5, 1e-6), {4, 5}), 1e-12, 1e-12));
}

TEST(LayerNormCpu, NonContiguousInputs) {
  const Tensor base = uniform({6, 5}, 7, -1, 2, DType::F64);
  const Tensor w = uniform({6}, 8, 0.5, 1.5, DType::F64), b = uniform({6}, 9, -1, 1, DType::F64);
  // A transposed view: rows of x are columns of base.
  const Tensor xt = base.transpose(0, 1);
  ASSERT_FALSE(xt.is_contiguous());
  EXPECT_TRUE(
      all_close(layer_norm(xt, w, b, 1e-5),
                from(loop_layer_norm(xt.contiguous().to_vector<double>(), w.to_vector<double>(),
                                     b.to_vector<double>(), 5, 6, 1e-5),
                     {5, 6}),
                1e-12, 1e-12));
  // A strided slice of the last dimension, and a strided weight.
  const Tensor xs = base.slice(1, 0, 5, 2);  // [6, 3], stride 2
  const Tensor ws = uniform({6}, 10, 0.5, 1.5, DType::F64).slice(0, 0, 6, 2);
  ASSERT_FALSE(xs.is_contiguous());
  EXPECT_TRUE(all_close(layer_norm(xs, ws, {}, 1e-5),
                        from(loop_layer_norm(xs.contiguous().to_vector<double>(),
                                             ws.to_vector<double>(), {}, 6, 3, 1e-5),
                             {6, 3}),
                        1e-12, 1e-12));
}

TEST(LayerNormCpu, HalfTypesRoundOnce) {
  for (DType dt : {DType::BF16, DType::F16}) {
    const Tensor x = uniform({3, 9}, 11, -2, 2, dt), w = uniform({9}, 12, 0.5, 1.5, dt),
                 b = uniform({9}, 13, -1, 1, dt);
    const Tensor y = layer_norm(x, w, b, 1e-5);
    EXPECT_EQ(y.dtype(), dt);
    const std::vector<double> want = loop_layer_norm(x.to_vector<double>(), w.to_vector<double>(),
                                                     b.to_vector<double>(), 3, 9, 1e-5);
    // The reference rounds its double result once: within half a unit in the last place
    // (at most 2^-8 relative for bf16's 8 significant bits, 2^-11 for f16's 11) of the
    // exact value on the rounded inputs.
    const double rel = dt == DType::BF16 ? 1.0 / 256 : 1.0 / 2048;
    EXPECT_TRUE(all_close(y, from(want, {3, 9}), 1e-6, rel)) << dtype_name(dt);
  }
}

TEST(LayerNormCpu, Gradcheck) {
  const Tensor x = leaf64({3, 5}, 20, -1, 2), w = leaf64({5}, 21, 0.5, 1.5), b = leaf64({5}, 22);
  EXPECT_TRUE(
      grad_ok([](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2], 1e-5); },
              {x, w, b}));
  // No affine; and 3-D x with weight only.
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return layer_norm(in[0], {}, {}, 1e-5); },
                      {leaf64({4, 3}, 23)}));
  EXPECT_TRUE(
      grad_ok([](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], {}, 0.1); },
              {leaf64({2, 2, 4}, 24), leaf64({4}, 25)}));
  // One column: xhat is 0 whatever x is, so dx is 0 and dweight is 0.
  EXPECT_TRUE(
      grad_ok([](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2], 1e-5); },
              {leaf64({3, 1}, 26), leaf64({1}, 27), leaf64({1}, 28)}));
}

TEST(LayerNormCpu, GradcheckOnlyTheParameters) {
  // x without requires_grad: the node still gives dweight and dbias.
  const Tensor x = uniform({4, 6}, 30, -1, 1, DType::F64);
  const Tensor w = leaf64({6}, 31), b = leaf64({6}, 32);
  EXPECT_TRUE(grad_ok(
      [x](const std::vector<Tensor>& in) { return layer_norm(x, in[0], in[1], 1e-5); }, {w, b}));
}

TEST(LayerNormCpu, GradcheckInsideALargerGraph) {
  // x reaches the op through a transpose and a product (a non-contiguous, non-leaf input);
  // the output is transposed back and squared, so the op's node receives a non-contiguous,
  // non-constant gradient.
  const Tensor a = leaf64({5, 3}, 40, -1, 1), s = leaf64({5, 3}, 41, 0.5, 1.5);
  const Tensor w = leaf64({5}, 42, 0.5, 1.5), b = leaf64({5}, 43);
  EXPECT_TRUE(grad_ok(
      [](const std::vector<Tensor>& in) {
        const Tensor x = (in[0] * in[1]).transpose(0, 1);  // [3, 5], strides (1, 3)
        const Tensor y = layer_norm(x, in[2], in[3], 1e-5).transpose(0, 1);
        return y * y + y;
      },
      {a, s, w, b}));
}

TEST(LayerNormCpu, BackwardTakesAnyGradientLayoutAndDtype) {
  for (DType dt : {DType::F32, DType::BF16}) {
    const int64_t rows = 5, cols = 6;
    const Tensor x0 = uniform({rows, cols}, 50, -1, 2, dt), w0 = uniform({cols}, 51, 0.5, 1.5, dt),
                 b0 = uniform({cols}, 52, -1, 1, dt);
    Tensor x = x0.detach(), w = w0.detach(), b = b0.detach();
    for (Tensor* t : {&x, &w, &b}) t->set_requires_grad(true);
    // The gradient is handed over transposed (non-contiguous) and in f64.
    const Tensor gt = uniform({cols, rows}, 53, -1, 1, DType::F64);
    layer_norm(x, w, b, 1e-5).backward(gt.transpose(0, 1));
    // The op rounds the incoming gradient to x's dtype; the loops start from those values.
    const std::vector<double> dy = gt.transpose(0, 1).contiguous().to(dt).to_vector<double>();
    const LoopGrads want =
        loop_layer_norm_grads(x0.to_vector<double>(), w0.to_vector<double>(), dy, rows, cols, 1e-5);
    // f32: f32 statistics and one rounding per value; bf16: one rounding, at most 2^-8
    // relative (abs covers results that cancel to near zero).
    const double rel = dt == DType::F32 ? 1e-5 : 1e-2;
    const double abs = dt == DType::F32 ? 1e-5 : 1e-3;
    EXPECT_TRUE(all_close(x.grad(), from(want.dx, {rows, cols}), abs, rel)) << dtype_name(dt);
    EXPECT_TRUE(all_close(w.grad(), from(want.dw, {cols}), abs, rel)) << dtype_name(dt);
    EXPECT_TRUE(all_close(b.grad(), from(want.db, {cols}), abs, rel)) << dtype_name(dt);
  }
}

TEST(LayerNormCpu, NoRows) {
  Tensor x = Tensor::zeros({0, 4}), w = Tensor::ones({4}), b = Tensor::zeros({4});
  for (Tensor* t : {&x, &w, &b}) t->set_requires_grad(true);
  const Tensor y = layer_norm(x, w, b, 1e-5);
  EXPECT_EQ(y.shape(), (Shape{0, 4}));
  y.backward(Tensor::zeros({0, 4}));
  EXPECT_TRUE(all_close(w.grad(), Tensor::zeros({4}), 0, 0));
  EXPECT_TRUE(all_close(b.grad(), Tensor::zeros({4}), 0, 0));
  EXPECT_EQ(x.grad().shape(), (Shape{0, 4}));
}

TEST(LayerNormCpu, BadInputsNameTheOpAndShapes) {
  const Tensor x = Tensor::zeros({2, 4}), w = Tensor::ones({4});
  EXPECT_VIMOE_ERROR(layer_norm(x, Tensor::ones({5}), {}, 1e-5), "layer_norm", "weight", "[4]",
                     "[5]", "[2, 4]");
  EXPECT_VIMOE_ERROR(layer_norm(x, w, Tensor::zeros({2, 4}), 1e-5), "layer_norm", "bias", "[4]",
                     "[2, 4]");
  EXPECT_VIMOE_ERROR(layer_norm(x, Tensor::ones({4}, DType::F64), {}, 1e-5), "layer_norm", "weight",
                     "f64", "f32", "[2, 4]");
  EXPECT_VIMOE_ERROR(layer_norm(x, w, Tensor::zeros({4}, DType::BF16), 1e-5), "layer_norm", "bias",
                     "bf16", "f32");
  EXPECT_VIMOE_ERROR(layer_norm(Tensor::zeros({2, 4}, DType::I32), {}, {}, 1e-5), "layer_norm",
                     "i32", "[2, 4]");
  EXPECT_VIMOE_ERROR(layer_norm(Tensor::scalar(1.0), {}, {}, 1e-5), "layer_norm", "[]");
  EXPECT_VIMOE_ERROR(layer_norm(Tensor::zeros({3, 0}), {}, {}, 1e-5), "layer_norm", "[3, 0]");
  EXPECT_VIMOE_ERROR(layer_norm(x, w, {}, -1.0), "layer_norm", "eps", "[2, 4]");
  EXPECT_VIMOE_ERROR(layer_norm({}, w, {}, 1e-5), "layer_norm", "x");
}
