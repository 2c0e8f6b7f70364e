// CUDA cross_entropy beyond the op-parity rows (tests/op_parity/cases_loss.cpp, which compare
// the loss and its gradient with the CPU on every block size, smoothing, ignore_index values,
// views, large logits and the ViT-S/14 classifier): the exact 0 of an all-ignored or empty
// batch, a deterministic forward, and bad targets surfacing as vimoe::Error with the device
// still usable.
#include <gtest/gtest.h>

#include <vector>

#include "engine/ops/loss.h"
#include "tests/test_util.h"

namespace vimoe {
namespace {

using testing::all_close;
using testing::uniform;

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

// The row losses are summed by one block in a fixed order: the same bits on every run.
TEST(CrossEntropyCuda, ForwardIsDeterministic) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = uniform({3001, 385}, 4, -6, 6, DType::F32, Device::cuda());
  std::vector<int64_t> t(3001);
  for (size_t r = 0; r < t.size(); ++r) t[r] = static_cast<int64_t>((r * 7919 + 17) % 385);
  const Tensor target = Tensor::from_vector(t, {3001}, Device::cuda());
  const double first = cross_entropy(x, target, 0.1).item<double>();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(cross_entropy(x, target, 0.1).item<double>(), first);
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
  EXPECT_TRUE(testing::gpu_close(ok, cross_entropy(x.cpu(), Tensor::from_vector(t, {300})),
                                 testing::scaled_tol_for(DType::F32), 1e-6));
}

}  // namespace
}  // namespace vimoe
