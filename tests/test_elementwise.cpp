// Elementwise ops on the CPU reference: values on hand-checked cases, broadcasting, type
// promotion, strided views, gradients (finite differences in f64) and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>

#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;
using vimoe::testing::uniform;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor f32(const std::vector<float>& v, const Shape& shape) { return Tensor::from_vector(v, shape); }
Tensor f64(const std::vector<double>& v, const Shape& shape) { return Tensor::from_vector(v, shape); }
Tensor i32(const std::vector<int32_t>& v, const Shape& shape) { return Tensor::from_vector(v, shape); }
Tensor u8(const std::vector<uint8_t>& v, const Shape& shape) { return Tensor::from_vector(v, shape); }

// Every value within `tol` of the expected one (exact by default; NaN matches NaN and an
// infinity itself), and the shape.
::testing::AssertionResult values_are(const Tensor& t, const Shape& shape,
                                      const std::vector<double>& want, double tol = 0) {
  if (t.shape() != shape)
    return ::testing::AssertionFailure() << "shape " << shape_str(t.shape()) << ", want "
                                         << shape_str(shape);
  const std::vector<double> got = t.to_vector<double>();
  for (size_t i = 0; i < want.size(); ++i) {
    const bool same = got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i]));
    if (!same && !(std::fabs(got[i] - want[i]) <= tol))
      return ::testing::AssertionFailure() << "element " << i << ": " << got[i] << ", want "
                                           << want[i];
  }
  return ::testing::AssertionSuccess();
}

const double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

// ---- values --------------------------------------------------------------------------

TEST(Elementwise, BinaryValues) {
  const Tensor a = f32({1.5f, -2, 4, 0}, {4}), b = f32({2, 3, -0.5f, 5}, {4});
  EXPECT_TRUE(values_are(add(a, b), {4}, {3.5, 1, 3.5, 5}));
  EXPECT_TRUE(values_are(sub(a, b), {4}, {-0.5, -5, 4.5, -5}));
  EXPECT_TRUE(values_are(mul(a, b), {4}, {3, -6, -2, 0}));
  EXPECT_TRUE(values_are(div(a, b), {4}, {0.75, -2.0 / 3.0, -8, 0}, 1e-7));
  EXPECT_TRUE(values_are(maximum(a, b), {4}, {2, 3, 4, 5}));
  EXPECT_TRUE(values_are(minimum(a, b), {4}, {1.5, -2, -0.5, 0}));
  const Tensor base = f32({2, 9, 0.25f, 0}, {4}), e = f32({3, 0.5f, -1, 0}, {4});
  EXPECT_TRUE(values_are(pow(base, e), {4}, {8, 3, 4, 1}, 1e-6));  // 0^0 = 1
  EXPECT_TRUE(values_are(pow(base, 2.0), {4}, {4, 81, 0.0625, 0}, 1e-6));
  EXPECT_TRUE(values_are(pow(base, 0.5), {4}, {std::sqrt(2.0), 3, 0.5, 0}, 1e-6));
  EXPECT_TRUE(values_are(a + 1.0, {4}, {2.5, -1, 5, 1}));
  EXPECT_TRUE(values_are(1.0 - a, {4}, {-0.5, 3, -3, 1}));
  EXPECT_TRUE(values_are(a * 2.0, {4}, {3, -4, 8, 0}));
  EXPECT_TRUE(values_are(2.0 / b, {4}, {1, 2.0 / 3.0, -4, 0.4}, 1e-7));
}

TEST(Elementwise, MaximumMinimumPropagateNaN) {
  const Tensor a = f32({NAN, 1, NAN}, {3}), b = f32({1, NAN, NAN}, {3});
  EXPECT_TRUE(values_are(maximum(a, b), {3}, {kNaN, kNaN, kNaN}));
  EXPECT_TRUE(values_are(minimum(a, b), {3}, {kNaN, kNaN, kNaN}));
}

TEST(Elementwise, IntegerArithmetic) {
  const Tensor a = i32({7, -7, 2, 3}, {4}), b = i32({2, 2, 10, 0}, {4});
  EXPECT_EQ(add(a, b).dtype(), DType::I32);
  EXPECT_TRUE(values_are(mul(a, b), {4}, {14, -14, 20, 0}));
  EXPECT_TRUE(values_are(pow(a, b), {4}, {49, 49, 1024, 1}));
  EXPECT_TRUE(values_are(maximum(a, b), {4}, {7, 2, 10, 3}));
  // u8 arithmetic wraps modulo 256, as in every other framework.
  const Tensor x = u8({200, 5}, {2}), y = u8({100, 10}, {2});
  EXPECT_TRUE(values_are(add(x, y), {2}, {44, 15}));
  EXPECT_TRUE(values_are(sub(x, y), {2}, {100, 251}));
  EXPECT_EQ(add(x, y).dtype(), DType::U8);
}

TEST(Elementwise, UnaryValues) {
  const Tensor x = f32({-2, -0.5f, 0, 1, 4}, {5});
  EXPECT_TRUE(values_are(neg(x), {5}, {2, 0.5, 0, -1, -4}));
  EXPECT_TRUE(values_are(-x, {5}, {2, 0.5, 0, -1, -4}));
  EXPECT_TRUE(values_are(relu(x), {5}, {0, 0, 0, 1, 4}));
  EXPECT_TRUE(values_are(abs(x), {5}, {2, 0.5, 0, 1, 4}));
  EXPECT_TRUE(values_are(exp(x), {5}, {0.1353352832, 0.6065306597, 1, 2.7182818285, 54.598150033},
                         1e-5));
  EXPECT_TRUE(values_are(tanh(x), {5}, {-0.9640275801, -0.4621171573, 0, 0.7615941560, 0.9993292997},
                         1e-6));
  const Tensor p = f32({0.25f, 1, 4, 0}, {4});
  EXPECT_TRUE(values_are(sqrt(p), {4}, {0.5, 1, 2, 0}));
  EXPECT_TRUE(values_are(rsqrt(p), {4}, {2, 1, 0.5, INFINITY}));
  EXPECT_TRUE(values_are(log(p), {4}, {-1.3862943611, 0, 1.3862943611, -INFINITY}, 1e-6));
  // Outside the domain: NaN, as in IEEE arithmetic.
  EXPECT_TRUE(std::isnan(log(f32({-1}, {1})).item<double>()));
  EXPECT_TRUE(std::isnan(sqrt(f32({-1}, {1})).item<double>()));
}

TEST(Elementwise, UnarySpecialValues) {
  // abs clears the sign of -0; relu passes NaN through.
  const Tensor z = abs(f32({-0.0f}, {1}));
  EXPECT_FALSE(std::signbit(z.item<float>()));
  EXPECT_TRUE(std::isnan(relu(f32({NAN}, {1})).item<double>()));
  EXPECT_TRUE(std::isnan(abs(f32({NAN}, {1})).item<double>()));
}

TEST(Elementwise, UnaryOnIntegers) {
  const Tensor x = i32({-3, 0, 5}, {3});
  EXPECT_EQ(neg(x).dtype(), DType::I32);
  EXPECT_TRUE(values_are(neg(x), {3}, {3, 0, -5}));
  EXPECT_TRUE(values_are(abs(x), {3}, {3, 0, 5}));
  EXPECT_TRUE(values_are(relu(x), {3}, {0, 0, 5}));
  // Transcendental ops on integers compute in f32.
  const Tensor s = sqrt(i32({4, 9}, {2}));
  EXPECT_EQ(s.dtype(), DType::F32);
  EXPECT_TRUE(values_are(s, {2}, {2, 3}));
  EXPECT_EQ(exp(x).dtype(), DType::F32);
  EXPECT_TRUE(values_are(exp(x), {3}, {std::exp(-3.0), 1, std::exp(5.0)}, 1e-4));
}

TEST(Elementwise, ErfValuesGradientAndIntegers) {
  // 0, both signs, and |x| > 3, where erf is within 1e-5 of -1 or 1.
  const std::vector<double> v = {-3.5, -1, -0.25, 0, 0.5, 2, 4.5};
  std::vector<double> want, slope;
  for (double a : v) {
    want.push_back(std::erf(a));
    slope.push_back(2 / std::sqrt(std::numbers::pi) * std::exp(-a * a));
  }
  // f64 calls the same libm erf (the slack covers a compiler folding std::erf at build time).
  EXPECT_TRUE(values_are(erf(f64(v, {7})), {7}, want, 1e-15));
  const Tensor y = erf(f32(std::vector<float>(v.begin(), v.end()), {7}));
  EXPECT_EQ(y.dtype(), DType::F32);
  EXPECT_TRUE(values_are(y, {7}, want, 1e-6));
  const Tensor x = f64(v, {7}).set_requires_grad(true);
  sum(erf(x)).backward();
  EXPECT_EQ(x.grad().dtype(), DType::F64);
  EXPECT_TRUE(values_are(x.grad(), {7}, slope, 1e-12));
  // Integers compute in f32, as for the other transcendental ops.
  const Tensor n = erf(i32({-3, 0, 5}, {3}));
  EXPECT_EQ(n.dtype(), DType::F32);
  EXPECT_TRUE(values_are(n, {3}, {std::erf(-3.0), 0, std::erf(5.0)}, 1e-6));
}

TEST(Elementwise, WhereValues) {
  const Tensor c = u8({1, 0, 2, 0}, {4});  // any non-zero selects a
  const Tensor a = f32({1, 2, 3, 4}, {4}), b = f32({-1, -2, -3, -4}, {4});
  EXPECT_TRUE(values_are(where(c, a, b), {4}, {1, -2, 3, -4}));
  // Broadcast of all three: cond [2,1], a [1,3], b scalar.
  const Tensor c2 = u8({1, 0}, {2, 1}), a2 = f32({10, 20, 30}, {1, 3});
  const Tensor out = where(c2, a2, Tensor::scalar(-1.0));
  EXPECT_TRUE(values_are(out, {2, 3}, {10, 20, 30, -1, -1, -1}));
  // a and b promote: i32 with f32 gives f32.
  const Tensor mixed = where(c, i32({5, 6, 7, 8}, {4}), b);
  EXPECT_EQ(mixed.dtype(), DType::F32);
  EXPECT_TRUE(values_are(mixed, {4}, {5, -2, 7, -4}));
}

TEST(Elementwise, ComparisonValues) {
  const Tensor a = f32({1, 2, 3, NAN}, {4}), b = f32({2, 2, 2, NAN}, {4});
  EXPECT_EQ(eq(a, b).dtype(), DType::U8);
  EXPECT_TRUE(values_are(eq(a, b), {4}, {0, 1, 0, 0}));
  EXPECT_TRUE(values_are(ne(a, b), {4}, {1, 0, 1, 1}));  // NaN != NaN
  EXPECT_TRUE(values_are(lt(a, b), {4}, {1, 0, 0, 0}));
  EXPECT_TRUE(values_are(le(a, b), {4}, {1, 1, 0, 0}));
  EXPECT_TRUE(values_are(gt(a, b), {4}, {0, 0, 1, 0}));
  EXPECT_TRUE(values_are(ge(a, b), {4}, {0, 1, 1, 0}));
  // Operands promote before comparing: i32 3 equals f32 3.0, and 2.5 lies between ints.
  const Tensor i = i32({3, 2}, {2}), f = f32({3, 2.5f}, {2});
  EXPECT_TRUE(values_are(eq(i, f), {2}, {1, 0}));
  EXPECT_TRUE(values_are(lt(i, f), {2}, {0, 1}));
  // u8 200 against i32 -1: promoted to i32, so 200 > -1 (no wrap-around).
  EXPECT_TRUE(values_are(gt(u8({200}, {1}), i32({-1}, {1})), {1}, {1}));
}

// ---- broadcasting --------------------------------------------------------------------

TEST(Elementwise, BroadcastRowByColumn) {
  const Tensor col = f32({1, 2, 3}, {3, 1}), row = f32({10, 20, 30, 40}, {1, 4});
  EXPECT_TRUE(values_are(add(col, row), {3, 4},
                         {11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43}));
  EXPECT_TRUE(values_are(sub(row, col), {3, 4}, {9, 19, 29, 39, 8, 18, 28, 38, 7, 17, 27, 37}));
  EXPECT_TRUE(values_are(maximum(col, f32({2}, {1})), {3, 1}, {2, 2, 3}));
  EXPECT_TRUE(values_are(lt(col, row * 0.1), {3, 4}, {0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1}));
  // A trailing-aligned 1-D operand broadcasts along the leading axis.
  EXPECT_TRUE(values_are(mul(f32({1, 2, 3, 4, 5, 6}, {2, 3}), f32({1, 10, 100}, {3})), {2, 3},
                         {1, 20, 300, 4, 50, 600}));
}

TEST(Elementwise, BroadcastScalarsAndZeroDim) {
  const Tensor s = Tensor::scalar(3.0), x = f32({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(values_are(mul(s, x), {2, 3}, {3, 6, 9, 12, 15, 18}));
  EXPECT_TRUE(values_are(sub(x, s), {2, 3}, {-2, -1, 0, 1, 2, 3}));
  const Tensor both = add(s, Tensor::scalar(4.0));
  EXPECT_EQ(both.dim(), 0);
  EXPECT_DOUBLE_EQ(both.item<double>(), 7.0);
  EXPECT_EQ(exp(Tensor::scalar(0.0)).dim(), 0);
  EXPECT_DOUBLE_EQ(exp(Tensor::scalar(0.0)).item<double>(), 1.0);
  EXPECT_EQ(eq(s, Tensor::scalar(3.0)).item<int>(), 1);
  // A size-0 axis broadcasts to an empty result.
  EXPECT_EQ(add(Tensor::zeros({0, 3}), f32({1, 2, 3}, {3})).shape(), (Shape{0, 3}));
}

// ---- type promotion ------------------------------------------------------------------

TEST(Elementwise, PromotionTable) {
  struct Case {
    DType a, b, want;
  };
  for (const Case& c : {Case{DType::F32, DType::BF16, DType::F32},
                        Case{DType::BF16, DType::F16, DType::F32},
                        Case{DType::I32, DType::F32, DType::F32},
                        Case{DType::U8, DType::I32, DType::I32},
                        Case{DType::I64, DType::F64, DType::F64},
                        Case{DType::BF16, DType::BF16, DType::BF16},
                        Case{DType::I32, DType::I64, DType::I64}}) {
    const Tensor a = f32({1.5f, 2}, {2}).to(c.a), b = f32({2, 4}, {2}).to(c.b);
    for (const Tensor& r : {add(a, b), sub(a, b), mul(a, b), maximum(a, b), minimum(a, b)})
      EXPECT_EQ(r.dtype(), c.want) << dtype_name(c.a) << " with " << dtype_name(c.b);
    EXPECT_EQ(add(b, a).dtype(), c.want);  // symmetric
    EXPECT_EQ(where(u8({1, 0}, {2}), a, b).dtype(), c.want);
    EXPECT_EQ(lt(a, b).dtype(), DType::U8);
    // Values: integer operands hold 1 (1.5 truncated), floating ones 1.5.
    const double av = is_integral(c.a) ? 1 : 1.5;
    EXPECT_TRUE(values_are(add(a, b), {2}, {av + 2, 6}));
  }
  // Integer division divides as f32.
  const Tensor q = div(i32({7, -7}, {2}), i32({2, 2}, {2}));
  EXPECT_EQ(q.dtype(), DType::F32);
  EXPECT_TRUE(values_are(q, {2}, {3.5, -3.5}));
  // A scalar takes the tensor's dtype, or f32 when it is fractional and the tensor integral.
  EXPECT_EQ((i32({1}, {1}) * 2.0).dtype(), DType::I32);
  EXPECT_EQ((i32({1}, {1}) * 0.5).dtype(), DType::F32);
  EXPECT_TRUE(values_are(i32({3}, {1}) * 0.5, {1}, {1.5}));
  EXPECT_EQ((f32({1}, {1}).to(DType::BF16) * 3.0).dtype(), DType::BF16);
  EXPECT_EQ(pow(i32({3}, {1}), 2.0).dtype(), DType::I32);
  EXPECT_EQ(pow(i32({4}, {1}), 0.5).dtype(), DType::F32);
}

TEST(Elementwise, HalfPrecisionRoundsOnce) {
  // bf16 operands compute in f32 and round once: 1 + 2^-9 is not representable in bf16
  // (8 significant bits) and rounds back to 1, while 1 + 2^-7 is.
  const Tensor one = f32({1, 1}, {2}).to(DType::BF16);
  const Tensor eps = f32({1.0f / 512, 1.0f / 128}, {2}).to(DType::BF16);
  EXPECT_TRUE(values_are(add(one, eps), {2}, {1, 1 + 1.0 / 128}));
  EXPECT_TRUE(values_are(sqrt(f32({2.25f}, {1}).to(DType::F16)), {1}, {1.5}));
}

// ---- strided views -------------------------------------------------------------------

TEST(Elementwise, NonContiguousOperands) {
  const Tensor x = uniform({3, 4}, 1), y = uniform({4, 3}, 2);
  const std::vector<float> vx = x.to_vector<float>(), vy = y.to_vector<float>();
  // Permuted: x.t() [4,3] against y [4,3].
  const Tensor s = add(x.t(), y);
  std::vector<double> want(12);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) want[i * 3 + j] = double(vx[j * 4 + i]) + vy[i * 3 + j];
  EXPECT_TRUE(values_are(s, {4, 3}, want, 1e-6));
  // Sliced with a step: columns 0 and 2 of x, [3,2].
  const Tensor sl = x.slice(1, 0, 4, 2);
  std::vector<double> want_e, want_m;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; j += 2) {
      want_e.push_back(std::exp(double(vx[i * 4 + j])));
      want_m.push_back(std::max(double(vx[i * 4 + j]), 0.0));
    }
  EXPECT_TRUE(values_are(exp(sl), {3, 2}, want_e, 1e-6));
  EXPECT_TRUE(values_are(maximum(sl, Tensor::scalar(0.0)), {3, 2}, want_m));
  // Expanded: row 0 of y broadcast over 5 rows by a stride-0 view.
  const Tensor ex = y.narrow(0, 0, 1).expand({5, 3});
  std::vector<double> want_n, want_w;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) {
      want_n.push_back(-double(vy[j]));
      want_w.push_back(i % 2 == 0 ? vy[j] : 7.0);
    }
  EXPECT_TRUE(values_are(neg(ex), {5, 3}, want_n));
  const Tensor cond = u8({1, 0, 1, 0, 1}, {5, 1});
  EXPECT_TRUE(values_are(where(cond, ex, Tensor::scalar(7.0)), {5, 3}, want_w));
  // Comparison of a permuted view with itself transposed back.
  EXPECT_TRUE(values_are(eq(x.t().t(), x), {3, 4}, std::vector<double>(12, 1)));
  // Results are fresh and contiguous.
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_TRUE(exp(sl).is_contiguous());
}

// ---- gradients -----------------------------------------------------------------------

TEST(ElementwiseGrad, AddSubMulDivBroadcast) {
  const Tensor a = leaf64({3, 1}, 1), b = leaf64({1, 4}, 2), c = leaf64({4}, 3, 0.5, 2);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return add(v[0], v[1]); }, {a, b}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return sub(v[0], v[1]); }, {a, b}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return mul(v[0], v[1]); }, {a, b}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return div(v[0], v[1]); }, {a, c}));
  // A 0-dim operand collects the gradient of every element.
  const Tensor s = leaf64({}, 4, 0.5, 1.5);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return div(v[1], v[0]); }, {s, a}));
}

TEST(ElementwiseGrad, SubGivesMinusOneToB) {
  const Tensor a = leaf64({2}, 1), b = leaf64({2, 2}, 2);
  sum(sub(a, b)).backward();
  EXPECT_TRUE(values_are(a.grad(), {2}, {2, 2}));
  EXPECT_TRUE(values_are(b.grad(), {2, 2}, {-1, -1, -1, -1}));
}

TEST(ElementwiseGrad, NonContiguousOperands) {
  const Tensor a = leaf64({3, 4}, 1), b = leaf64({4, 3}, 2, 0.5, 2), c = leaf64({3, 6}, 3);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return mul(v[0].t(), v[1]); }, {a, b}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return div(v[0], v[1].t()); }, {a, b}));
  EXPECT_TRUE(grad_ok(
      [](const std::vector<Tensor>& v) { return sub(v[0].slice(1, 0, 6, 2), v[1].narrow(1, 1, 3)); },
      {c, a}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return tanh(v[0].t()); }, {a}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return sqrt(v[0].slice(0, 0, 4, 3)); }, {b}));
  EXPECT_TRUE(grad_ok(
      [](const std::vector<Tensor>& v) { return maximum(v[0].t(), v[1].narrow(1, 0, 3)); },
      {a, leaf64({4, 5}, 4)}));
}

TEST(ElementwiseGrad, Pow) {
  // Positive bases keep log(a) finite for the exponent's gradient.
  const Tensor a = leaf64({2, 3}, 1, 0.5, 2), b = leaf64({2, 3}, 2, -1.5, 1.5);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return pow(v[0], v[1]); }, {a, b}));
  const Tensor col = leaf64({2, 1}, 3, -1, 2);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return pow(v[0], v[1]); }, {a, col}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return pow(v[0].t(), v[1]); },
                      {a, leaf64({3, 1}, 4)}));
  // Scalar exponents, including one that needs a positive base and a negative one.
  const Tensor x = leaf64({5}, 5, -2, 2);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return pow(v[0], 3.0); }, {x}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return pow(v[0], 0.5); }, {a}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return pow(v[0], -2.0); }, {a}));
}

TEST(ElementwiseGrad, PowAtZero) {
  // (a, b) = (0, 2): d/da = 2 * 0^1 = 0; d/db = 0^2 log 0 takes its limit 0, not NaN.
  // (a, b) = (2, 0): d/da = 0; d/db = 2^0 log 2 = log 2.
  // (a, b) = (0, 0): d/da = 0 rather than 0 * 0^-1 = NaN; d/db = 0 rather than 1 * log 0.
  const Tensor a = f64({0, 2, 0}, {3}).set_requires_grad(true);
  const Tensor b = f64({2, 0, 0}, {3}).set_requires_grad(true);
  sum(pow(a, b)).backward();
  EXPECT_TRUE(values_are(a.grad(), {3}, {0, 0, 0}));
  EXPECT_TRUE(values_are(b.grad(), {3}, {0, std::log(2.0), 0}, 1e-12));
  const Tensor x = f64({0, 3}, {2}).set_requires_grad(true);
  sum(pow(x, 0.0)).backward();
  EXPECT_TRUE(values_are(x.grad(), {2}, {0, 0}));
}

TEST(ElementwiseGrad, MaximumMinimum) {
  // Values at least 0.1 apart so no finite-difference step crosses a tie.
  const Tensor a = f64({0.3, -1, 2, 0.7, -0.4, 1.2}, {2, 3}).set_requires_grad(true);
  const Tensor b = f64({0.5, -0.2, 1}, {3}).set_requires_grad(true);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return maximum(v[0], v[1]); }, {a, b}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return minimum(v[0], v[1]); }, {a, b}));
}

TEST(ElementwiseGrad, MaximumMinimumSplitTies) {
  for (bool use_max : {true, false}) {
    const Tensor a = f64({1, 2, 3}, {3}).set_requires_grad(true);
    const Tensor b = f64({2, 2, 2}, {3}).set_requires_grad(true);
    sum((use_max ? maximum(a, b) : minimum(a, b)) * f64({1, 10, 100}, {3})).backward();
    if (use_max) {
      EXPECT_TRUE(values_are(a.grad(), {3}, {0, 5, 100}));
      EXPECT_TRUE(values_are(b.grad(), {3}, {1, 5, 0}));
    } else {
      EXPECT_TRUE(values_are(a.grad(), {3}, {1, 5, 0}));
      EXPECT_TRUE(values_are(b.grad(), {3}, {0, 5, 100}));
    }
  }
  // A broadcast operand sums its shares: b [1] ties with two of a's three elements.
  const Tensor a = f64({1, 1, 3}, {3}).set_requires_grad(true);
  const Tensor b = f64({1}, {1}).set_requires_grad(true);
  sum(maximum(a, b)).backward();
  EXPECT_TRUE(values_are(b.grad(), {1}, {1}));  // 0.5 + 0.5 + 0
  EXPECT_TRUE(values_are(a.grad(), {3}, {0.5, 0.5, 1}));
}

TEST(ElementwiseGrad, Unary) {
  const Tensor x = leaf64({2, 3}, 1, -2, 2);
  const Tensor pos = leaf64({2, 3}, 2, 0.3, 3);
  // Away from relu's and abs's kink at 0: magnitudes in [0.2, 1], random signs.
  const Tensor away = f64({0.2, -0.5, 0.9, -1, 0.35, -0.25}, {2, 3}).set_requires_grad(true);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return neg(v[0]); }, {x}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return exp(v[0]); }, {x}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return tanh(v[0]); }, {x}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return log(v[0]); }, {pos}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return sqrt(v[0]); }, {pos}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return rsqrt(v[0]); }, {pos}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return relu(v[0]); }, {away}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return abs(v[0]); }, {away}));
  // Composition through a broadcast: exp(a) * log(b).
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& v) { return exp(v[0]) * log(v[1]); },
                      {leaf64({3, 1}, 3), leaf64({1, 2}, 4, 0.5, 2)}));
}

TEST(ElementwiseGrad, ReluAndAbsAtZero) {
  const Tensor x = f64({0, -1, 2}, {3}).set_requires_grad(true);
  sum(relu(x)).backward();
  EXPECT_TRUE(values_are(x.grad(), {3}, {0, 0, 1}));
  const Tensor y = f64({0, -1, 2}, {3}).set_requires_grad(true);
  sum(abs(y)).backward();
  EXPECT_TRUE(values_are(y.grad(), {3}, {0, -1, 1}));
}

TEST(ElementwiseGrad, Where) {
  const Tensor cond = u8({1, 0, 0, 1, 1, 0}, {2, 3});
  Tensor a = leaf64({2, 3}, 1), b = leaf64({2, 3}, 2);
  const Fn f = [cond](const std::vector<Tensor>& v) { return where(cond, v[0], v[1]); };
  EXPECT_TRUE(grad_ok(f, {a, b}));
  // Broadcast of all three and a permuted operand.
  const Tensor ccol = u8({1, 0, 1}, {3, 1});
  EXPECT_TRUE(grad_ok([ccol](const std::vector<Tensor>& v) { return where(ccol, v[0], v[1].t()); },
                      {leaf64({1, 2}, 3), leaf64({2, 3}, 4)}));
  EXPECT_TRUE(grad_ok([ccol](const std::vector<Tensor>& v) { return where(ccol, v[0], v[1]); },
                      {leaf64({}, 5), leaf64({4}, 6)}));
  // The gradient lands on a where cond holds, on b elsewhere.
  a.zero_grad();
  b.zero_grad();
  sum(where(cond, a, b) * f64({1, 2, 3, 4, 5, 6}, {2, 3})).backward();
  EXPECT_TRUE(values_are(a.grad(), {2, 3}, {1, 0, 0, 4, 5, 0}));
  EXPECT_TRUE(values_are(b.grad(), {2, 3}, {0, 2, 3, 0, 0, 6}));
}

TEST(ElementwiseGrad, MixedPrecisionGradsTakeTheInputDtype) {
  const Tensor a = Tensor::ones({2}, TensorOptions(DType::F32)).set_requires_grad(true);
  const Tensor b = Tensor::ones({2}, TensorOptions(DType::BF16)).set_requires_grad(true);
  const Tensor out = mul(a, b * 3.0);
  EXPECT_EQ(out.dtype(), DType::F32);
  sum(out).backward();
  EXPECT_EQ(b.grad().dtype(), DType::BF16);
  EXPECT_TRUE(values_are(a.grad(), {2}, {3, 3}));
  EXPECT_TRUE(values_are(b.grad(), {2}, {3, 3}));
}

TEST(ElementwiseGrad, ComparisonsRecordNothing) {
  const Tensor a = leaf64({3}, 1), b = leaf64({3}, 2);
  for (const Tensor& r : {eq(a, b), ne(a, b), lt(a, b), le(a, b), gt(a, b), ge(a, b)}) {
    EXPECT_FALSE(r.requires_grad());
    EXPECT_EQ(r.grad_fn(), nullptr);
  }
  EXPECT_TRUE(where(lt(a, b), a, b).requires_grad());
}

// ---- bad input -----------------------------------------------------------------------

TEST(ElementwiseErrors, BroadcastMismatchNamesBothShapes) {
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  EXPECT_VIMOE_ERROR(add(a, b), "add", "[2, 3]", "[4]");
  EXPECT_VIMOE_ERROR(sub(a, b), "sub", "[2, 3]", "[4]");
  EXPECT_VIMOE_ERROR(pow(a, b), "pow", "[2, 3]", "[4]");
  EXPECT_VIMOE_ERROR(maximum(a, b), "maximum", "[2, 3]", "[4]");
  EXPECT_VIMOE_ERROR(minimum(a, b), "minimum", "[2, 3]", "[4]");
  EXPECT_VIMOE_ERROR(lt(a, b), "lt", "[2, 3]", "[4]");
  EXPECT_VIMOE_ERROR(eq(a, b), "eq", "[2, 3]", "[4]");
}

TEST(ElementwiseErrors, Where) {
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3});
  EXPECT_VIMOE_ERROR(where(Tensor::ones({2, 3}), a, b), "where", "cond", "u8", "f32");
  EXPECT_VIMOE_ERROR(where(u8({1, 0, 1, 0}, {4}), a, b), "where", "[4]", "[2, 3]", "[3]");
  EXPECT_VIMOE_ERROR(where(u8({1}, {1}), a, Tensor::zeros({5})), "where", "[2, 3]", "[5]");
}

TEST(ElementwiseErrors, UndefinedAndUnrepresentable) {
  EXPECT_VIMOE_ERROR(neg(Tensor()), "neg", "undefined");
  EXPECT_VIMOE_ERROR(add(Tensor(), Tensor::zeros({1})), "add", "undefined");
  EXPECT_VIMOE_ERROR(where(Tensor(), Tensor::zeros({1}), Tensor::zeros({1})), "where", "cond");
  EXPECT_VIMOE_ERROR(pow(i32({2}, {1}), -1.0), "pow", "[1]", "i32");
}
