// vimoe-eval's segmentation tables and pictures, beside write_eval_report's routing ones:
//   per_class_iou.{csv,png}  per class: IoU, accuracy and labelled pixels; bars of the IoU
//   confusion.{csv,png}      the labelled pixels' confusion (label x prediction)
//   predictions.{csv,png}    the first validation images, each as its label map and its
//                            prediction over the image (CSV: per image, pixel accuracy and the
//                            classes present)
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/common/evaluate.h"

namespace vimoe::app {

// Writes the files above (r.pixels must be set), appending their names to `files`. Returns
// the figures for summary.json: miou, mean_accuracy, pixel_accuracy, per_class_iou (null
// for a class neither labelled nor predicted).
nlohmann::json write_segmentation_report(const EvalResult& r, const std::vector<std::string>& class_names,
                                         const std::string& out_dir, std::vector<std::string>& files);

}  // namespace vimoe::app
