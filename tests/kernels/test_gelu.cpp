// GELU and bias + GELU on the GPU against the CPU reference: odd and ViT widths, f32 and bf16
// (plus f16 and f64 spot checks), forward and backward, both pack widths, and determinism.
#include <gtest/gtest.h>

#include <string>

#include "engine/ops/gelu.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

struct Outputs {
  Tensor y, dx, db;
};

// Forward and backward on `dev` from the same host values; b undefined runs gelu(x).
Outputs run(const Tensor& x_h, const Tensor& b_h, const Tensor& g_h, Device dev) {
  Tensor x = x_h.detach().to(dev);
  Tensor b = b_h.defined() ? b_h.detach().to(dev) : Tensor();
  x.set_requires_grad(true);
  if (b.defined()) b.set_requires_grad(true);
  const Tensor y = b.defined() ? bias_gelu(x, b) : gelu(x);
  y.backward(g_h.to(dev));
  return {y, x.grad(), b.defined() ? b.grad() : Tensor()};
}

// Tolerances of GPU against CPU. Both evaluate kernels/gelu_math.h in the same compute type,
// but the device's erff/expf and the host's libm differ by an ulp or two.
//  f32: 1e-6 absolute (values near gelu's and gelu''s zeros), 1e-5 relative; dbias sums
//       `rows` terms of size < 1.2 in different orders: 1e-6 absolute per row.
//  bf16 / f16: an f32 difference can move the rounded value by one ulp, 2^-7 / 2^-10
//       relative; dbias rounds a sum once.
struct Tol {
  double atol, rtol, db_atol_per_row;
};
Tol tol_for(DType dt) {
  switch (dt) {
    case DType::F32:
      return {1e-6, 1e-5, 1e-6};
    case DType::F64:
      return {1e-13, 1e-12, 1e-13};
    case DType::F16:
      return {1e-4, 2e-3, 1e-4};
    default:
      return {1e-4, 1e-2, 1e-4};  // bf16
  }
}

void expect_matches(const Outputs& gpu, const Outputs& cpu, DType dt, int64_t rows) {
  const Tol t = tol_for(dt);
  EXPECT_TRUE(gpu.y.is_cuda());
  EXPECT_TRUE(all_close(gpu.y, cpu.y, t.atol, t.rtol)) << "y";
  EXPECT_TRUE(all_close(gpu.dx, cpu.dx, t.atol, t.rtol)) << "dx";
  EXPECT_EQ(gpu.db.defined(), cpu.db.defined());
  if (cpu.db.defined()) {
    EXPECT_TRUE(
        all_close(gpu.db, cpu.db, t.atol + t.db_atol_per_row * static_cast<double>(rows), t.rtol))
        << "dbias";
  }
}

void check_case(int64_t rows, int64_t cols, DType dt, uint64_t seed, bool with_bias = true) {
  SCOPED_TRACE("rows " + std::to_string(rows) + " cols " + std::to_string(cols) + " " +
               dtype_name(dt) + (with_bias ? " bias_gelu" : " gelu"));
  // [-4, 4) covers both tails and the region where gelu' changes sign (near -0.75).
  const Tensor x = uniform({rows, cols}, seed, -4, 4, dt);
  const Tensor b = with_bias ? uniform({cols}, seed + 1, -1, 1, dt) : Tensor();
  const Tensor g = uniform({rows, cols}, seed + 2, -1, 1, dt);
  expect_matches(run(x, b, g, Device::cuda()), run(x, b, g, Device::cpu()), dt, rows);
}

}  // namespace

TEST(GeluCuda, MatchesTheCpuOnOddAndVitShapes) {
  VIMOE_REQUIRE_GPU();
  // Widths that are whole 16-byte packs (384, 768, 1024, 1536) take the packed kernels; 1, 3
  // and 385 take the one-element ones (for gelu without bias: when rows * cols is not a
  // whole number of packs).
  uint64_t seed = 1;
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t rows : {1, 3, 257})
      for (int64_t cols : {1, 3, 384, 385, 768, 1024, 1536})
        for (bool with_bias : {true, false}) check_case(rows, cols, dt, seed += 3, with_bias);
}

TEST(GeluCuda, MatchesTheCpuAtViTSmallMlpSize) {
  VIMOE_REQUIRE_GPU();
  // The ViT-S/14 MLP hidden activation at batch 256: 65792 rows x 1536, bias fused; dbias
  // reduces over 170 row parts.
  check_case(256 * 257, 1536, DType::F32, 100);
}

TEST(GeluCuda, OtherDtypes) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F16, DType::F64})
    for (int64_t cols : {3, 384, 385}) check_case(257, cols, dt, 200 + cols);
}

TEST(GeluCuda, MisalignedInputTakesTheElementPath) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const int64_t rows = 33, cols = 384;
    // Contiguous, but one element past a 16-byte boundary.
    const Tensor flat = uniform({rows * cols + 1}, 300, -4, 4, dt, Device::cuda());
    const Tensor x = flat.narrow(0, 1, rows * cols).view({rows, cols});
    ASSERT_TRUE(x.is_contiguous());
    const Tensor b = uniform({cols}, 301, -1, 1, dt), g = uniform({rows, cols}, 302, -1, 1, dt);
    expect_matches(run(x, b, g, Device::cuda()), run(x.cpu(), b, g, Device::cpu()), dt, rows);
    expect_matches(run(x, {}, g, Device::cuda()), run(x.cpu(), {}, g, Device::cpu()), dt, rows);
  }
}

TEST(GeluCuda, OnlyTheBiasOrOnlyXNeedsGrad) {
  VIMOE_REQUIRE_GPU();
  const int64_t rows = 257, cols = 384;
  const Tensor x = uniform({rows, cols}, 400, -4, 4), b = uniform({cols}, 401),
               g = uniform({rows, cols}, 402);
  auto go = [&](Device dev, bool x_grad, bool b_grad) {
    Tensor xd = x.detach().to(dev), bd = b.detach().to(dev);
    if (x_grad) xd.set_requires_grad(true);
    if (b_grad) bd.set_requires_grad(true);
    bias_gelu(xd, bd).backward(g.to(dev));
    return std::pair<Tensor, Tensor>{xd.grad(), bd.grad()};
  };
  {
    const auto [dxg, dbg] = go(Device::cuda(), false, true);
    const auto [dxc, dbc] = go(Device::cpu(), false, true);
    EXPECT_FALSE(dxg.defined());
    EXPECT_TRUE(all_close(dbg, dbc, 1e-6 * rows, 1e-5));
  }
  {
    const auto [dxg, dbg] = go(Device::cuda(), true, false);
    const auto [dxc, dbc] = go(Device::cpu(), true, false);
    EXPECT_FALSE(dbg.defined());
    EXPECT_TRUE(all_close(dxg, dxc, 1e-6, 1e-5));
  }
}

TEST(GeluCuda, NonContiguousInputAndGradient) {
  VIMOE_REQUIRE_GPU();
  const int64_t rows = 65, cols = 384;
  const Tensor base = uniform({cols, rows}, 500, -4, 4), b = uniform({cols}, 501),
               gt = uniform({cols, rows}, 502);
  auto go = [&](Device dev) {
    Tensor x = base.detach().to(dev), bd = b.detach().to(dev);
    x.set_requires_grad(true);
    bd.set_requires_grad(true);
    const Tensor y = bias_gelu(x.transpose(0, 1), bd);
    y.backward(gt.to(dev).transpose(0, 1));
    return Outputs{y, x.grad(), bd.grad()};
  };
  expect_matches(go(Device::cuda()), go(Device::cpu()), DType::F32, rows);
}

TEST(GeluCuda, DbiasIsDeterministic) {
  VIMOE_REQUIRE_GPU();
  for (int64_t cols : {384, 385}) {  // packed and one-element tiles
    const Tensor x = uniform({4099, cols}, 600, -4, 4), b = uniform({cols}, 601),
                 g = uniform({4099, cols}, 602);
    const Outputs a = run(x, b, g, Device::cuda()), c = run(x, b, g, Device::cuda());
    EXPECT_TRUE(all_close(a.db, c.db, 0, 0)) << cols;
    EXPECT_TRUE(all_close(a.dx, c.dx, 0, 0)) << cols;
  }
}

TEST(GeluCuda, DeviceMismatchNamesTheOpAndTensors) {
  VIMOE_REQUIRE_GPU();
  EXPECT_VIMOE_ERROR(bias_gelu(Tensor::zeros({2, 4}, Device::cuda()), Tensor::zeros({4})),
                     "bias_gelu", "[2, 4]", "[4]", "cuda", "cpu");
}
