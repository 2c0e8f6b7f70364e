// CUDA softmax / log_softmax beyond the op-parity rows (tests/op_parity/cases_softmax.cpp,
// which compare forward, backward through autograd and the standalone backward kernels with
// the CPU on every kernel shape, odd sizes, every dtype, views and the ViT-S/14 attention
// batch): special values (+-1000 logits, -inf masks, all -inf and NaN rows) and that rows sum
// to one.
//
// Tolerances, relative to the largest reference magnitude M of the compared tensor (f32):
// |gpu - cpu| <= 1e-5 M + 1e-4 |cpu|: f32 exp/log (a few ulps) and f32 row sums against
// double; NaN must meet NaN.
#include <cmath>
#include <vector>

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
