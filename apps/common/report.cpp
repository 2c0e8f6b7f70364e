#include "apps/common/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "apps/common/routing_report.h"
#include "apps/common/seg_report.h"
#include "apps/common/superclass_report.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"
#include "models/factory.h"
#include "plot/plot.h"

namespace vimoe::app {

namespace fs = std::filesystem;

LoadedRun load_run(const std::string& checkpoint, Device device) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(checkpoint);
  const auto& meta = f.metadata();
  LoadedRun run;
  run.config = from_json(checkpoint_metadata(checkpoint, meta, "config"));
  run.model = models::create_model_from_config(
      stored_model_config(checkpoint_metadata(checkpoint, meta, "model"), run.config));
  std::map<std::string, Tensor> state;
  for (const std::string& n : f.names())
    if (n.rfind("model.", 0) == 0) state.emplace(n.substr(6), f.get(n));
  run.model->load_state_dict(state);
  if (const auto it = meta.find("step"); it != meta.end()) {
    try {
      run.step = std::stoll(it->second);
    } catch (const std::exception&) {
      VIMOE_FAIL(checkpoint, ": its \"step\" metadata \"", it->second, "\" is not a number");
    }
  }
  run.model->to(device);
  run.model->eval();
  return run;
}

// per_class.csv (images and top-1 per class) and confusion.{csv,png}.
static void write_classification_tables(const EvalResult& r, const std::vector<std::string>& classes,
                                        const std::string& out_dir, std::vector<std::string>& files, nlohmann::json& summary) {
  auto path = [&](const std::string& name) {
    files.push_back(name);
    return (fs::path(out_dir) / name).string();
  };
  std::vector<std::vector<std::string>> rows;
  nlohmann::json per_class = nlohmann::json::object();
  for (size_t c = 0; c < classes.size(); ++c) {
    const double acc = r.class_total[c] ? static_cast<double>(r.class_correct[c]) / r.class_total[c] : NAN;
    rows.push_back({classes[c], std::to_string(r.class_total[c]), plot::csv_number(acc)});
    per_class[classes[c]] = acc;
  }
  plot::csv_write(path("per_class.csv"), {"class", "images", "top1"}, rows);
  if (!r.confusion.empty()) {
    write_confusion(r.confusion, classes, out_dir, "Confusion matrix: share of each class's images by prediction");
    path("confusion.csv");
    path("confusion.png");
  }
  summary["per_class_top1"] = per_class;
}

nlohmann::json write_eval_report(const EvalResult& r, const std::vector<std::string>& classes,
                                 const models::ImageModel& model, const std::string& out_dir) {
  const models::MoEConfig& moe = model.moe_config();
  fs::create_directories(out_dir);
  nlohmann::json summary = {{"images", r.images}, {"loss", r.loss}};
  if (!r.pixels) summary.update({{"top1", r.top1}, {"top5", r.top5}});
  summary["skipped_images"] = nlohmann::json::array();
  for (const data::SkippedSample& s : r.skipped) summary["skipped_images"].push_back(s.reason);
  const models::ModelSize size = model.size();
  summary["model"] = {{"total_params", size.total_params}, {"active_params", size.active_params},
                      {"macs", size.macs}};
  std::vector<std::string> files;
  auto path = [&](const std::string& name) {
    files.push_back(name);
    return (fs::path(out_dir) / name).string();
  };

  if (r.pixels) {
    summary.update(write_segmentation_report(r, classes, out_dir, files));
  } else {
    write_classification_tables(r, classes, out_dir, files, summary);
  }

  nlohmann::json layers = nlohmann::json::array();
  for (size_t l = 0; l < r.routing_counts.size(); ++l) {
    const auto& counts = r.routing_counts[l];
    const size_t experts = counts.empty() ? 0 : counts[0].size();
    const std::string block = std::to_string(r.moe_blocks[l]);
    // Fractions of each class's decisions per expert (rows sum to 1).
    std::vector<double> frac;
    std::vector<double> load(experts, 0);
    std::vector<std::vector<std::string>> csv;
    double total = 0;
    for (size_t c = 0; c < counts.size(); ++c) {
      double row_total = 0;
      for (int64_t v : counts[c]) row_total += static_cast<double>(v);
      std::vector<std::string> line{classes[c]};
      for (size_t e = 0; e < experts; ++e) {
        const double f = row_total > 0 ? static_cast<double>(counts[c][e]) / row_total : 0.0;
        frac.push_back(f);
        line.push_back(plot::csv_number(f));
        load[e] += static_cast<double>(counts[c][e]);
      }
      total += row_total;
      csv.push_back(line);
    }
    std::vector<std::string> header{"class"}, expert_names;
    for (size_t e = 0; e < experts; ++e) {
      header.push_back("expert_" + std::to_string(e));
      expert_names.push_back(std::to_string(e));
    }
    plot::csv_write(path("routing_block" + block + ".csv"), header, csv);
    plot::HeatmapOptions hopts;
    hopts.vmin = 0.0;
    hopts.vmax = 1.0;
    plot::heatmap_png(path("routing_block" + block + ".png"), frac, classes, expert_names,
                      "Block " + block + ": share of each class's " + model.routing_unit() + " per expert" +
                          (r.pixels ? " (a token's class: its patch's most frequent)" : ""),
                      hopts);
    std::vector<std::vector<std::string>> load_csv;
    for (size_t e = 0; e < experts; ++e) {
      load[e] = total > 0 ? load[e] / total : 0.0;
      load_csv.push_back({std::to_string(e), plot::csv_number(load[e])});
    }
    plot::csv_write(path("expert_load_block" + block + ".csv"), {"expert", "fraction"}, load_csv);
    plot::BarChartOptions bopts;
    bopts.reference = experts ? 1.0 / static_cast<double>(experts) : NAN;
    bopts.reference_label = "uniform";
    bopts.x_label = "expert";
    plot::bar_chart_png(path("expert_load_block" + block + ".png"), load, expert_names,
                        "Block " + block + ": expert load (top-1 decisions)", "fraction", bopts);
    // NaN (no decisions) is stored as null.
    const double nmi = models::class_expert_nmi(counts);
    layers.push_back({{"block", r.moe_blocks[l]}, {"load", load},
                      {"class_expert_nmi", std::isfinite(nmi) ? nlohmann::json(nmi) : nlohmann::json()}});
  }
  const nlohmann::json analyses = write_routing_analyses(r, classes, model, out_dir, files);
  for (size_t l = 0; l < analyses["layers"].size(); ++l)
    layers[l]["mean_distinct_experts"] = analyses["layers"][l]["mean_distinct_experts"];
  for (const char* key : {"routed_experts_per_image", "activated_params_per_image"})
    if (analyses.contains(key)) summary[key] = analyses[key];
  summary["moe_layers"] = layers;
  if (!r.routing_counts.empty() && model.routing_unit() == "images") {
    // Image routing only (a path is one image's experts through the layers): the routing degree: how many expert combinations the model could express, C(N, k)^L,
    // against how many distinct ones the evaluation images actually took.
    double combos = 1;
    for (int64_t i = 0; i < moe.top_k; ++i) combos = combos * static_cast<double>(moe.experts - i) / (i + 1);
    summary["routing_degree"] = std::pow(combos, static_cast<double>(r.routing_counts.size()));
    summary["distinct_paths_used"] = r.distinct_paths;
  }
  if (r.router_accuracy >= 0) summary["router_accuracy"] = r.router_accuracy;
  summary["files"] = files;
  io::write_file_atomic((fs::path(out_dir) / "summary.json").string(), summary.dump(2) + "\n", "vimoe-eval");
  return summary;
}

Curves write_curves(const std::string& metrics_jsonl, const std::string& out_dir,
                    const std::optional<ValidationPoint>& last) {
  VIMOE_CHECK(!fs::is_directory(metrics_jsonl), metrics_jsonl, " is a directory; curves read a run's metrics.jsonl");
  std::ifstream in(metrics_jsonl);
  VIMOE_CHECK(in.good(), "cannot read ", metrics_jsonl, ": ", fs::exists(metrics_jsonl) ? "permission denied" : "no such file");
  Curves out;
  plot::Series loss{"training loss", {}, {}}, val_loss{"validation loss", {}, {}};
  plot::Series top1{"validation top-1", {}, {}}, top5{"validation top-5", {}, {}};
  plot::Series miou{"validation mIoU", {}, {}}, aacc{"validation pixel accuracy", {}, {}};  // segmentation
  std::vector<std::vector<std::string>> rows;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      VIMOE_FAIL(metrics_jsonl, ": line ", line_no, " is not JSON (", e.what(), ")");
    }
    VIMOE_CHECK(j.is_object(), metrics_jsonl, ": line ", line_no, " is not a JSON object");
    auto num = [&](const char* k) -> double {
      if (!j.contains(k)) return NAN;
      if (j[k].is_number() && std::isfinite(j[k].get<double>())) return j[k].get<double>();
      ++out.missing_values;  // null (how JSON stores a NaN) or a non-number
      return NAN;
    };
    const double step = num("step"), train_loss = num("loss_avg"), aux = num("aux_loss"), lr = num("lr");
    const double v_loss = num("val_loss"), v_top1 = num("val_top1"), v_top5 = num("val_top5");
    const double v_miou = num("val_miou"), v_aacc = num("val_aacc");
    if (j.contains("loss_avg")) loss.xs.push_back(step), loss.ys.push_back(train_loss);
    if (j.contains("val_loss")) {
      val_loss.xs.push_back(step), val_loss.ys.push_back(v_loss);
      top1.xs.push_back(step), top1.ys.push_back(v_top1);
      top5.xs.push_back(step), top5.ys.push_back(v_top5);
      miou.xs.push_back(step), miou.ys.push_back(v_miou);
      aacc.xs.push_back(step), aacc.ys.push_back(v_aacc);
    }
    rows.push_back({plot::csv_number(step), plot::csv_number(train_loss), plot::csv_number(aux), plot::csv_number(lr),
                    plot::csv_number(v_loss), plot::csv_number(v_top1), plot::csv_number(v_top5),
                    plot::csv_number(v_miou), plot::csv_number(v_aacc)});
  }
  VIMOE_CHECK(!rows.empty(), metrics_jsonl, " holds no records");
  const double last_step = last ? static_cast<double>(last->step) : NAN;
  if (last && std::find(val_loss.xs.begin(), val_loss.xs.end(), last_step) == val_loss.xs.end()) {
    val_loss.xs.push_back(last_step), val_loss.ys.push_back(last->loss);
    top1.xs.push_back(last_step), top1.ys.push_back(last->top1);
    top5.xs.push_back(last_step), top5.ys.push_back(last->top5);
    miou.xs.push_back(last_step), miou.ys.push_back(last->miou);
    aacc.xs.push_back(last_step), aacc.ys.push_back(last->pixel_accuracy);
    const std::string none = plot::csv_number(NAN);  // no training values at this row
    rows.push_back({plot::csv_number(last_step), none, none, none, plot::csv_number(last->loss),
                    plot::csv_number(last->top1), plot::csv_number(last->top5), plot::csv_number(last->miou),
                    plot::csv_number(last->pixel_accuracy)});
  }
  std::vector<std::string>& files = out.files;
  fs::create_directories(out_dir);
  plot::csv_write((fs::path(out_dir) / "curves.csv").string(),
                  {"step", "loss_avg", "aux_loss", "lr", "val_loss", "val_top1", "val_top5", "val_miou", "val_aacc"},
                  rows);
  files.push_back("curves.csv");
  // A series whose every value is missing (all null in a diverged run) is left out.
  auto drawable = [](const plot::Series& s) {
    for (size_t i = 0; i < s.xs.size(); ++i)
      if (std::isfinite(s.xs[i]) && std::isfinite(s.ys[i])) return true;
    return false;
  };
  std::vector<plot::Series> losses;
  if (drawable(loss)) losses.push_back(loss);
  if (drawable(val_loss)) losses.push_back(val_loss);
  if (!losses.empty()) {
    plot::line_chart_png((fs::path(out_dir) / "loss_curve.png").string(), losses, "Loss", "step", "loss");
    files.push_back("loss_curve.png");
  }
  std::vector<plot::Series> accuracies;
  if (drawable(top1)) accuracies.push_back(top1);
  if (drawable(top5)) accuracies.push_back(top5);
  if (drawable(miou)) accuracies.push_back(miou);
  if (drawable(aacc)) accuracies.push_back(aacc);
  if (!accuracies.empty()) {
    plot::line_chart_png((fs::path(out_dir) / "accuracy_curve.png").string(), accuracies,
                         "Validation accuracy", "step", "accuracy");
    files.push_back("accuracy_curve.png");
  }
  return out;
}

}  // namespace vimoe::app
