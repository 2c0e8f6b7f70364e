// CUDA cross_entropy against the CPU reference on odd shapes (every block size the row
// kernel picks), f32 and bf16, with smoothing and ignored rows, forward and backward; bad
// targets surface as vimoe::Error and leave the device usable.
//
// Tolerances, relative to the largest reference magnitude M of the compared tensor:
//   f32:  |gpu - cpu| <= max(1e-5 M, 1e-6) + 1e-4 |cpu|: f32 log-sum-exp and row sums
//         against double.
//   bf16: |gpu - cpu| <= max(2e-3 M, 1e-6) + 2^-6 |cpu|: one final rounding to bf16 on each
//         side, which a tiny accumulator difference can flip by one ulp (<= 2^-7 relative).
// The 1e-6 floor covers results that cancel to zero: with one class the loss is
// lse - x = 0 exactly in double, but f32 leaves a rounding residue of ~1e-7 |x| (|x| <= 6).
#include <algorithm>
#include <cmath>

#include "engine/ops/loss.h"
#include "tests/test_util.h"

namespace vimoe {
namespace {

using testing::all_close;
using testing::uniform;

using Tol = testing::ScaledTol;
Tol tol_for(DType dt) { return testing::scaled_tol_for(dt); }
// The 1e-6 floor: see the tolerance note above.
::testing::AssertionResult close(const Tensor& gpu, const Tensor& cpu, Tol tol) {
  return testing::gpu_close(gpu, cpu, tol, 1e-6);
}

// Targets spread over the classes, every fifth row ignored.
Tensor targets(int64_t rows, int64_t classes) {
  std::vector<int64_t> t(rows);
  for (int64_t r = 0; r < rows; ++r) t[r] = r % 5 == 3 ? -100 : (r * 7919 + 17) % classes;
  return Tensor::from_vector(t, {rows});
}

TEST(CrossEntropyCuda, MatchesCpu) {
  VIMOE_REQUIRE_GPU();
  // Classes 1, 10 and 64 take 32-thread blocks, 385 takes 128, 4099 takes 256.
  const std::vector<Shape> shapes = {{257, 385}, {3, 4099}, {5, 1}, {64, 10}, {1000, 64}, {2, 1025}};
  for (DType dt : {DType::F32, DType::BF16})
    for (const Shape& s : shapes)
      for (double eps : {0.0, 0.1}) {
        SCOPED_TRACE(shape_str(s) + " " + dtype_name(dt) + " eps " + std::to_string(eps));
        const Tensor t = targets(s[0], s[1]);
        Tensor xc = uniform(s, 1, -6, 6, dt), xg = xc.to(Device::cuda());
        xc.set_requires_grad(true);
        xg.set_requires_grad(true);
        const Tensor lc = cross_entropy(xc, t, eps), lg = cross_entropy(xg, t.to(Device::cuda()), eps);
        ASSERT_EQ(lg.dim(), 0);
        ASSERT_EQ(lg.dtype(), dt);
        EXPECT_TRUE(close(lg, lc, tol_for(dt)));
        lc.backward(Tensor::scalar(1.5, dt));
        lg.backward(Tensor::scalar(1.5, TensorOptions(dt, Device::cuda())));
        EXPECT_TRUE(close(xg.grad(), xc.grad(), tol_for(dt)));
      }
}

TEST(CrossEntropyCuda, LargeLogits) {
  VIMOE_REQUIRE_GPU();
  std::vector<float> v(4 * 300);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37) % 2001) - 1000;
  const Tensor x = Tensor::from_vector(v, {4, 300});
  const Tensor t = Tensor::from_vector<int64_t>({0, 299, 150, 7}, {4});
  const Tensor lg = cross_entropy(x.to(Device::cuda()), t.to(Device::cuda()), 0.05);
  EXPECT_TRUE(std::isfinite(lg.item<double>()));
  EXPECT_TRUE(close(lg, cross_entropy(x, t, 0.05), tol_for(DType::F32)));
}

TEST(CrossEntropyCuda, AllIgnoredGivesZero) {
  VIMOE_REQUIRE_GPU();
  Tensor x = uniform({3, 7}, 2, -1, 1, DType::F32, Device::cuda());
  x.set_requires_grad(true);
  const Tensor loss = cross_entropy(x, Tensor::full({3}, -100, TensorOptions(DType::I64, Device::cuda())));
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  EXPECT_TRUE(all_close(x.grad(), Tensor::zeros({3, 7}), 0, 0));
  const Tensor none = cross_entropy(Tensor::zeros({0, 7}, Device::cuda()),
                                    Tensor::zeros({0}, TensorOptions(DType::I64, Device::cuda())));
  EXPECT_EQ(none.item<double>(), 0.0);
}

TEST(CrossEntropyCuda, BadTargetThrowsAndDeviceStaysUsable) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = uniform({300, 10}, 3, -1, 1, DType::F32, Device::cuda());
  std::vector<int64_t> t(300, 1);
  t[150] = 10;   // the first bad row is reported
  t[299] = -7;
  t[20] = -100;  // ignored, fine
  EXPECT_VIMOE_ERROR(cross_entropy(x, Tensor::from_vector(t, {300}, Device::cuda())), "cross_entropy",
                     "target 10 at row 150", "10 classes");
  // No sticky CUDA error: the next loss runs normally.
  t[150] = 2;
  t[299] = 3;
  const Tensor ok = cross_entropy(x, Tensor::from_vector(t, {300}, Device::cuda()));
  EXPECT_TRUE(close(ok, cross_entropy(x.cpu(), Tensor::from_vector(t, {300})), tol_for(DType::F32)));
}

}  // namespace
}  // namespace vimoe
