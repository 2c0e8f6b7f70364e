// GELU on the GPU beyond the op-parity rows (tests/op_parity/cases_gelu.cpp, which compare
// CUDA with the CPU on odd, packed, misaligned, transposed and ViT-S/14 shapes): gradients
// wanted for only one input, determinism of the bias gradient, and errors.
#include <gtest/gtest.h>

#include <utility>

#include "engine/ops/gelu.h"
#include "tests/op_parity/op_case.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::parity::compare;
using vimoe::parity::Tol;
using vimoe::testing::uniform;

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
  // The bias gradient sums `rows` terms: 1e-6 absolute per row (cases_gelu.cpp).
  const Tol db_tol{1e-6 * rows, 1e-5, 0}, dx_tol{1e-6, 1e-5, 0};
  {
    const auto [dxg, dbg] = go(Device::cuda(), false, true);
    const auto [dxc, dbc] = go(Device::cpu(), false, true);
    EXPECT_FALSE(dxg.defined());
    EXPECT_TRUE(compare(dbg, dbc, db_tol, "dbias"));
  }
  {
    const auto [dxg, dbg] = go(Device::cuda(), true, false);
    const auto [dxc, dbc] = go(Device::cpu(), true, false);
    EXPECT_FALSE(dbg.defined());
    EXPECT_TRUE(compare(dxg, dxc, dx_tol, "dx"));
  }
}

TEST(GeluCuda, DbiasIsDeterministic) {
  VIMOE_REQUIRE_GPU();
  for (int64_t cols : {384, 385}) {  // packed and one-element tiles
    const Tensor x = uniform({4099, cols}, 600, -4, 4), b = uniform({cols}, 601),
                 g = uniform({4099, cols}, 602);
    auto run = [&] {
      Tensor xd = x.cuda().detach(), bd = b.cuda().detach();
      xd.set_requires_grad(true);
      bd.set_requires_grad(true);
      bias_gelu(xd, bd).backward(g.cuda());
      return std::pair<Tensor, Tensor>{xd.grad(), bd.grad()};
    };
    const auto [dx1, db1] = run();
    const auto [dx2, db2] = run();
    EXPECT_TRUE(compare(db1, db2.cpu(), parity::kExact, "dbias, second run")) << cols;
    EXPECT_TRUE(compare(dx1, dx2.cpu(), parity::kExact, "dx, second run")) << cols;
  }
}

TEST(GeluCuda, DeviceMismatchNamesTheOpAndTensors) {
  VIMOE_REQUIRE_GPU();
  EXPECT_VIMOE_ERROR(bias_gelu(Tensor::zeros({2, 4}, Device::cuda()), Tensor::zeros({4})),
                     "bias_gelu", "[2, 4]", "[4]", "cuda", "cpu");
}
