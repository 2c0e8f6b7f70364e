// CUDA reductions against the CPU reference on odd shapes, f32 and bf16, forward and backward.
//
// Tolerances, relative to the largest reference magnitude M of the compared tensor:
//   f32:  |gpu - cpu| <= 1e-5 M + 1e-5 |cpu|. The GPU accumulates in f32 with a tree, the
//         CPU in double: the difference is a few f32 ulps of the partial sums.
//   bf16: |gpu - cpu| <= 1e-3 M + 2^-6 |cpu|. Both see the same bf16 inputs and round their
//         wide result once; accumulator differences can flip that rounding by one bf16 ulp
//         (at most 2^-7 relative), and cancellation near zero is covered by the 1e-3 M term.
//   max / argmax: exact (comparisons, no arithmetic).
#include <cmath>
#include <functional>
#include <limits>

#include "engine/ops/reduce.h"
#include "tests/test_util.h"

namespace vimoe {
namespace {

using testing::all_close;
using testing::uniform;

struct Tol {
  double scaled;  // times the largest |reference| value
  double rtol;
};
constexpr Tol kF32{1e-5, 1e-5};
constexpr Tol kBF16{1e-3, 1.0 / 64};
constexpr Tol kExact{0, 0};

Tol tol_for(DType dt) { return dt == DType::BF16 ? kBF16 : kF32; }

::testing::AssertionResult close(const Tensor& gpu, const Tensor& cpu, Tol tol) {
  if (!gpu.is_cuda()) return ::testing::AssertionFailure() << "result is not on the GPU";
  double m = 0;
  for (double v : cpu.to_vector<double>())
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  return all_close(gpu, cpu, tol.scaled * m, tol.rtol);
}

// Runs f on the CPU and on the GPU from the same values, compares the outputs, then (when
// `backward`) back-propagates the same upstream gradient through both and compares the
// input gradients.
void check(const std::function<Tensor(const Tensor&)>& f, const Shape& shape, DType dt, uint64_t seed,
           Tol fwd, Tol bwd, bool backward = true) {
  SCOPED_TRACE(shape_str(shape) + " " + dtype_name(dt));
  const Tensor host = uniform(shape, seed, -2, 2, dt);
  Tensor xc = host.clone(), xg = host.to(Device::cuda());
  xc.set_requires_grad(backward);
  xg.set_requires_grad(backward);
  const Tensor yc = f(xc), yg = f(xg);
  ASSERT_EQ(yg.shape(), yc.shape());
  ASSERT_EQ(yg.dtype(), yc.dtype());
  EXPECT_TRUE(close(yg, yc, fwd));
  if (!backward) return;
  const Tensor w = uniform(yc.shape(), seed + 1, -1, 1, dt);
  yc.backward(w);
  yg.backward(w.to(Device::cuda()));
  ASSERT_TRUE(xg.grad().defined());
  EXPECT_TRUE(close(xg.grad(), xc.grad(), bwd));
}

struct Case {
  Shape shape;
  std::vector<int64_t> dims;
};

const std::vector<Case> kCases = {
    {{257, 385}, {1}},   {{257, 385}, {0}},    {{257, 385}, {}},     {{3, 1, 257}, {0, 2}},
    {{3, 1, 257}, {1}},  {{3, 1, 257}, {2}},   {{5, 4099}, {1}},     {{4099, 3}, {0}},
    {{7, 1}, {1}},       {{2, 3, 5, 7}, {3, 1}}};

TEST(ReduceCuda, SumAndMean) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& c : kCases)
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE("dims " + shape_str(c.dims));
        check([&](const Tensor& x) { return sum(x, c.dims, keepdim); }, c.shape, dt, 1, tol_for(dt), tol_for(dt));
        check([&](const Tensor& x) { return mean(x, c.dims, keepdim); }, c.shape, dt, 2, tol_for(dt), tol_for(dt));
      }
}

TEST(ReduceCuda, Var) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& c : kCases)
      for (int64_t correction : {0, 1}) {
        SCOPED_TRACE("dims " + shape_str(c.dims) + " correction " + std::to_string(correction));
        // Rows of length 1 with correction 1 divide 0 by 0 on both sides: NaN == NaN.
        check([&](const Tensor& x) { return var(x, c.dims, correction == 1, correction); }, c.shape, dt, 3,
              tol_for(dt), tol_for(dt));
      }
}

TEST(ReduceCuda, VarWithLargeMean) {
  VIMOE_REQUIRE_GPU();
  // Spread 1 around 1e4: a one-pass sum of squares would lose everything in f32.
  const Tensor x = (uniform({4, 4099}, 4, -1, 1, DType::F64) + 10000.0).to(DType::F32);
  EXPECT_TRUE(close(var(x.to(Device::cuda()), {1}), var(x, {1}), Tol{0, 1e-3}));
}

TEST(ReduceCuda, MaxAndArgmax) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& c : kCases) {
      if (c.dims.size() != 1) continue;
      const int64_t d = c.dims[0];
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE("dim " + std::to_string(d));
        check([&](const Tensor& x) { return max(x, d, keepdim); }, c.shape, dt, 5, kExact, kExact);
        check([&](const Tensor& x) { return argmax(x, d, keepdim); }, c.shape, dt, 6, kExact, kExact, false);
      }
    }
}

// Few distinct values: long rows are full of ties, and the first one must win across
// threads, warps and the block.
TEST(ReduceCuda, ArgmaxTiesPickTheFirst) {
  VIMOE_REQUIRE_GPU();
  for (const Shape& shape : {Shape{3, 4099}, Shape{257, 385}, Shape{2, 33}}) {
    std::vector<float> v(shape_numel(shape));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37 + 11) % 9);
    const Tensor x = Tensor::from_vector(v, shape);
    for (int64_t d : {0, 1})
      EXPECT_TRUE(close(argmax(x.to(Device::cuda()), d), argmax(x, d), kExact)) << shape_str(shape) << " dim " << d;
  }
}

TEST(ReduceCuda, MaxPropagatesNaN) {
  VIMOE_REQUIRE_GPU();
  Tensor x = uniform({6, 385}, 7);
  std::vector<float> v = x.to_vector<float>();
  v[0 * 385 + 300] = std::nanf("");  // the second element of thread 44: NaN arrives late
  v[1 * 385 + 3] = std::nanf("");
  v[1 * 385 + 200] = std::nanf("");  // a later NaN in the same row
  v[2 * 385 + 384] = std::nanf("");
  x = Tensor::from_vector(v, {6, 385});
  const Tensor g = x.to(Device::cuda());
  EXPECT_TRUE(close(argmax(g, 1), argmax(x, 1), kExact));
  EXPECT_EQ(argmax(g, 1).to_vector<int64_t>()[1], 3);
  const std::vector<double> m = max(g, 1).to_vector<double>();
  EXPECT_TRUE(std::isnan(m[0]) && std::isnan(m[1]) && std::isnan(m[2]) && !std::isnan(m[3]));
}

TEST(ReduceCuda, IntegerInputs) {
  VIMOE_REQUIRE_GPU();
  std::vector<int32_t> v(257 * 385);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int32_t>((i * 7919) % 100003) - 50000;
  const Tensor x = Tensor::from_vector(v, {257, 385});
  const Tensor g = x.to(Device::cuda());
  for (int64_t d : {0, 1}) {
    EXPECT_TRUE(close(max(g, d), max(x, d), kExact));
    EXPECT_TRUE(close(argmax(g, d), argmax(x, d), kExact));
    EXPECT_TRUE(close(sum(g, {d}), sum(x, {d}), kExact));
  }
}

TEST(ReduceCuda, PermutedInputs) {
  VIMOE_REQUIRE_GPU();
  const Tensor host = uniform({5, 257, 3}, 8);
  const Tensor xc = host.permute({2, 0, 1}), xg = host.to(Device::cuda()).permute({2, 0, 1});
  EXPECT_TRUE(close(mean(xg, {0, 2}), mean(xc, {0, 2}), kF32));
  EXPECT_TRUE(close(var(xg, {1}), var(xc, {1}), kF32));
  EXPECT_TRUE(close(max(xg, 2), max(xc, 2), kExact));
  EXPECT_TRUE(close(argmax(xg, 0), argmax(xc, 0), kExact));
}

TEST(ReduceCuda, EmptyMaxThrows) {
  VIMOE_REQUIRE_GPU();
  EXPECT_VIMOE_ERROR(max(Tensor::zeros({3, 0}, Device::cuda()), 1), "max", "size 0");
}

}  // namespace
}  // namespace vimoe
