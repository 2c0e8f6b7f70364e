// LayerNorm on the GPU beyond the op-parity rows (tests/op_parity/cases_layernorm.cpp, which
// compare forward and backward with the CPU on odd and ViT widths, every dtype, with and
// without weight / bias, without dx, misaligned and transposed inputs, and the ViT-S/14
// batch): that the backward is bitwise deterministic, and the device-mismatch error.
#include <gtest/gtest.h>

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

// Forward and backward on `dev` from the same host values, every input requiring grad.
Outputs run(const Tensor& x_h, const Tensor& w_h, const Tensor& b_h, const Tensor& g_h, Device dev) {
  Tensor x = x_h.detach().to(dev), w = w_h.detach().to(dev), b = b_h.detach().to(dev);
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor y = layer_norm(x, w, b, kEps);
  y.backward(g_h.to(dev));
  return {y, x.grad(), w.grad(), b.grad()};
}

}  // namespace

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
