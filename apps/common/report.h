// What vimoe-eval writes: accuracy tables, routing heatmaps and expert loads per MoE layer,
// training curves, each as CSV and PNG, plus a summary JSON.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <cmath>
#include <optional>

#include "apps/common/trainer.h"

namespace vimoe::app {

// A model rebuilt from a training checkpoint, with the run configuration it was trained with.
struct LoadedRun {
  RunConfig config;
  std::shared_ptr<models::ImageModel> model;
  int64_t step = 0;  // the optimiser steps the checkpoint had taken
};
LoadedRun load_run(const std::string& checkpoint, Device device);

// Writes per_class.csv, confusion.{csv,png}, for each MoE layer routing_block<i>.{csv,png}
// (class x expert fractions, rows ordered by their dominant expert) and
// expert_load_block<i>.{csv,png}, and the routing analyses of routing_report.h.
// Returns the summary (accuracies, routing degree, the model's parameter and multiply-add
// counts as in `vimoe-eval params`, files written), also written to summary.json.
nlohmann::json write_eval_report(const EvalResult& r, const std::vector<std::string>& class_names,
                                 const models::ImageModel& model, const std::string& out_dir);

// loss_curve.png / accuracy_curve.png (top-1 / top-5, or for segmentation mIoU and pixel
// accuracy) and curves.csv from a run's metrics.jsonl. Values that
// are null or not finite (a diverged run logs NaN as null) leave gaps in the curves and are
// counted. Throws for a missing, unreadable or empty file and for a line that is not a JSON
// object.
struct Curves {
  std::vector<std::string> files;  // written, relative to out_dir
  int64_t missing_values = 0;      // null or non-finite values drawn as gaps
};
// A validation result to draw at the end of the curves when the metrics hold none at its
// step: vimoe-eval's evaluation of a run trained without a final one.
struct ValidationPoint {
  int64_t step = 0;
  double loss = 0, top1 = NAN, top5 = NAN;
  double miou = NAN, pixel_accuracy = NAN;  // segmentation
};
Curves write_curves(const std::string& metrics_jsonl, const std::string& out_dir,
                    const std::optional<ValidationPoint>& last = std::nullopt);

}  // namespace vimoe::app
