// LayerNorm on the GPU against the CPU reference: odd and ViT widths, f32 and bf16 (plus f16
// and f64 spot checks), forward and backward, both kernel paths, and determinism.
#include <gtest/gtest.h>

#include <string>

#include "engine/ops/layernorm.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

constexpr double kEps = 1e-5;

struct Outputs {
  Tensor y, dx, dw, db;
};

// Forward and backward on `dev` from the same host values. Undefined w / b mean no affine;
// `x_grad` false leaves x out of the gradients (the kernels then skip dx).
Outputs run(const Tensor& x_h, const Tensor& w_h, const Tensor& b_h, const Tensor& g_h, Device dev,
            bool x_grad = true) {
  Tensor x = x_h.detach().to(dev);
  Tensor w = w_h.defined() ? w_h.detach().to(dev) : Tensor();
  Tensor b = b_h.defined() ? b_h.detach().to(dev) : Tensor();
  if (x_grad) x.set_requires_grad(true);
  if (w.defined()) w.set_requires_grad(true);
  if (b.defined()) b.set_requires_grad(true);
  const Tensor y = layer_norm(x, w, b, kEps);
  y.backward(g_h.to(dev));
  return {y, x_grad ? x.grad() : Tensor(), w.defined() ? w.grad() : Tensor(),
          b.defined() ? b.grad() : Tensor()};
}

// Tolerances of GPU against CPU, per dtype. The CPU computes in double and rounds once; the
// GPU computes in f32 with f32 statistics (f64 for f64).
//  f32: y a few f32 ulp apart (|y| < 6): 1e-5; dx cancels (rstd * (g - mean - xhat * m2)),
//       so 1e-4 relative. dweight/dbias sum `rows` terms of size < 2 in different orders:
//       1e-6 absolute per row.
//  bf16 / f16: the f32 results round to the storage type either way and can land one ulp
//       apart: 2^-7 (bf16) or 2^-10 (f16) relative, with as much absolute slack for values
//       that cancel to near zero.
struct Tol {
  double atol, rtol, grad_rtol, param_atol_per_row;
};
Tol tol_for(DType dt) {
  switch (dt) {
    case DType::F32:
      return {1e-5, 1e-5, 1e-4, 1e-6};
    case DType::F64:
      return {1e-12, 1e-12, 1e-10, 1e-13};
    case DType::F16:
      return {2e-3, 2e-3, 2e-3, 1e-4};
    default:
      return {1e-2, 1e-2, 1e-2, 1e-4};  // bf16
  }
}

void expect_matches(const Outputs& gpu, const Outputs& cpu, DType dt, int64_t rows) {
  const Tol t = tol_for(dt);
  const double param_atol = t.atol + t.param_atol_per_row * static_cast<double>(rows);
  EXPECT_TRUE(gpu.y.is_cuda());
  EXPECT_TRUE(all_close(gpu.y, cpu.y, t.atol, t.rtol)) << "y";
  EXPECT_EQ(gpu.dx.defined(), cpu.dx.defined());
  if (cpu.dx.defined()) {
    EXPECT_TRUE(all_close(gpu.dx, cpu.dx, t.atol, t.grad_rtol)) << "dx";
  }
  if (cpu.dw.defined()) {
    EXPECT_TRUE(all_close(gpu.dw, cpu.dw, param_atol, t.grad_rtol)) << "dweight";
  }
  if (cpu.db.defined()) {
    EXPECT_TRUE(all_close(gpu.db, cpu.db, param_atol, t.grad_rtol)) << "dbias";
  }
}

void check_case(int64_t rows, int64_t cols, DType dt, uint64_t seed) {
  SCOPED_TRACE("rows " + std::to_string(rows) + " cols " + std::to_string(cols) + " " +
               dtype_name(dt));
  // A non-zero mean (inputs in [-1, 3)) exercises the centring.
  const Tensor x = uniform({rows, cols}, seed, -1, 3, dt);
  const Tensor w = uniform({cols}, seed + 1, 0.5, 1.5, dt),
               b = uniform({cols}, seed + 2, -1, 1, dt);
  const Tensor g = uniform({rows, cols}, seed + 3, -1, 1, dt);
  expect_matches(run(x, w, b, g, Device::cuda()), run(x, w, b, g, Device::cpu()), dt, rows);
}

}  // namespace

TEST(LayerNormCuda, MatchesTheCpuOnOddAndVitShapes) {
  VIMOE_REQUIRE_GPU();
  // 384, 768 and 1024 take the warp path (16-byte packs in registers); 1, 3, 385 (not a
  // whole number of packs) and 1536 (over 1024 elements per row) take the block path.
  uint64_t seed = 1;
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t rows : {1, 3, 257})
      for (int64_t cols : {1, 3, 384, 385, 768, 1024, 1536}) check_case(rows, cols, dt, seed += 4);
}

TEST(LayerNormCuda, MatchesTheCpuAtViTSmallBatchSize) {
  VIMOE_REQUIRE_GPU();
  // ViT-S/14 at 224, batch 256: 256 images x 257 tokens, width 384. The backward spreads the
  // 65792 rows over 512 blocks of 8 warps (about 16 rows per warp), so dweight/dbias go
  // through the full 512-part reduction.
  check_case(256 * 257, 384, DType::F32, 100);
}

TEST(LayerNormCuda, OtherDtypes) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F16, DType::F64})
    for (int64_t cols : {3, 384, 385}) check_case(257, cols, dt, 200 + cols);
}

TEST(LayerNormCuda, WithoutAffineOrWithoutDx) {
  VIMOE_REQUIRE_GPU();
  for (int64_t cols : {384, 385}) {  // warp path, block path
    SCOPED_TRACE("cols " + std::to_string(cols));
    const Tensor x = uniform({257, cols}, 300, -1, 3), w = uniform({cols}, 301, 0.5, 1.5),
                 b = uniform({cols}, 302), g = uniform({257, cols}, 303);
    // No affine at all; weight only; bias only.
    expect_matches(run(x, {}, {}, g, Device::cuda()), run(x, {}, {}, g, Device::cpu()), DType::F32,
                   257);
    expect_matches(run(x, w, {}, g, Device::cuda()), run(x, w, {}, g, Device::cpu()), DType::F32,
                   257);
    expect_matches(run(x, {}, b, g, Device::cuda()), run(x, {}, b, g, Device::cpu()), DType::F32,
                   257);
    // x without requires_grad: only dweight and dbias are computed.
    const Outputs gpu = run(x, w, b, g, Device::cuda(), false),
                  cpu = run(x, w, b, g, Device::cpu(), false);
    EXPECT_FALSE(gpu.dx.defined());
    expect_matches(gpu, cpu, DType::F32, 257);
  }
}

TEST(LayerNormCuda, MisalignedInputTakesTheGenericPath) {
  VIMOE_REQUIRE_GPU();
  // A contiguous view one element into its storage: 384 would take the 16-byte path, but
  // the base pointer is not 16-byte aligned.
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const int64_t rows = 33, cols = 384;
    const Tensor flat = uniform({rows * cols + 1}, 400, -1, 3, dt, Device::cuda());
    Tensor x = flat.narrow(0, 1, rows * cols).view({rows, cols});
    ASSERT_TRUE(x.is_contiguous());
    const Tensor w = uniform({cols}, 401, 0.5, 1.5, dt), b = uniform({cols}, 402, -1, 1, dt),
                 g = uniform({rows, cols}, 403, -1, 1, dt);
    expect_matches(run(x, w, b, g, Device::cuda()), run(x.cpu(), w, b, g, Device::cpu()), dt, rows);
  }
}

TEST(LayerNormCuda, NonContiguousInputAndGradient) {
  VIMOE_REQUIRE_GPU();
  const int64_t rows = 65, cols = 384;
  const Tensor base = uniform({cols, rows}, 500, -1, 3), w = uniform({cols}, 501, 0.5, 1.5),
               b = uniform({cols}, 502), gt = uniform({cols, rows}, 503);
  auto go = [&](Device dev) {
    Tensor x = base.detach().to(dev);
    x.set_requires_grad(true);
    const Tensor y = layer_norm(x.transpose(0, 1), w.to(dev), b.to(dev), kEps);
    y.backward(gt.to(dev).transpose(0, 1));  // a transposed gradient reaches the node
    return std::pair<Tensor, Tensor>{y, x.grad()};
  };
  const auto [yg, dxg] = go(Device::cuda());
  const auto [yc, dxc] = go(Device::cpu());
  EXPECT_TRUE(all_close(yg, yc, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(dxg, dxc, 1e-5, 1e-4));
}

TEST(LayerNormCuda, BackwardIsDeterministic) {
  VIMOE_REQUIRE_GPU();
  for (int64_t cols : {384, 385}) {  // warp-path partials, tiled partials
    const Tensor x = uniform({4099, cols}, 600, -1, 3), w = uniform({cols}, 601, 0.5, 1.5),
                 b = uniform({cols}, 602), g = uniform({4099, cols}, 603);
    const Outputs a = run(x, w, b, g, Device::cuda()), c = run(x, w, b, g, Device::cuda());
    EXPECT_TRUE(all_close(a.dw, c.dw, 0, 0)) << cols;
    EXPECT_TRUE(all_close(a.db, c.db, 0, 0)) << cols;
    EXPECT_TRUE(all_close(a.dx, c.dx, 0, 0)) << cols;
  }
}

TEST(LayerNormCuda, DeviceMismatchNamesTheOpAndTensors) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = Tensor::zeros({2, 4}, Device::cuda());
  EXPECT_VIMOE_ERROR(layer_norm(x, Tensor::ones({4}), {}, kEps), "layer_norm", "[2, 4]", "cuda",
                     "cpu");
  EXPECT_VIMOE_ERROR(layer_norm(x, {}, Tensor::ones({4}), kEps), "layer_norm", "[4]", "cuda",
                     "cpu");
}
