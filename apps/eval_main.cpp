// vimoe-eval: evaluate a checkpoint (accuracy, routing analysis, curves) or count a model's
// parameters and multiply-adds. See `vimoe-eval --help`.
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/common/main_guard.h"
#include "apps/common/report.h"
#include "data/superclasses.h"
#include "models/factory.h"
#include "engine/cpu/host_allocator.h"

namespace {

int params_command(const vimoe::app::RunConfig& cfg, int64_t classes, int64_t channels, bool json) {
  // Built without weights' values mattering: the counts are analytic (ImageModel::size), the
  // model is made for its description and to check the options.
  const auto model = vimoe::models::create_model(cfg.model, cfg.model_options(classes, channels));
  const vimoe::models::ModelSize s = model->size();
  if (json) {
    std::printf("%s\n", nlohmann::json({{"model", model->describe()}, {"total_params", s.total_params},
                                        {"active_params", s.active_params}, {"macs", s.macs}}).dump().c_str());
  } else {
    std::printf("%s\ntotal parameters   %.2fM (%lld)\nactive parameters  %.2fM (%lld)\nMACs per image      %.3fG\n",
                model->describe().c_str(), s.total_params / 1e6, static_cast<long long>(s.total_params),
                s.active_params / 1e6, static_cast<long long>(s.active_params), s.macs / 1e9);
  }
  return 0;
}

struct RunOptions {
  std::string checkpoint, out, device = "auto", data_dir, val_dir;
  int workers = 2;
};

// The run's datasets, from the locations it stored or those given on the command line.
vimoe::app::Datasets open_run_datasets(vimoe::app::RunConfig& cfg, const RunOptions& o) {
  if (!o.data_dir.empty()) cfg.data_dir = o.data_dir;
  if (!o.val_dir.empty()) cfg.val_dir = o.val_dir;
  try {
    return vimoe::app::open_datasets(cfg);
  } catch (const vimoe::Error& e) {
    VIMOE_FAIL(e.what(), "\n(the run's ", cfg.dataset, " data is looked for at --data-dir \"", cfg.data_dir, "\"",
               cfg.dataset == "folder" ? " and --val-dir \"" + cfg.val_dir + "\"" : std::string(),
               "; give --data-dir / --val-dir to say where it is now)");
  }
}

int run_command(RunOptions o) {
  namespace fs = std::filesystem;
  const vimoe::Device device = vimoe::app::pick_device(o.device);
  vimoe::app::LoadedRun run = vimoe::app::load_run(o.checkpoint, device);
  const vimoe::app::Datasets data = open_run_datasets(run.config, o);
  vimoe::data::LoaderOptions opts;
  opts.batch_size = run.config.batch_size;
  opts.shuffle = false;
  opts.num_workers = o.workers;
  opts.transform = vimoe::app::eval_transform(run.config, data, run.model->input().image_size, run.model->input().channels);
  vimoe::data::Loader loader(data.val, opts);
  if (o.out.empty()) o.out = (fs::path(o.checkpoint).parent_path() / "eval").string();
  // The super-classes the run trained its single router with: the map it wrote beside its
  // checkpoints, else its --superclasses again.
  std::optional<vimoe::data::SuperclassMap> groups;
  const fs::path stored_groups = fs::path(o.checkpoint).parent_path() / "superclasses.json";
  if (!run.config.superclasses.empty())
    groups = fs::exists(stored_groups) ? vimoe::data::read_superclasses(stored_groups.string(), data.val->class_names())
                                       : vimoe::app::superclasses(run.config, data);
  const vimoe::app::EvalResult r =
      vimoe::app::evaluate(*run.model, loader, device, true, vimoe::app::autocast_type(run.config.precision, device),
                           groups ? &groups->group_of : nullptr);
  for (const vimoe::data::SkippedSample& s : r.skipped)
    std::fprintf(stderr, "warning: skipping an unreadable validation image: %s\n", s.reason.c_str());
  nlohmann::json summary =
      vimoe::app::write_eval_report(r, data.val->class_names(), *run.model, o.out);
  const fs::path metrics = fs::path(o.checkpoint).parent_path() / "metrics.jsonl";
  // A run stopped before its first log line has an empty file: no curves, no error.
  if (fs::exists(metrics) && fs::file_size(metrics) > 0) {
    const vimoe::app::Curves curves =
        vimoe::app::write_curves(metrics.string(), o.out, vimoe::app::ValidationPoint{run.step, r.loss, r.top1, r.top5});
    for (const std::string& f : curves.files) summary["files"].push_back(f);
    if (curves.missing_values > 0)
      std::printf("%s: %lld values are null or not finite (a diverged run?); the curves have gaps there\n",
                  metrics.c_str(), static_cast<long long>(curves.missing_values));
  }
  std::printf("top-1 %.2f%%  top-5 %.2f%%  loss %.4f on %lld images", 100 * r.top1, 100 * r.top5, r.loss,
              static_cast<long long>(r.images));
  if (!r.skipped.empty())
    std::printf(" (%zu unreadable image%s skipped)", r.skipped.size(), r.skipped.size() == 1 ? "" : "s");
  std::printf("\n");
  if (r.router_accuracy >= 0)
    std::printf("router accuracy (the single router's choice is the label's super-class, %lld-way): %.2f%%\n",
                static_cast<long long>(groups->groups()), 100 * r.router_accuracy);
  for (size_t c = 0; c < r.class_total.size(); ++c)
    std::printf("  %-14s %6.2f%%\n", data.val->class_names()[c].c_str(),
                r.class_total[c] ? 100.0 * r.class_correct[c] / r.class_total[c] : 0.0);
  const nlohmann::json& size = summary["model"];
  std::printf("model: %.2fM parameters, %.2fM active per image, %.3fG multiply-adds per image\n",
              size["total_params"].get<double>() / 1e6, size["active_params"].get<double>() / 1e6,
              size["macs"].get<double>() / 1e9);
  if (summary.contains("routing_degree"))
    std::printf("routing degree C(N,k)^L = %.0f; distinct expert paths taken by the images: %lld\n",
                summary["routing_degree"].get<double>(), static_cast<long long>(summary["distinct_paths_used"]));
  std::printf("results in %s:\n", o.out.c_str());
  for (const auto& f : summary["files"]) std::printf("  %s\n", (fs::path(o.out) / f.get<std::string>()).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  vimoe::cpu::tune_host_allocator();
  CLI::App app{"vimoe-eval: evaluate checkpoints and count model sizes"};
  app.require_subcommand(1);

  auto* params = app.add_subcommand("params", "parameters (total, active) and MACs per image of a model");
  vimoe::app::RunConfig cfg;
  int64_t classes = 1000, channels = 3;
  bool json = false;
  std::string names;
  for (const vimoe::models::ModelEntry& e : vimoe::models::model_names()) names += (names.empty() ? "" : ", ") + e.name;
  params->add_option("--preset,--model", cfg.model, names)->capture_default_str();
  params->add_option("--image-size", cfg.image_size, "input side (0: the preset's)");
  params->add_option("--width", cfg.width, "ViT: embedding width; ConvNeXt: the first stage's (0: the preset's)");
  params->add_option("--depth", cfg.depth, "ViT blocks (0: the preset's)");
  params->add_option("--heads", cfg.heads, "ViT attention heads (0: the preset's)");
  params->add_option("--patch-size", cfg.patch_size, "ViT patch / ConvNeXt stem side (0: the preset's)");
  params->add_option("--mlp-ratio", cfg.mlp_ratio, "MLP hidden size / width (0: the preset's)");
  params->add_option("--registers", cfg.registers, "ViT register tokens (-1: the preset's)");
  params->add_option("--num-classes", classes, "head classes (0: no head)")->capture_default_str();
  params->add_option("--channels", channels)->capture_default_str();
  params->add_option("--experts", cfg.experts);
  params->add_option("--moe-last", cfg.moe_last);
  params->add_option("--moe-blocks", cfg.moe_blocks)->delimiter(',');
  params->add_flag("--moe-every-second", cfg.moe_every_second);
  params->add_option("--moe-placement", cfg.moe_placement, "every2, last2, last3, stage");
  params->add_option("--top-k", cfg.top_k)->capture_default_str();
  params->add_flag("--shared-expert", cfg.shared_expert);
  params->add_option("--routing", cfg.routing)->capture_default_str();
  params->add_option("--head", cfg.head)->capture_default_str();
  params->add_flag("--json", json, "one JSON object: total_params, active_params, macs");

  auto* run = app.add_subcommand("run", "evaluate a checkpoint: accuracy, routing heatmaps, expert load, curves");
  RunOptions ro;
  run->add_option("checkpoint", ro.checkpoint, "a vimoe-train checkpoint (.safetensors)")->required();
  run->add_option("--out", ro.out, "output directory (default: <checkpoint dir>/eval)");
  run->add_option("--device", ro.device)->capture_default_str();
  run->add_option("--workers", ro.workers)->capture_default_str();
  run->add_option("--data-dir", ro.data_dir, "the dataset's location, when not where the run stored it");
  run->add_option("--val-dir", ro.val_dir, "folder datasets: the validation root, when not where the run stored it");

  auto* curves = app.add_subcommand("curves", "loss and accuracy curves (PNG + CSV) from a run's metrics.jsonl");
  std::string metrics, curves_out = ".";
  curves->add_option("metrics", metrics, "metrics.jsonl")->required();
  curves->add_option("--out", curves_out)->capture_default_str();

  return vimoe::app::guarded_main("vimoe-eval", [&] {
    CLI11_PARSE(app, argc, argv);
    if (params->parsed()) return params_command(cfg, classes, channels, json);
    if (run->parsed()) return run_command(ro);
    const vimoe::app::Curves curves = vimoe::app::write_curves(metrics, curves_out);
    for (const std::string& f : curves.files) std::printf("%s\n", (std::filesystem::path(curves_out) / f).c_str());
    if (curves.missing_values > 0)
      std::fprintf(stderr, "%s: %lld values are null or not finite (a diverged run?); the curves have gaps there\n",
                   metrics.c_str(), static_cast<long long>(curves.missing_values));
    return 0;
  });
}
