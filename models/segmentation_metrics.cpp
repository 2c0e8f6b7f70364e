#include "models/segmentation_metrics.h"

#include <cmath>
#include <limits>

#include "engine/error.h"

namespace vimoe::models {

namespace {

double nan_mean(const std::vector<double>& v) {
  double sum = 0;
  int64_t n = 0;
  for (double x : v)
    if (std::isfinite(x)) {
      sum += x;
      ++n;
    }
  return n ? sum / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

SegmentationCounts::SegmentationCounts(int64_t classes) : classes(classes), confusion(classes * classes, 0) {
  VIMOE_CHECK(classes >= 1, "SegmentationCounts: expected at least one class, found ", classes);
}

void SegmentationCounts::add(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels,
                             int64_t ignore_index) {
  VIMOE_CHECK(predicted.size() == labels.size(), "SegmentationCounts: ", predicted.size(), " predicted pixels for ",
              labels.size(), " labels");
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == ignore_index) continue;
    VIMOE_CHECK(labels[i] >= 0 && labels[i] < classes, "SegmentationCounts: pixel ", i, " has label ", labels[i],
                "; expected 0..", classes - 1, " or the ignore index ", ignore_index);
    VIMOE_CHECK(predicted[i] >= 0 && predicted[i] < classes, "SegmentationCounts: pixel ", i, " is predicted as ",
                predicted[i], "; expected 0..", classes - 1);
    ++confusion[labels[i] * classes + predicted[i]];
  }
}

int64_t SegmentationCounts::labelled_pixels() const {
  int64_t n = 0;
  for (int64_t v : confusion) n += v;
  return n;
}

SegmentationMetrics segmentation_metrics(const SegmentationCounts& c) {
  const int64_t K = c.classes;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  SegmentationMetrics m;
  int64_t correct = 0;
  for (int64_t k = 0; k < K; ++k) {
    int64_t label_area = 0, predicted_area = 0;
    for (int64_t j = 0; j < K; ++j) {
      label_area += c.confusion[k * K + j];
      predicted_area += c.confusion[j * K + k];
    }
    const int64_t both = c.confusion[k * K + k];
    correct += both;
    const int64_t either = label_area + predicted_area - both;
    m.iou.push_back(either > 0 ? static_cast<double>(both) / static_cast<double>(either) : nan);
    m.accuracy.push_back(label_area > 0 ? static_cast<double>(both) / static_cast<double>(label_area) : nan);
  }
  m.miou = nan_mean(m.iou);
  m.mean_accuracy = nan_mean(m.accuracy);
  const int64_t labelled = c.labelled_pixels();
  m.pixel_accuracy = labelled > 0 ? static_cast<double>(correct) / static_cast<double>(labelled) : nan;
  return m;
}

}  // namespace vimoe::models
