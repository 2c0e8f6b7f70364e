// vimoe-eval: evaluate a checkpoint (accuracy, routing analysis, curves) or count a model's
// parameters and multiply-adds. See `vimoe-eval --help`.
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/common/main_guard.h"
#include "apps/common/report.h"
#include "apps/common/superclass_report.h"
#include "data/superclasses.h"
#include "models/factory.h"
#include "models/routing_analysis.h"
#include "engine/cpu/host_allocator.h"

namespace {

int params_command(const vimoe::app::RunConfig& cfg, int64_t classes, int64_t channels, bool json,
                   std::optional<double> routed_experts) {
  // Built without weights' values mattering: the counts are analytic (ImageModel::size), the
  // model is made for its description and to check the options.
  const auto model = vimoe::models::create_model(cfg.model, cfg.model_options(classes, channels));
  const vimoe::models::ModelSize s = model->size();
  const bool per_token = model->moe_config().enabled() && model->routing_unit() != "images";
  VIMOE_CHECK(!routed_experts || per_token, "--routed-experts-per-image counts the union of the experts an image's "
              "tokens reach: it needs an MoE model with token or pixel routing (found ", model->describe(), ")");
  std::optional<double> union_active;
  if (routed_experts)
    union_active = vimoe::models::activated_params_at(s, model->moe_config().experts, *routed_experts);
  if (json) {
    nlohmann::json j{{"model", model->describe()}, {"total_params", s.total_params},
                     {"active_params", s.active_params}, {"macs", s.macs}, {"flops", 2 * s.macs}};
    if (union_active) j["activated_params_per_image"] = *union_active;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%s\ntotal parameters   %.2fM (%lld)\nactive parameters  %.2fM (%lld)%s\nMACs per image      %.3fG "
              "(%.1fM FLOPs counting a multiply-add as 2)\n",
              model->describe().c_str(), s.total_params / 1e6, static_cast<long long>(s.total_params),
              s.active_params / 1e6, static_cast<long long>(s.active_params),
              per_token ? " per token (its top-k experts)" : "", s.macs / 1e9, 2 * s.macs / 1e6);
  if (union_active)
    std::printf("per image          %.2fM activated (the union of %.2f routed experts over the %zu MoE layers)\n",
                *union_active / 1e6, *routed_experts, s.expert_params.size());
  else if (per_token)
    std::printf("per image: the union of the experts its %s reach, up to %.2fM when they reach every expert; "
                "--routed-experts-per-image R (vimoe-eval run measures R) counts it\n",
                model->routing_unit().c_str(), s.total_params / 1e6);
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

// A checkpoint evaluated on its run's validation set, with the super-classes it trained its
// single router with (the map it wrote beside its checkpoints, else its --superclasses again).
struct EvaluatedRun {
  vimoe::app::LoadedRun run;
  vimoe::app::Datasets data;
  std::optional<vimoe::data::SuperclassMap> groups;
  vimoe::app::EvalResult result;
};

EvaluatedRun evaluate_checkpoint(const RunOptions& o) {
  namespace fs = std::filesystem;
  const vimoe::Device device = vimoe::app::pick_device(o.device);
  EvaluatedRun e{vimoe::app::load_run(o.checkpoint, device), {}, std::nullopt, {}};
  e.data = open_run_datasets(e.run.config, o);
  vimoe::data::Loader loader(e.data.val,
                             vimoe::app::eval_loader_options(e.run.config, e.data, e.run.model->input(), o.workers));
  const auto autocast = vimoe::app::autocast_type(e.run.config.precision, device);
  if (e.run.config.segmentation()) {
    e.result = vimoe::app::evaluate_segmentation(*e.run.model, loader, device, true, autocast,
                                                 vimoe::app::seg_inference(e.run.config, e.run.model->input()));
    for (const vimoe::data::SkippedSample& s : e.result.skipped)
      std::fprintf(stderr, "warning: skipping an unreadable validation image: %s\n", s.reason.c_str());
    return e;
  }
  const fs::path stored_groups = fs::path(o.checkpoint).parent_path() / "superclasses.json";
  if (!e.run.config.superclasses.empty())
    e.groups = fs::exists(stored_groups)
                   ? vimoe::data::read_superclasses(stored_groups.string(), e.data.val->class_names())
                   : vimoe::app::superclasses(e.run.config, e.data);
  e.result = vimoe::app::evaluate(*e.run.model, loader, device, true, autocast,
                                  e.groups ? &e.groups->group_of : nullptr);
  for (const vimoe::data::SkippedSample& s : e.result.skipped)
    std::fprintf(stderr, "warning: skipping an unreadable validation image: %s\n", s.reason.c_str());
  return e;
}

// The evaluation as the last point of the run's curves.
vimoe::app::ValidationPoint validation_point(int64_t step, const vimoe::app::EvalResult& r, const nlohmann::json& summary) {
  vimoe::app::ValidationPoint p{step, r.loss};
  if (r.pixels) {
    p.miou = summary["miou"].get<double>();
    p.pixel_accuracy = summary["pixel_accuracy"].get<double>();
  } else {
    p.top1 = r.top1;
    p.top5 = r.top5;
  }
  return p;
}

int run_command(RunOptions o) {
  namespace fs = std::filesystem;
  if (o.out.empty()) o.out = (fs::path(o.checkpoint).parent_path() / "eval").string();
  const EvaluatedRun e = evaluate_checkpoint(o);
  const vimoe::app::LoadedRun& run = e.run;
  const vimoe::app::Datasets& data = e.data;
  const vimoe::app::EvalResult& r = e.result;
  nlohmann::json summary =
      vimoe::app::write_eval_report(r, data.val->class_names(), *run.model, o.out);
  const fs::path metrics = fs::path(o.checkpoint).parent_path() / "metrics.jsonl";
  // A run stopped before its first log line has an empty file: no curves, no error.
  if (fs::exists(metrics) && fs::file_size(metrics) > 0) {
    const vimoe::app::Curves curves =
        vimoe::app::write_curves(metrics.string(), o.out, validation_point(run.step, r, summary));
    for (const std::string& f : curves.files) summary["files"].push_back(f);
    if (curves.missing_values > 0)
      std::printf("%s: %lld values are null or not finite (a diverged run?); the curves have gaps there\n",
                  metrics.c_str(), static_cast<long long>(curves.missing_values));
  }
  if (r.pixels)
    std::printf("mIoU %.2f%%  mAcc %.2f%%  aAcc %.2f%%  loss %.4f on %lld images",
                100 * summary["miou"].get<double>(), 100 * summary["mean_accuracy"].get<double>(),
                100 * summary["pixel_accuracy"].get<double>(), r.loss, static_cast<long long>(r.images));
  else
    std::printf("top-1 %.2f%%  top-5 %.2f%%  loss %.4f on %lld images", 100 * r.top1, 100 * r.top5, r.loss,
                static_cast<long long>(r.images));
  if (!r.skipped.empty())
    std::printf(" (%zu unreadable image%s skipped)", r.skipped.size(), r.skipped.size() == 1 ? "" : "s");
  std::printf("\n");
  if (r.router_accuracy >= 0)
    std::printf("router accuracy (the single router's choice is the label's super-class, %lld-way): %.2f%%\n",
                static_cast<long long>(e.groups->groups()), 100 * r.router_accuracy);
  if (r.pixels) {
    std::printf("IoU per class:\n");
    for (const std::string& c : data.val->class_names()) {
      const nlohmann::json& iou = summary["per_class_iou"][c];
      if (iou.is_null()) std::printf("  %-14s    n/a (neither labelled nor predicted)\n", c.c_str());
      else std::printf("  %-14s %6.2f%%\n", c.c_str(), 100 * iou.get<double>());
    }
  }
  for (size_t c = 0; c < r.class_total.size(); ++c)
    std::printf("  %-14s %6.2f%%\n", data.val->class_names()[c].c_str(),
                r.class_total[c] ? 100.0 * r.class_correct[c] / r.class_total[c] : 0.0);
  const nlohmann::json& size = summary["model"];
  const std::string unit = run.model->routing_unit();
  std::printf("model: %.2fM parameters, %.2fM active per %s, %.3fG multiply-adds per image\n",
              size["total_params"].get<double>() / 1e6, size["active_params"].get<double>() / 1e6,
              unit == "images" ? "image" : unit == "tokens" ? "token (its top-k experts)" : "pixel (its top-k experts)",
              size["macs"].get<double>() / 1e9);
  if (summary.contains("routed_experts_per_image"))
    std::printf("%s routing: %.2f routed experts per image over the %zu MoE layers (the union of the experts its %s "
                "reach), %.2fM activated parameters per image\n",
                unit == "pixels" ? "pixel" : "token", summary["routed_experts_per_image"].get<double>(),
                r.moe_blocks.size(), unit.c_str(), summary["activated_params_per_image"].get<double>() / 1e6);
  if (summary.contains("routing_degree"))
    std::printf("routing degree C(N,k)^L = %.0f; distinct expert paths taken by the images: %lld\n",
                summary["routing_degree"].get<double>(), static_cast<long long>(summary["distinct_paths_used"]));
  if (!summary["moe_layers"].empty()) {
    std::printf("routing specialisation (normalised mutual information of class and expert) per MoE layer:");
    for (const auto& l : summary["moe_layers"])
      if (l["class_expert_nmi"].is_null()) std::printf("  block %d n/a", l["block"].get<int>());
      else std::printf("  block %d %.3f", l["block"].get<int>(), l["class_expert_nmi"].get<double>());
    std::printf("\n");
  }
  std::printf("results in %s:\n", o.out.c_str());
  for (const auto& f : summary["files"]) std::printf("  %s\n", (fs::path(o.out) / f.get<std::string>()).c_str());
  return 0;
}

// vimoe-eval superclasses: the run's confusion graph clustered into --groups super-classes.
int superclasses_command(RunOptions o, int64_t groups) {
  namespace fs = std::filesystem;
  if (o.out.empty()) o.out = (fs::path(o.checkpoint).parent_path() / "superclasses").string();
  const EvaluatedRun e = evaluate_checkpoint(o);
  const std::vector<std::string>& classes = e.data.val->class_names();
  VIMOE_CHECK(groups >= 1 && groups <= static_cast<int64_t>(classes.size()), "--groups must be between 1 and the "
              "dataset's ", classes.size(), " classes, found ", groups);
  const vimoe::data::SuperclassMap map =
      vimoe::app::write_superclass_report(e.result.confusion, classes, groups, o.out);
  std::printf("top-1 %.2f%% on %lld images; %lld super-classes from the confusion graph:\n", 100 * e.result.top1,
              static_cast<long long>(e.result.images), static_cast<long long>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    std::printf("  %lld:", static_cast<long long>(g));
    for (size_t c = 0; c < classes.size(); ++c)
      if (map.group_of[c] == g) std::printf(" %s", classes[c].c_str());
    std::printf("\n");
  }
  std::printf("results in %s:\n", o.out.c_str());
  for (const char* f : {"superclasses.json", "superclasses.csv", "superclasses.png", "confusion.csv", "confusion.png"})
    std::printf("  %s\n", (fs::path(o.out) / f).c_str());
  std::printf("train a Mobile V-MoE on them with: vimoe-train ... --experts %lld --single-router --superclasses %s\n",
              static_cast<long long>(groups), (fs::path(o.out) / "superclasses.json").c_str());
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
  params->add_option("--task", cfg.task, "classification or segmentation (the per-patch head; --image-size may then "
                     "be any size, padded to the patch grid: 512 is DINOv2's 37 x 37 grid)")
      ->check(CLI::IsMember({"classification", "segmentation"}));
  params->add_option("--gate", cfg.gate, "linear, cosine, l2")->capture_default_str();
  params->add_option("--gate-dim", cfg.gate_dim, "cosine / l2 projection width (0: min(width / 2, 256))");
  params->add_flag("--single-router", cfg.single_router, "Mobile V-MoE: one router for every MoE layer");
  std::optional<double> routed_experts;
  params->add_option("--routed-experts-per-image", routed_experts,
                     "token / pixel routing: distinct routed experts per image summed over the MoE layers (as vimoe-eval "
                     "run reports; ViMoE's Table 5 gives 14.3), for the activated parameters per image");
  params->add_flag("--json", json, "one JSON object: total_params, active_params, macs, flops (2 x macs)");

  auto* run = app.add_subcommand("run", "evaluate a checkpoint: accuracy, routing heatmaps, expert load, curves");
  RunOptions ro;
  run->add_option("checkpoint", ro.checkpoint, "a vimoe-train checkpoint (.safetensors)")->required();
  run->add_option("--out", ro.out, "output directory (default: <checkpoint dir>/eval)");
  run->add_option("--device", ro.device)->capture_default_str();
  run->add_option("--workers", ro.workers)->capture_default_str();
  run->add_option("--data-dir", ro.data_dir, "the dataset's location, when not where the run stored it");
  run->add_option("--val-dir", ro.val_dir, "folder datasets: the validation root, when not where the run stored it");

  auto* sc = app.add_subcommand("superclasses", "super-classes from a trained model's confusion graph (for "
                                "vimoe-train --superclasses): JSON map, confusion matrix and grouping as PNG + CSV");
  RunOptions so;
  int64_t groups = 0;
  sc->add_option("checkpoint", so.checkpoint, "a vimoe-train checkpoint of a (dense) model")->required();
  sc->add_option("--groups", groups, "how many super-classes (the Mobile V-MoE's experts)")->required();
  sc->add_option("--out", so.out, "output directory (default: <checkpoint dir>/superclasses)");
  sc->add_option("--device", so.device)->capture_default_str();
  sc->add_option("--workers", so.workers)->capture_default_str();
  sc->add_option("--data-dir", so.data_dir, "the dataset's location, when not where the run stored it");
  sc->add_option("--val-dir", so.val_dir, "folder datasets: the validation root, when not where the run stored it");

  auto* curves = app.add_subcommand("curves", "loss and accuracy curves (PNG + CSV) from a run's metrics.jsonl");
  std::string metrics, curves_out = ".";
  curves->add_option("metrics", metrics, "metrics.jsonl")->required();
  curves->add_option("--out", curves_out)->capture_default_str();

  return vimoe::app::guarded_main("vimoe-eval", [&] {
    CLI11_PARSE(app, argc, argv);
    if (params->parsed()) {
      if (cfg.task == "auto") cfg.task = "classification";
      vimoe::app::apply_task_defaults(cfg);
      return params_command(cfg, classes, channels, json, routed_experts);
    }
    if (run->parsed()) return run_command(ro);
    if (sc->parsed()) return superclasses_command(so, groups);
    const vimoe::app::Curves curves = vimoe::app::write_curves(metrics, curves_out);
    for (const std::string& f : curves.files) std::printf("%s\n", (std::filesystem::path(curves_out) / f).c_str());
    if (curves.missing_values > 0)
      std::fprintf(stderr, "%s: %lld values are null or not finite (a diverged run?); the curves have gaps there\n",
                   metrics.c_str(), static_cast<long long>(curves.missing_values));
    return 0;
  });
}
