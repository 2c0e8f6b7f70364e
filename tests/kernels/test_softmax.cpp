// CUDA softmax / log_softmax against the CPU reference: every kernel shape (warp per row,
// block per row, strided column rows), odd sizes, f32 and bf16, forward and backward.
//
// Tolerances, relative to the largest reference magnitude M of the compared tensor:
//   f32:  |gpu - cpu| <= 1e-5 M + 1e-4 |cpu|: f32 exp/log (a few ulps) and f32 row sums
//         against double.
//   bf16: |gpu - cpu| <= 2e-3 M + 2^-6 |cpu|: both round a wide result once to bf16, and a
//         tiny accumulator difference can flip that rounding by one ulp (<= 2^-7 relative).
// The backward kernels are compared on the SAME (y, dy) inputs, so the forward's rounding
// does not feed into them; a separate f32 test runs the whole autograd path.
#include <cmath>
#include <functional>

#include "engine/ops/reduce.h"
#include "engine/ops/softmax.h"
#include "tests/test_util.h"

namespace vimoe {
namespace {

using testing::all_close;
using testing::uniform;

using Tol = testing::ScaledTol;
Tol tol_for(DType dt) { return testing::scaled_tol_for(dt); }
::testing::AssertionResult close(const Tensor& gpu, const Tensor& cpu, Tol tol) {
  return testing::gpu_close(gpu, cpu, tol);
}

struct Case {
  Shape shape;
  int64_t dim;
};
// [257, 385] dim 1 / [3, 1, 257] dim 2: warp per row; [6, 4099] and [2, 1025]: block per
// row (1025 is one past the warp limit, 1024 the last warp size); dim 0 of [257, 385],
// [4099, 3] and [3, 1, 257], and dim 1 of [3, 1, 257]: strided columns (inner > 1);
// [5, 1]: rows of length 1.
const std::vector<Case> kCases = {{{257, 385}, 1}, {{257, 385}, 0}, {{3, 1, 257}, 0}, {{3, 1, 257}, 1},
                                  {{3, 1, 257}, 2}, {{6, 4099}, 1}, {{4099, 3}, 0},   {{2, 1025}, 1},
                                  {{3, 1024}, -1},  {{5, 1}, 1},    {{1, 5}, 0}};

TEST(SoftmaxCuda, ForwardMatchesCpu) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& c : kCases)
      for (bool log : {false, true}) {
        SCOPED_TRACE(shape_str(c.shape) + " dim " + std::to_string(c.dim) + " " + dtype_name(dt) +
                     (log ? " log_softmax" : " softmax"));
        const Tensor x = uniform(c.shape, 1, -8, 8, dt);
        const Tensor xg = x.to(Device::cuda());
        const Tensor yc = log ? log_softmax(x, c.dim) : softmax(x, c.dim);
        const Tensor yg = log ? log_softmax(xg, c.dim) : softmax(xg, c.dim);
        ASSERT_EQ(yg.dtype(), dt);
        EXPECT_TRUE(close(yg, yc, tol_for(dt)));
      }
}

TEST(SoftmaxCuda, BackwardMatchesCpu) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& c : kCases)
      for (bool log : {false, true}) {
        SCOPED_TRACE(shape_str(c.shape) + " dim " + std::to_string(c.dim) + " " + dtype_name(dt) +
                     (log ? " log_softmax" : " softmax"));
        const Tensor x = uniform(c.shape, 2, -8, 8, dt);
        const Tensor y = log ? log_softmax(x, c.dim) : softmax(x, c.dim);
        const Tensor dy = uniform(c.shape, 3, -1, 1, dt);
        const Tensor yg = y.to(Device::cuda()), dyg = dy.to(Device::cuda());
        const Tensor dxc = log ? log_softmax_backward(dy, y, c.dim) : softmax_backward(dy, y, c.dim);
        const Tensor dxg = log ? log_softmax_backward(dyg, yg, c.dim) : softmax_backward(dyg, yg, c.dim);
        EXPECT_TRUE(close(dxg, dxc, tol_for(dt)));
      }
}

TEST(SoftmaxCuda, AutogradMatchesCpu) {
  VIMOE_REQUIRE_GPU();
  for (const Case& c : {Case{{257, 385}, 1}, Case{{257, 385}, 0}, Case{{6, 4099}, -1}})
    for (bool log : {false, true}) {
      SCOPED_TRACE(shape_str(c.shape) + " dim " + std::to_string(c.dim));
      Tensor xc = uniform(c.shape, 4, -4, 4), xg = xc.to(Device::cuda());
      xc.set_requires_grad(true);
      xg.set_requires_grad(true);
      const Tensor w = uniform(c.shape, 5);
      (log ? log_softmax(xc, c.dim) : softmax(xc, c.dim)).backward(w);
      (log ? log_softmax(xg, c.dim) : softmax(xg, c.dim)).backward(w.to(Device::cuda()));
      EXPECT_TRUE(close(xg.grad(), xc.grad(), tol_for(DType::F32)));
    }
}

TEST(SoftmaxCuda, LargeMaskedAndNaNRows) {
  VIMOE_REQUIRE_GPU();
  // Row 0 spans +-1000; row 1 is masked with -inf except one element; row 2 is all -inf
  // (NaN out); row 3 holds a NaN. Long rows (1500 > 1024) take the block kernel, and the
  // masked elements sit in different warps.
  const int64_t n = 1500;
  std::vector<float> v(4 * n);
  for (int64_t c = 0; c < n; ++c) {
    v[c] = static_cast<float>((c * 37) % 2001) - 1000;
    v[n + c] = c == 700 ? 3.0f : -INFINITY;
    v[2 * n + c] = -INFINITY;
    v[3 * n + c] = c == 999 ? std::nanf("") : 0.5f;
  }
  for (int64_t len : {n, int64_t{700}}) {  // and the warp kernel, on a prefix of each row
    const Tensor x = Tensor::from_vector(v, {4, n}).narrow(1, 0, len);
    for (bool log : {false, true}) {
      const Tensor yc = log ? log_softmax(x, 1) : softmax(x, 1);
      const Tensor yg = log ? log_softmax(x.to(Device::cuda()), 1) : softmax(x.to(Device::cuda()), 1);
      EXPECT_TRUE(close(yg, yc, tol_for(DType::F32))) << "len " << len << " log " << log;
    }
  }
}

TEST(SoftmaxCuda, RowsSumToOne) {
  VIMOE_REQUIRE_GPU();
  for (const Case& c : kCases) {
    const Tensor y = softmax(uniform(c.shape, 6, -30, 30, DType::F32, Device::cuda()), c.dim);
    const Tensor s = sum(y, {c.dim});
    EXPECT_TRUE(all_close(s, Tensor::ones(s.shape()), 1e-5, 0)) << shape_str(c.shape) << " dim " << c.dim;
  }
}

}  // namespace
}  // namespace vimoe
