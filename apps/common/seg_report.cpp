#include "apps/common/seg_report.h"

#include <cmath>
#include <filesystem>

#include "apps/common/superclass_report.h"
#include "plot/overlay.h"
#include "plot/plot.h"

namespace vimoe::app {

namespace fs = std::filesystem;

namespace {

// A tile showing `labels` ([height x width] class indices, the ignore index left untinted)
// over the image, scaled to the label map's size by the overlay.
plot::OverlayTile label_tile(const EvalResult::SegmentedImage& s, const std::vector<int64_t>& labels,
                             int64_t ignore, const std::string& caption) {
  plot::OverlayTile t;
  const auto C = static_cast<int>(s.image.size(0));
  t.height = static_cast<int>(s.image.size(1));
  t.width = static_cast<int>(s.image.size(2));
  t.rgb = plot::display_rgb(s.image.to_vector<float>(), C, t.height, t.width);
  t.grid_height = static_cast<int>(s.height);
  t.grid_width = static_cast<int>(s.width);
  t.labels.reserve(labels.size());
  for (int64_t v : labels) t.labels.push_back(v == ignore ? -1 : static_cast<int>(v));
  t.caption = caption;
  return t;
}

}  // namespace

nlohmann::json write_segmentation_report(const EvalResult& r, const std::vector<std::string>& classes,
                                         const std::string& out_dir, std::vector<std::string>& files) {
  VIMOE_CHECK(r.pixels.has_value(), "write_segmentation_report: the evaluation has no pixel counts");
  const models::SegmentationCounts& counts = *r.pixels;
  const models::SegmentationMetrics m = models::segmentation_metrics(counts);
  auto path = [&](const std::string& name) {
    files.push_back(name);
    return (fs::path(out_dir) / name).string();
  };
  const auto K = static_cast<size_t>(counts.classes);
  std::vector<std::vector<std::string>> rows;
  std::vector<double> bars;
  nlohmann::json per_class = nlohmann::json::object();
  std::vector<std::vector<int64_t>> confusion(K, std::vector<int64_t>(K));
  for (size_t c = 0; c < K; ++c) {
    int64_t labelled = 0;
    for (size_t p = 0; p < K; ++p) labelled += confusion[c][p] = counts.confusion[c * K + p];
    rows.push_back({classes[c], plot::csv_number(m.iou[c]), plot::csv_number(m.accuracy[c]), std::to_string(labelled)});
    bars.push_back(std::isfinite(m.iou[c]) ? 100 * m.iou[c] : 0.0);
    per_class[classes[c]] = std::isfinite(m.iou[c]) ? nlohmann::json(m.iou[c]) : nlohmann::json(nullptr);
  }
  plot::csv_write(path("per_class_iou.csv"), {"class", "iou", "accuracy", "labelled_pixels"}, rows);
  char title[96];
  std::snprintf(title, sizeof title, "IoU per class (mIoU %.2f%%)", 100 * m.miou);
  plot::BarChartOptions bars_opts;
  bars_opts.reference = 100 * m.miou;
  bars_opts.reference_label = "mIoU";
  plot::bar_chart_png(path("per_class_iou.png"), bars, classes, title, "IoU (%)", bars_opts);
  write_confusion(confusion, classes, out_dir, "Pixel confusion: share of each class's labelled pixels by prediction");
  files.push_back("confusion.csv");
  files.push_back("confusion.png");

  // Each kept image twice: its label map, then the prediction, both over the image.
  std::vector<plot::OverlayTile> tiles;
  std::vector<std::vector<std::string>> image_rows;
  for (size_t i = 0; i < r.segmented.size(); ++i) {
    const EvalResult::SegmentedImage& s = r.segmented[i];
    int64_t labelled = 0, correct = 0;
    std::vector<bool> present(K, false);
    for (size_t p = 0; p < s.label.size(); ++p) {
      if (s.label[p] == r.ignore_index) continue;
      ++labelled;
      correct += s.prediction[p] == s.label[p];
      present[static_cast<size_t>(s.label[p])] = true;
    }
    const double acc = labelled ? static_cast<double>(correct) / static_cast<double>(labelled) : NAN;
    std::string names;
    for (size_t c = 0; c < K; ++c)
      if (present[c]) names += (names.empty() ? "" : " ") + classes[c];
    image_rows.push_back({std::to_string(i), plot::csv_number(acc), names});
    char caption[64];
    std::snprintf(caption, sizeof caption, "%zu predicted (%.1f%%)", i, 100 * acc);
    tiles.push_back(label_tile(s, s.label, r.ignore_index, std::to_string(i) + " label"));
    tiles.push_back(label_tile(s, s.prediction, r.ignore_index, caption));
  }
  if (!tiles.empty()) {
    plot::csv_write(path("predictions.csv"), {"image", "pixel_accuracy", "labelled_classes"}, image_rows);
    plot::OverlayOptions o;
    o.alpha = 0.6;
    o.tile_side = 240;
    plot::overlay_tiles_png(path("predictions.png"), tiles, classes,
                            "Validation images: label map (left) and prediction (right); void untinted", o);
  }
  return {{"miou", m.miou},
          {"mean_accuracy", m.mean_accuracy},
          {"pixel_accuracy", m.pixel_accuracy},
          {"per_class_iou", per_class}};
}

}  // namespace vimoe::app
