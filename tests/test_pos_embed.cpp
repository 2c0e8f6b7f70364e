#include <gtest/gtest.h>

#include <cmath>

#include "models/pos_embed.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

TEST(PosEmbed, SameGridIsACopyAndLeadingRowsAreKept) {
  const Tensor t = uniform({1, 2 + 9, 5}, 1);
  EXPECT_TRUE(all_close(models::resample_pos_embed(t, 2, 3, 3), t, 0, 0));
  const Tensor r = models::resample_pos_embed(t, 2, 4, 6);
  EXPECT_EQ(r.shape(), (Shape{1, 2 + 24, 5}));
  EXPECT_TRUE(all_close(r.narrow(1, 0, 2), t.narrow(1, 0, 2), 0, 0));
}

TEST(PosEmbed, ConstantsStayConstantAndWeightsSumToOne) {
  const Tensor t = Tensor::full({1, 1 + 16, 3}, 2.5, DType::F64);
  EXPECT_TRUE(all_close(models::resample_pos_embed(t, 1, 7, 5), Tensor::full({1, 36, 3}, 2.5, DType::F64), 1e-12, 0));
}

TEST(PosEmbed, MatchesHandComputedBicubic) {
  // A 2x2 grid whose value depends only on x: [[0, 1], [0, 1]], resampled to width 3.
  // torch: scale 2/3; output 0 samples x = -1/6 (taps -2..1 clamp to 0,0,0,1), output 1
  // samples x = 0.5 (symmetric: 0.5), output 2 mirrors output 0.
  const Tensor t = Tensor::from_vector<double>({0, 1, 0, 1}, {1, 4, 1});
  const std::vector<double> v = models::resample_pos_embed(t, 0, 2, 3).to_vector<double>();
  const double A = -0.75, s = 5.0 / 6.0;  // fraction at output 0 (floor -1, t = 5/6)
  auto far = [&](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };
  const double w3 = far(2 - s);  // the only tap that reads column 1
  EXPECT_NEAR(v[0], w3, 1e-12);
  EXPECT_NEAR(v[1], 0.5, 1e-12);
  EXPECT_NEAR(v[2], 1 - w3, 1e-12);
  EXPECT_NEAR(v[3], v[0], 1e-12);  // second row identical
}

TEST(PosEmbed, BadInputs) {
  EXPECT_VIMOE_ERROR(models::resample_pos_embed(Tensor::zeros({1, 11, 4}), 1, 2, 2), "resample_pos_embed",
                     "square");
  EXPECT_VIMOE_ERROR(models::resample_pos_embed(Tensor::zeros({2, 5, 4}), 1, 2, 2), "resample_pos_embed",
                     "[2, 5, 4]");
}
