// Segmentation metrics (mIoU, per-class IoU and accuracy, pixel accuracy) on hand-computed
// maps with ignored pixels, and the pixel cross-entropy against a per-pixel computation.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/engine.h"
#include "models/segmentation_metrics.h"
#include "tests/test_util.h"

using namespace vimoe;
using namespace vimoe::models;

// Four classes: 0 and 1 labelled, 2 neither labelled nor predicted, 3 predicted but never
// labelled. Labels 0 0 1 1 255 1 1, predictions 0 1 1 1 0 0 3 (pixel 4 is ignored):
//   class 0: both 1, label 2, pred 2 -> IoU 1/3, acc 1/2
//   class 1: both 2, label 4, pred 3 -> IoU 2/5, acc 2/4
//   class 2: nothing -> NaN, NaN (left out of the means)
//   class 3: both 0, label 0, pred 1 -> IoU 0 (counted), acc NaN
// mIoU = (1/3 + 2/5 + 0) / 3, mAcc = (1/2 + 1/2) / 2, aAcc = 3 / 6.
TEST(SegmentationMetrics, HandComputedWithIgnoredPixels) {
  SegmentationCounts c(4);
  c.add({0, 1, 1, 1, 0, 0, 3}, {0, 0, 1, 1, 255, 1, 1}, 255);
  EXPECT_EQ(c.labelled_pixels(), 6);
  const SegmentationMetrics m = segmentation_metrics(c);
  EXPECT_DOUBLE_EQ(m.iou[0], 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.iou[1], 2.0 / 5);
  EXPECT_TRUE(std::isnan(m.iou[2]));
  EXPECT_DOUBLE_EQ(m.iou[3], 0.0);
  EXPECT_DOUBLE_EQ(m.accuracy[0], 0.5);
  EXPECT_DOUBLE_EQ(m.accuracy[1], 0.5);
  EXPECT_TRUE(std::isnan(m.accuracy[3]));
  EXPECT_DOUBLE_EQ(m.miou, (1.0 / 3 + 2.0 / 5) / 3);
  EXPECT_DOUBLE_EQ(m.mean_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(m.pixel_accuracy, 0.5);
}

TEST(SegmentationMetrics, CountsAddUpOverMapsAndBadValuesAreNamed) {
  SegmentationCounts c(2);
  c.add({0, 1}, {0, 1}, 255);
  c.add({1}, {0}, 255);
  EXPECT_EQ(c.confusion, (std::vector<int64_t>{1, 1, 0, 1}));
  EXPECT_VIMOE_ERROR(c.add({0, 0}, {0, 2}, 255), "pixel 1", "label 2", "0..1", "255");
  EXPECT_VIMOE_ERROR(c.add({5}, {1}, 255), "pixel 0", "predicted as 5");
  EXPECT_VIMOE_ERROR(c.add({0}, {0, 1}, 255), "1 predicted pixels for 2 labels");
  EXPECT_TRUE(std::isnan(segmentation_metrics(SegmentationCounts(3)).pixel_accuracy));
}

// The mean over labelled pixels of -log softmax(logits[:, y, x])[target], computed pixel by
// pixel, with an ignored pixel that changes neither the loss nor its gradient.
TEST(PixelCrossEntropy, MatchesThePerPixelMeanAndIgnoresPixels) {
  const int64_t B = 2, C = 3, H = 2, W = 3;
  std::vector<double> v(B * C * H * W);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(1.3 * static_cast<double>(i));
  Tensor logits = Tensor::from_vector<double>(v, {B, C, H, W});
  logits.set_requires_grad(true);
  const std::vector<int64_t> t = {0, 1, 2, 255, 1, 0, 2, 2, 1, 0, 0, 255};
  const Tensor target = Tensor::from_vector<int64_t>(t, {B, H, W});
  const Tensor loss = pixel_cross_entropy(logits, target, 255);
  double want = 0;
  int64_t n = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < H * W; ++p) {
      const int64_t y = t[b * H * W + p];
      if (y == 255) continue;
      double z = 0;
      for (int64_t c = 0; c < C; ++c) z += std::exp(v[(b * C + c) * H * W + p]);
      want += std::log(z) - v[(b * C + y) * H * W + p];
      ++n;
    }
  EXPECT_NEAR(loss.item<double>(), want / static_cast<double>(n), 1e-12);
  loss.backward();
  const std::vector<double> g = logits.grad().to_vector<double>();
  for (int64_t c = 0; c < C; ++c) EXPECT_EQ(g[(0 * C + c) * H * W + 3], 0.0) << "ignored pixel, class " << c;
  auto f = [&](const std::vector<Tensor>& in) { return pixel_cross_entropy(in[0], target, 255); };
  EXPECT_TRUE(::vimoe::testing::grad_ok(f, {logits}, 1e-8, 1e-5));
  EXPECT_VIMOE_ERROR(pixel_cross_entropy(logits, Tensor::zeros({B, H, H}, TensorOptions(DType::I64)), 255),
                     "pixel_cross_entropy", "i64 [2, 2, 3]");
  const Tensor bad = Tensor::from_vector<int64_t>({0, 1, 2, 7, 1, 0, 2, 2, 1, 0, 0, 255}, {B, H, W});
  EXPECT_VIMOE_ERROR(pixel_cross_entropy(logits, bad, 255), "pixel_cross_entropy", "H = 2, W = 3", "7");
}
