// Random numbers, dropout and drop_path on the GPU against the CPU reference, on odd sizes
// (1, 257, 385 * 3) and a multi-block size, f32 and bf16 (f16 and f64 too where cheap).
// Tolerances:
//   - rand, uniform_, dropout, drop_path (forward and backward): bit-identical. Both sides
//     take the same 24 Philox bits per element and then do exact IEEE work (an fma in
//     double, one rounding to the dtype; one multiply in f32 or f64).
//   - randn / normal_: the f32 normal goes through logf and cosf, within 1 ulp (glibc) and
//     1-2 ulp (CUDA) each: |gpu - cpu| <= 1e-6 + 4e-6 |cpu| (a few f32 ulps). In bf16 a
//     difference that small can still flip a rounding: 1e-6 + 8e-3 |cpu| (2 bf16 ulps),
//     and nearly all elements must match exactly.
//   - trunc_normal_: computed in double (log, erfc, exp differ by a few double ulps), rounded
//     once: at most 1 f32 ulp apart, |diff| <= 1e-12 + 3e-7 |cpu|, almost always identical.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/ops/random.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

const Device kGpu = Device::cuda();
const int64_t kSizes[] = {1, 257, 385 * 3, 3000017};

// Same values and the same sign of zero, element by element.
::testing::AssertionResult identical(const Tensor& gpu, const Tensor& cpu) {
  if (gpu.shape() != cpu.shape() || gpu.dtype() != cpu.dtype())
    return ::testing::AssertionFailure() << describe(gpu) << " vs " << describe(cpu);
  const std::vector<double> a = gpu.to_vector<double>(), b = cpu.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": gpu " << a[i] << ", cpu "
                                           << b[i] << " (" << describe(cpu) << ")";
  return ::testing::AssertionSuccess();
}

// How many elements differ at all.
int64_t mismatches(const Tensor& gpu, const Tensor& cpu) {
  const std::vector<double> a = gpu.to_vector<double>(), b = cpu.to_vector<double>();
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

TEST(RandomGpu, RandBitIdenticalToCpu) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::F64})
    for (int64_t n : kSizes)
      for (uint64_t offset : {uint64_t(0), uint64_t(7)}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " n=" + std::to_string(n) +
                     " offset=" + std::to_string(offset));
        const uint64_t seed = 0x1234567890abcdefull + static_cast<uint64_t>(n);
        const Tensor c = rand({n}, seed, dt, offset);
        const Tensor g = rand({n}, seed, TensorOptions(dt, kGpu), offset);
        ASSERT_TRUE(g.is_cuda());
        EXPECT_TRUE(identical(g, c));
      }
  EXPECT_TRUE(identical(rand({385, 3}, 5, TensorOptions(DType::BF16, kGpu)),
                        rand({385, 3}, 5, DType::BF16)));
}

TEST(RandomGpu, UniformInPlaceOnViewsBitIdentical) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    // Transposed view: element i of the view in row-major order takes counter i.
    Tensor wc = Tensor::zeros({3, 385}, dt), wg = Tensor::zeros({3, 385}, TensorOptions(dt, kGpu));
    Tensor vc = wc.t(), vg = wg.t();
    uniform_(vc, -0.3, 0.7, 17);
    uniform_(vg, -0.3, 0.7, 17);
    EXPECT_TRUE(identical(wg, wc));
    // A column slice of a [257, 5]: the other columns stay zero on both.
    Tensor sc = Tensor::zeros({257, 5}, dt), sg = Tensor::zeros({257, 5}, TensorOptions(dt, kGpu));
    Tensor nc = sc.narrow(1, 1, 3), ng = sg.narrow(1, 1, 3);
    uniform_(nc, 2.0, 3.0, 18, 4);
    uniform_(ng, 2.0, 3.0, 18, 4);
    EXPECT_TRUE(identical(sg, sc));
  }
  // Many bf16 draws round up to hi and are clamped below it, identically.
  Tensor bc = Tensor::empty({1 << 16}, DType::BF16);
  Tensor bg = Tensor::empty({1 << 16}, TensorOptions(DType::BF16, kGpu));
  uniform_(bc, -1.0, 1.0, 19);
  uniform_(bg, -1.0, 1.0, 19);
  EXPECT_TRUE(identical(bg, bc));
}

TEST(RandomGpu, RandnWithinTolerance) {
  VIMOE_REQUIRE_GPU();
  for (int64_t n : kSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const Tensor c = randn({n}, 99, {}, 2);
    const Tensor g = randn({n}, 99, TensorOptions(DType::F32, kGpu), 2);
    EXPECT_TRUE(all_close(g, c, 1e-6, 4e-6));
    const Tensor cb = randn({n}, 99, DType::BF16, 2);
    const Tensor gb = randn({n}, 99, TensorOptions(DType::BF16, kGpu), 2);
    EXPECT_TRUE(all_close(gb, cb, 1e-6, 8e-3));
    // A flip needs the f32 values to straddle a bf16 rounding boundary: ~1e-4 per element.
    EXPECT_LE(mismatches(gb, cb), 1 + n / 100);
  }
  // normal_ on a transposed view.
  Tensor wc = Tensor::zeros({3, 385});
  Tensor wg = Tensor::zeros({3, 385}, TensorOptions(DType::F32, kGpu));
  Tensor vc = wc.t(), vg = wg.t();
  normal_(vc, 3.0, 0.5, 7);
  normal_(vg, 3.0, 0.5, 7);
  EXPECT_TRUE(all_close(wg, wc, 1e-6, 4e-6));
}

TEST(RandomGpu, TruncNormalMatchesCpu) {
  VIMOE_REQUIRE_GPU();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    double std, a, b;
  };
  // ViT's init, a one-sided tail (folded), and a far tail.
  const Case cases[] = {{0.02, -0.04, 0.04}, {1.0, 1.0, inf}, {2.0, 10.0, 12.0}};
  for (const Case& k : cases)
    for (int64_t n : kSizes) {
      SCOPED_TRACE("std=" + std::to_string(k.std) + " a=" + std::to_string(k.a) +
                   " n=" + std::to_string(n));
      Tensor c = Tensor::empty({n});
      Tensor g = Tensor::empty({n}, TensorOptions(DType::F32, kGpu));
      trunc_normal_(c, k.std, k.a, k.b, 123);
      trunc_normal_(g, k.std, k.a, k.b, 123);
      EXPECT_TRUE(all_close(g, c, 1e-12, 3e-7));
      // A flip needs the double values to straddle an f32 rounding boundary: ~1e-8 each.
      EXPECT_LE(mismatches(g, c), 1 + n / 1000);
      const std::vector<float> gv = g.to_vector<float>();
      for (float x : gv) {
        ASSERT_GE(x, k.a);
        ASSERT_LE(x, k.b);
      }
    }
  Tensor cb = Tensor::empty({385, 3}, DType::BF16);
  Tensor gb = Tensor::empty({385, 3}, TensorOptions(DType::BF16, kGpu));
  trunc_normal_(cb, 0.02, -0.04, 0.04, 124);
  trunc_normal_(gb, 0.02, -0.04, 0.04, 124);
  EXPECT_TRUE(all_close(gb, cb, 1e-12, 8e-3));
}

// Forward and backward of a mask op on both devices; x is given on the CPU, `view` maps the
// leaf to the op's input (identity, transpose, permute).
void expect_mask_op_identical(const std::function<Tensor(const Tensor&)>& op,
                              const std::function<Tensor(const Tensor&)>& view,
                              const Tensor& x_cpu) {
  Tensor xc = x_cpu.detach().clone();
  xc.set_requires_grad(true);
  Tensor xg = x_cpu.detach().to(kGpu);
  xg.set_requires_grad(true);
  const Tensor oc = op(view(xc)), og = op(view(xg));
  EXPECT_TRUE(identical(og, oc)) << "forward";
  const Tensor gc = uniform(oc.shape(), 77, -1, 1, oc.dtype());
  oc.backward(gc);
  og.backward(gc.to(kGpu));
  EXPECT_TRUE(identical(xg.grad(), xc.grad())) << "backward";
}

TEST(RandomGpu, DropoutMatchesCpuForwardAndBackward) {
  VIMOE_REQUIRE_GPU();
  const auto same = [](const Tensor& t) { return t; };
  const auto transposed = [](const Tensor& t) { return t.t(); };
  for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::F64})
    for (double p : {0.1, 0.5, 1.0}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " p=" + std::to_string(p));
      const auto op = [p](const Tensor& t) { return dropout(t, p, true, 4242); };
      for (int64_t n : kSizes) expect_mask_op_identical(op, same, uniform({n}, 1, -2, 2, dt));
      expect_mask_op_identical(op, same, uniform({385, 3}, 2, -2, 2, dt));
      expect_mask_op_identical(op, transposed, uniform({385, 3}, 3, -2, 2, dt));
    }
}

TEST(RandomGpu, DropPathMatchesCpuForwardAndBackward) {
  VIMOE_REQUIRE_GPU();
  const auto same = [](const Tensor& t) { return t; };
  const auto permuted = [](const Tensor& t) { return t.permute({1, 0, 2}); };
  for (DType dt : {DType::F32, DType::BF16})
    for (double p : {0.1, 0.5}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " p=" + std::to_string(p));
      const auto op = [p](const Tensor& t) { return drop_path(t, p, true, 777); };
      expect_mask_op_identical(op, same, uniform({1, 5}, 4, -2, 2, dt));
      expect_mask_op_identical(op, same, uniform({257, 3}, 5, -2, 2, dt));
      expect_mask_op_identical(op, same, uniform({385, 3, 3}, 6, -2, 2, dt));
      // Samples along the view's dim 0, which is the leaf's dim 1.
      expect_mask_op_identical(op, permuted, uniform({3, 385, 3}, 7, -2, 2, dt));
      // Many samples of 197 tokens x 3: the kernel's per-element sample index.
      expect_mask_op_identical(op, same, uniform({2053, 197, 3}, 8, -2, 2, dt));
    }
}

}  // namespace
