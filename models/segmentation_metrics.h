// Semantic-segmentation metrics as mmseg's IoUMetric computes them, from a confusion matrix
// of the labelled pixels (those whose label is not the ignore index):
//   IoU_c      = |pred c and label c| / |pred c or label c|   (NaN when neither has a pixel)
//   Acc_c      = |pred c and label c| / |label c|             (NaN when no pixel is labelled c)
//   mIoU, mAcc = the means of the classes' finite values
//   aAcc       = correctly predicted labelled pixels / labelled pixels (pixel accuracy)
// A class predicted but never labelled has IoU 0 and counts in mIoU, as in mmseg.
#pragma once
#include <cstdint>
#include <vector>

namespace vimoe::models {

struct SegmentationCounts {
  int64_t classes = 0;
  std::vector<int64_t> confusion;  // [classes x classes], row: label, column: prediction

  explicit SegmentationCounts(int64_t classes);
  // One map's pixels: predicted[i] in [0, classes), labels[i] in [0, classes) or ignore_index
  // (left out). Anything else is an error naming the pixel and the value.
  void add(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels, int64_t ignore_index);
  int64_t labelled_pixels() const;
};

struct SegmentationMetrics {
  std::vector<double> iou, accuracy;  // per class
  double miou = 0, mean_accuracy = 0, pixel_accuracy = 0;
};
SegmentationMetrics segmentation_metrics(const SegmentationCounts& counts);

}  // namespace vimoe::models
