// Bilinear resampling against PyTorch's align_corners=False convention on hand-worked values,
// forward and backward, and its errors.
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "engine/engine.h"
#include "tests/test_util.h"

using namespace vimoe;

// F.interpolate([[1, 2], [3, 4]], size=4, mode="bilinear", align_corners=False): along each
// axis src = (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped 0, then weights of the
// second input 0, 0.25, 0.75, 1 (the last clamps to the edge).
TEST(Interpolate, UpsamplesAsPyTorchDoes) {
  const Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2});
  const Tensor y = interpolate_bilinear(x, 4, 4);
  const std::vector<double> want = {1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5,
                                    2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0};
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 4}));
  EXPECT_EQ(y.to_vector<double>(), want);
}

// Halving: src = 2o + 0.5, the mean of each pair (no antialiasing, as PyTorch's default).
TEST(Interpolate, DownsamplesToPairMeans) {
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 1, 4});
  EXPECT_EQ(interpolate_bilinear(x, 1, 2).to_vector<float>(), (std::vector<float>{1.5f, 3.5f, 5.5f, 7.5f}));
}

// The backward of the 2x2 -> 4x4 case with upstream gradient g[y][x] = x: each input's
// gradient is (sum of its row weights over y) * (sum over x of its column weights times x).
// Row weights of either input row sum to 2; column 0's weights are 1, 0.75, 0.25, 0 and
// column 1's 0, 0.25, 0.75, 1, so dx = 2 * 1.25 = 2.5 and 2 * 4.75 = 9.5.
TEST(Interpolate, BackwardOnAHandWorkedCase) {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2});
  x.set_requires_grad(true);
  const Tensor y = interpolate_bilinear(x, 4, 4);
  std::vector<double> g;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) g.push_back(c);
  sum(y * Tensor::from_vector<double>(g, {1, 1, 4, 4})).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2.5, 9.5, 2.5, 9.5}));
}

// (The op-parity rows run the same check on their shapes; these add a non-square downsampling.)
TEST(Interpolate, GradientMatchesFiniteDifferencesOnOddShapes) {
  for (auto [h, w, oh, ow] : {std::array<int64_t, 4>{3, 5, 7, 4}, {4, 4, 9, 9}, {5, 2, 2, 5}}) {
    std::vector<double> v(2 * h * w);
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.7 * static_cast<double>(i) + 0.3);
    Tensor x = Tensor::from_vector<double>(v, {1, 2, h, w});
    x.set_requires_grad(true);
    auto f = [oh = oh, ow = ow](const std::vector<Tensor>& in) { return interpolate_bilinear(in[0], oh, ow).reshape({-1}); };
    EXPECT_TRUE(::vimoe::testing::grad_ok(f, {x}, 1e-7, 1e-5)) << h << "x" << w << " -> " << oh << "x" << ow;
  }
}

TEST(Interpolate, BadInputsAreNamed) {
  const Tensor x = Tensor::zeros({2, 3, 4});
  EXPECT_VIMOE_ERROR(interpolate_bilinear(x, 4, 4), "interpolate_bilinear", "[N, C, H, W]", "[2, 3, 4]");
  EXPECT_VIMOE_ERROR(interpolate_bilinear(Tensor::zeros({1, 1, 2, 2}), 0, 4), "at least 1x1", "0x4");
  EXPECT_VIMOE_ERROR(interpolate_bilinear(Tensor::zeros({1, 1, 2, 2}, TensorOptions(DType::I64)), 4, 4),
                     "interpolate_bilinear");
}
