#include "apps/common/run_config.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "apps/common/config_file.h"
#include "engine/error.h"
#include "models/factory.h"

namespace vimoe::app {

nlohmann::json RunConfig::model_options(int64_t num_classes, int64_t in_channels) const {
  nlohmann::json j = {{"num_classes", num_classes}, {"in_channels", in_channels}};
  auto set_if = [&j](const char* key, auto value, bool given) {
    if (given) j[key] = value;
  };
  set_if("image_size", image_size, image_size > 0);
  set_if("patch_size", patch_size, patch_size > 0);
  set_if("width", width, width > 0);
  set_if("depth", depth, depth > 0);
  set_if("heads", heads, heads > 0);
  set_if("mlp_ratio", mlp_ratio, mlp_ratio > 0);
  set_if("registers", registers, registers >= 0);
  set_if("drop_path", drop_path, drop_path > 0);
  VIMOE_CHECK(layer_scale >= 0 || layer_scale == kNoLayerScale, "--layer-scale must be none, 0 (the "
              "preset's) or a positive initial value, found ", layer_scale);
  if (layer_scale > 0) j["layer_scale"] = layer_scale;
  if (layer_scale == kNoLayerScale) j["layer_scale"] = 0.0;
  VIMOE_CHECK(head == "cls" || head == "cls+mean" || head == "patches",
              "--head must be cls, cls+mean or patches (segmentation), found ", head);
  VIMOE_CHECK((head == "patches") == segmentation(), "--head ", head, " does not fit the ", resolved_task(),
              " task", segmentation() ? " (segmentation needs the per-patch head, patches)" : "");
  set_if("head", head, head != "cls");
  set_if("pretrained", init, init != "scratch");
  const nlohmann::json moe = moe_options();
  if (!moe.is_null()) j["moe"] = moe;
  return j;
}

nlohmann::json RunConfig::moe_options() const {
  VIMOE_CHECK(experts >= 0, "--experts must be >= 0 (0: a dense model), found ", experts);
  if (experts == 0) {
    const char* moe_option = moe_last > 0             ? "--moe-last"
                             : !moe_blocks.empty()    ? "--moe-blocks"
                             : moe_every_second       ? "--moe-every-second"
                             : !moe_placement.empty() ? "--moe-placement"
                             : shared_expert          ? "--shared-expert"
                             : top_k != 1             ? "--top-k"
                             : gate != "linear"       ? "--gate"
                             : gate_dim != 0          ? "--gate-dim"
                             : renormalize_gates      ? "--renormalize-gates"
                             : capacity_factor != 0   ? "--capacity-factor"
                             : bpr                    ? "--bpr"
                             : balance != "switch"    ? "--balance"
                             : single_router          ? "--single-router"
                             : !superclasses.empty()  ? "--superclasses"
                                                      : nullptr;
    VIMOE_CHECK(moe_option == nullptr, moe_option, " needs --experts > 0; with --experts 0 the model is dense");
    return nullptr;
  }
  VIMOE_CHECK(top_k >= 1 && top_k <= experts, "--top-k must be between 1 and the number of experts (", experts,
              "), found ", top_k);
  VIMOE_CHECK(routing == "image" || routing == "token", "--routing must be image or token, found ", routing);
  const int choices = (moe_last > 0) + (!moe_blocks.empty()) + moe_every_second + (!moe_placement.empty());
  VIMOE_CHECK(choices == 1, "an MoE model needs exactly one of --moe-last, --moe-blocks, --moe-every-second, "
              "--moe-placement; found ", choices);
  VIMOE_CHECK(capacity_factor >= 0, "--capacity-factor must be >= 0 (0: dropless), found ", capacity_factor);
  VIMOE_CHECK(!bpr || capacity_factor > 0, "--bpr orders rows for an expert capacity; it needs --capacity-factor > 0");
  VIMOE_CHECK(gate_dim >= 0, "--gate-dim must be >= 0 (0: the gate's default), found ", gate_dim);
  VIMOE_CHECK(!single_router || routing == "image", "--single-router routes whole images; it needs --routing image");
  VIMOE_CHECK(superclasses.empty() || single_router, "--superclasses trains the single router; it needs "
              "--single-router");
  nlohmann::json m = {{"experts", experts},
                      {"top_k", top_k},
                      {"shared_expert", shared_expert},
                      {"routing", routing},
                      {"aux_alpha", aux_alpha},
                      {"balance", balance},
                      {"gate", gate},
                      {"gate_dim", gate_dim},
                      {"renormalize", renormalize_gates},
                      {"capacity_factor", capacity_factor},
                      {"bpr", bpr},
                      {"single_router", single_router}};
  if (moe_last > 0) m["last"] = moe_last;
  else if (!moe_blocks.empty()) m["blocks"] = moe_blocks;
  else if (moe_every_second) m["placement"] = "every2";
  else m["placement"] = moe_placement;
  return m;
}

void RunConfig::make_paths_absolute() {
  auto absolute = [](std::string& p) {
    if (!p.empty()) p = std::filesystem::absolute(p).lexically_normal().string();
  };
  absolute(data_dir);
  absolute(val_dir);
  if (init != "scratch") absolute(init);
  if (!superclasses.empty() && superclasses != "coarse" && superclasses != "random") absolute(superclasses);
}

void RunConfig::validate() const {
  auto at_least = [](const char* option, double value, double low) {
    VIMOE_CHECK(value >= low, option, " must be >= ", low, ", found ", value);
  };
  VIMOE_CHECK(lr > 0, "--lr must be > 0, found ", lr);
  at_least("--min-lr", min_lr, 0);
  VIMOE_CHECK(min_lr <= lr, "--min-lr (", min_lr, ") must not exceed --lr (", lr, ")");
  at_least("--weight-decay", weight_decay, 0);
  at_least("--clip-grad", clip_grad, 0);
  at_least("--warmup-epochs", warmup_epochs, 0);
  at_least("--aux-alpha", aux_alpha, 0);
  at_least("--superclass-weight", superclass_weight, 0);
  at_least("--mixup", mixup, 0);
  at_least("--cutmix", cutmix, 0);
  at_least("--max-steps", static_cast<double>(max_steps), 0);
  at_least("--checkpoint-every", static_cast<double>(checkpoint_every), 0);
  at_least("--workers", workers, 0);
  at_least("--max-bad-steps", static_cast<double>(max_bad_steps), 0);
  at_least("--iterations", static_cast<double>(iterations), 0);
  at_least("--warmup-iters", static_cast<double>(warmup_iters), 0);
  at_least("--val-every", static_cast<double>(val_every), 0);
  at_least("--seg-stride", static_cast<double>(seg_stride), 0);
  VIMOE_CHECK(task == "auto" || task == "classification" || task == "segmentation",
              "--task must be auto, classification or segmentation, found ", task);
  const bool seg_data = dataset == "camvid" || dataset == "ade20k";
  VIMOE_CHECK(seg_data == segmentation(), "--task ", task, " does not fit --dataset ", dataset,
              seg_data ? " (a segmentation dataset)" : " (a classification dataset)");
  VIMOE_CHECK(seg_eval == "whole" || seg_eval == "slide", "--seg-eval must be whole or slide, found ", seg_eval);
  VIMOE_CHECK(seg_scale.empty() || (seg_scale.size() == 2 && seg_scale[0] > 0 && seg_scale[1] > 0),
              "--seg-scale must be two positive sides LONG,SHORT, found ", seg_scale.size(), " values");
  VIMOE_CHECK(seg_ratio.size() == 2 && seg_ratio[0] > 0 && seg_ratio[0] <= seg_ratio[1],
              "--seg-ratio must be LOW,HIGH with 0 < LOW <= HIGH");
  VIMOE_CHECK(cat_max_ratio > 0 && cat_max_ratio <= 1, "--cat-max-ratio must be in (0, 1], found ", cat_max_ratio);
  VIMOE_CHECK(!segmentation() || (mixup == 0 && cutmix == 0), "--mixup and --cutmix mix image labels; "
              "segmentation has label maps (set them to 0)");
  VIMOE_CHECK(label_smoothing >= 0 && label_smoothing < 1, "--label-smoothing must be in [0, 1), found ",
              label_smoothing);
  VIMOE_CHECK(drop_path >= 0 && drop_path < 1, "--drop-path must be in [0, 1), found ", drop_path);
  VIMOE_CHECK(layer_decay > 0 && layer_decay <= 1, "--layer-decay must be in (0, 1] (1: off), found ", layer_decay);
  VIMOE_CHECK(epochs > 0, "--epochs must be > 0, found ", epochs);
  VIMOE_CHECK(batch_size > 0, "--batch-size must be > 0, found ", batch_size);
  VIMOE_CHECK(accum_steps > 0, "--accum-steps must be > 0, found ", accum_steps);
  VIMOE_CHECK(log_every > 0, "--log-every must be > 0, found ", log_every);
}

std::string RunConfig::resolved_task() const {
  if (task != "auto") return task;
  return dataset == "camvid" || dataset == "ade20k" ? "segmentation" : "classification";
}

std::pair<int64_t, int64_t> RunConfig::segmentation_scale() const {
  if (seg_scale.size() == 2) return {seg_scale[0], seg_scale[1]};
  if (dataset == "ade20k") return {2048, 512};
  return {480, 360};  // CamVid's own size
}

void apply_task_defaults(RunConfig& cfg) {
  auto unset = [&cfg](const char* field, bool at_default) {
    return cfg.given.empty() ? at_default : cfg.given.count(field) == 0;
  };
  if (cfg.segmentation()) {
    if (unset("head", cfg.head == "cls")) cfg.head = "patches";
    if (unset("aux_alpha", cfg.aux_alpha == 0.01)) cfg.aux_alpha = 0.001;
    if (unset("label_smoothing", cfg.label_smoothing == 0.1)) cfg.label_smoothing = 0;
  }
  cfg.task = cfg.resolved_task();
}

void add_options(CLI::App& app, RunConfig& c) {
  app.set_config("--config", "", "TOML file with any of these options (command-line values win)");
  check_config_strictly(app);
  app.parse_complete_callback([&app, &c] {
    for (const std::string& name : option_names(app)) {
      if (name == "config" || app.count("--" + name) == 0) continue;
      std::string field = name == "no-final-eval" ? "final_eval" : name;
      std::replace(field.begin(), field.end(), '-', '_');
      c.given.insert(field);
    }
  });
  auto* g = app.add_option_group("model");
  std::string names;
  for (const models::ModelEntry& e : models::model_names()) names += (names.empty() ? "" : ", ") + e.name;
  g->add_option("--model", c.model, "model: " + names)->capture_default_str();
  g->add_option("--image-size", c.image_size, "input side (0: the preset's)");
  g->add_option("--patch-size", c.patch_size, "patch side (0: the preset's)");
  g->add_option("--width", c.width, "embedding width (0: the preset's)");
  g->add_option("--depth", c.depth, "blocks (0: the preset's)");
  g->add_option("--heads", c.heads, "attention heads (0: the preset's)");
  g->add_option("--mlp-ratio", c.mlp_ratio, "FFN hidden size / width (0: the preset's)");
  g->add_option("--registers", c.registers, "register tokens (-1: the preset's)");
  g->add_option("--init", c.init, "scratch, or a DINOv2 .safetensors file")->capture_default_str();
  g->add_option("--experts", c.experts, "experts per MoE layer (0: dense)")->capture_default_str();
  g->add_option("--moe-last", c.moe_last, "MoE in the last L blocks");
  g->add_option("--moe-blocks", c.moe_blocks, "MoE in these blocks")->delimiter(',');
  g->add_flag("--moe-every-second", c.moe_every_second, "MoE in every second block");
  g->add_option("--moe-placement", c.moe_placement,
                "a named placement (the Sweet-spot paper's): every2; last2 (ViT: the last two of every2; ConvNeXt: "
                "the final block of each of the last two stages); last3, stage (ConvNeXt)");
  g->add_option("--top-k", c.top_k, "experts per routed row")->capture_default_str();
  g->add_flag("--shared-expert", c.shared_expert, "add a dense shared expert to each MoE layer");
  g->add_option("--routing", c.routing, "image (CLS decides) or token")->capture_default_str();
  g->add_option("--aux-alpha", c.aux_alpha, "load-balancing loss weight")->capture_default_str();
  g->add_option("--balance", c.balance,
                "load-balancing loss: switch (alpha N sum f_i P_i), importance_load (Shazeer's importance + "
                "load losses with V-MoE's router noise), none")
      ->check(CLI::IsMember({"switch", "importance_load", "none"}))
      ->capture_default_str();
  g->add_option("--gate", c.gate,
                "router gate: linear, cosine (projection, then cosine similarity to learned expert codes with a "
                "learned temperature), l2 (the same with negative Euclidean distance)")
      ->check(CLI::IsMember({"linear", "cosine", "l2"}))
      ->capture_default_str();
  g->add_option("--gate-dim", c.gate_dim, "cosine / l2 gates' projection width (0: min(width / 2, 256))");
  g->add_flag("--renormalize-gates", c.renormalize_gates, "renormalise the top-k gates to sum to 1 (off: the "
              "softmax probabilities as they are, as the papers' equations)");
  g->add_option("--capacity-factor", c.capacity_factor,
                "expert capacity ceil(C k rows / N); rows beyond it are dropped (keep the residual); 0: dropless")
      ->capture_default_str();
  g->add_flag("--bpr", c.bpr, "Batch Prioritized Routing: rows claim capacity by their top gate value");
  g->add_flag("--single-router", c.single_router,
              "Mobile V-MoE: one per-image router before the first MoE block decides for every MoE layer");
  g->add_option("--superclasses", c.superclasses,
                "train the single router to predict super-classes: coarse (CIFAR-100's 20), random (a fixed random "
                "map, one group per expert), or a JSON file {\"classes\": {name: group}} (vimoe-eval superclasses)");
  g->add_option("--superclass-weight", c.superclass_weight, "lambda of the super-class loss")->capture_default_str();
  g->add_option("--head", c.head, "cls, cls+mean, or patches (segmentation: a linear layer per patch token)")
      ->capture_default_str();
  g->add_option("--drop-path", c.drop_path, "stochastic depth rate")->capture_default_str();
  g->add_option("--layer-scale", c.layer_scale,
                "LayerScale init; 0: the preset's (vit_s14 and larger 1, vit_tiny 0.1); none: no "
                "LayerScale (timm's ViT default)")
      ->transform(CLI::Transformer(std::map<std::string, std::string>{
          {"none", std::to_string(RunConfig::kNoLayerScale)}}));
  auto* d = app.add_option_group("data");
  d->add_option("--task", c.task, "auto (from the dataset), classification or segmentation")
      ->check(CLI::IsMember({"auto", "classification", "segmentation"}))
      ->capture_default_str();
  d->add_option("--dataset", c.dataset, "fashion-mnist, mnist, cifar10, cifar100, folder; segmentation: camvid, "
                "ade20k")->capture_default_str();
  d->add_option("--data-dir", c.data_dir, "dataset location (folder: the training root)");
  d->add_option("--val-dir", c.val_dir, "folder datasets: the validation root");
  d->add_option("--normalize", c.normalize,
                "per-channel mean/std: auto (the dataset's own; ImageNet's for folders and DINOv2 "
                "weights), imagenet, cifar10, cifar100, mnist, fashion-mnist")
      ->capture_default_str();
  d->add_option("--crop-padding", c.crop_padding,
                "small images' random shift (crop after padding by 1/8 of the side): zero or reflect")
      ->check(CLI::IsMember({"zero", "reflect"}))
      ->capture_default_str();
  d->add_option("--workers", c.workers, "loader threads")->capture_default_str();
  d->add_option("--mixup", c.mixup, "mixup Beta alpha (0: off)")->capture_default_str();
  d->add_option("--cutmix", c.cutmix, "cutmix Beta alpha (0: off)")->capture_default_str();
  d->add_option("--val-split", c.val_split, "segmentation: the validation split (camvid: val or test; ade20k: "
                "validation)");
  d->add_option("--seg-scale", c.seg_scale, "segmentation: the keep-ratio scale LONG,SHORT images are resized to "
                "(training: times the ratio; default camvid 480,360, ade20k 2048,512)")->delimiter(',');
  d->add_option("--seg-ratio", c.seg_ratio, "segmentation: training rescale ratio range LOW,HIGH")
      ->delimiter(',')->capture_default_str();
  d->add_option("--cat-max-ratio", c.cat_max_ratio, "segmentation: redraw a crop (up to 10 times) while one class "
                "covers more than this share of it")->capture_default_str();
  d->add_flag("!--no-photometric", c.photometric, "segmentation: no photometric distortion in training");
  d->add_option("--seg-eval", c.seg_eval, "segmentation evaluation: whole (the image padded to the patch grid) or "
                "slide (crop-sized windows)")->check(CLI::IsMember({"whole", "slide"}))->capture_default_str();
  d->add_option("--seg-stride", c.seg_stride, "sliding windows' stride (0: 2/3 of the crop)");
  auto* o = app.add_option_group("optimisation");
  o->add_option("--epochs", c.epochs)->capture_default_str();
  o->add_option("--max-steps", c.max_steps, "train for this many optimiser steps (0: --epochs' worth); it also sets the schedule's length, so the lr decays to --min-lr by the last step");
  o->add_option("--iterations", c.iterations, "an iteration-based schedule of this many optimiser steps, whatever "
                "--epochs (0: epoch-based)");
  o->add_option("--warmup-iters", c.warmup_iters, "iteration-based schedule: linear warmup steps");
  o->add_option("--val-every", c.val_every, "steps between validations (0: at epoch ends; under --iterations: at "
                "the end only)");
  o->add_option("--batch-size", c.batch_size)->capture_default_str();
  o->add_option("--accum-steps", c.accum_steps, "gradient accumulation")->capture_default_str();
  o->add_option("--lr", c.lr, "peak learning rate")->capture_default_str();
  o->add_option("--min-lr", c.min_lr)->capture_default_str();
  o->add_option("--warmup-epochs", c.warmup_epochs)->capture_default_str();
  o->add_option("--weight-decay", c.weight_decay)->capture_default_str();
  o->add_option("--layer-decay", c.layer_decay, "layer-wise lr decay (1: off)")->capture_default_str();
  o->add_option("--clip-grad", c.clip_grad, "max gradient norm (0: off)")->capture_default_str();
  o->add_option("--label-smoothing", c.label_smoothing)->capture_default_str();
  o->add_option("--max-bad-steps", c.max_bad_steps,
                "stop as diverged after this many consecutive steps with a non-finite loss or gradient norm "
                "(each is skipped); 0: 1 in f32, 5 under autocast")
      ->capture_default_str();
  o->add_option("--seed", c.seed)->capture_default_str();
  auto* r = app.add_option_group("run");
  r->add_option("--device", c.device, "auto, cpu or cuda")->capture_default_str();
  r->add_option("--precision", c.precision,
                "auto (bf16 autocast on CUDA, f32 on the CPU), f32 or bf16 (autocast: GEMMs and "
                "attention in bf16, f32 master weights)")
      ->check(CLI::IsMember({"auto", "f32", "bf16"}))
      ->capture_default_str();
  r->add_option("--out", c.out, "output directory")->capture_default_str();
  r->add_option("--checkpoint-every", c.checkpoint_every, "steps between checkpoints")->capture_default_str();
  r->add_option("--log-every", c.log_every, "steps between progress lines")->capture_default_str();
  r->add_option("--resume", c.resume, "checkpoint to continue from");
  r->add_flag("--overwrite", c.overwrite, "start over in an --out that already holds a run (its files are removed)");
  r->add_flag("!--no-final-eval", c.final_eval, "skip the evaluation at the end");
}

#define VIMOE_RUN_FIELDS(X)                                                                      \
  X(model) X(image_size) X(patch_size) X(width) X(depth) X(heads) X(mlp_ratio) X(registers) X(init) X(experts) X(moe_last) X(moe_blocks)              \
  X(moe_every_second) X(moe_placement) X(top_k) X(shared_expert) X(routing) X(aux_alpha) X(balance) X(gate) X(gate_dim) X(renormalize_gates) X(capacity_factor) X(bpr) X(single_router) X(superclasses) X(superclass_weight) X(head) X(drop_path)     \
  X(layer_scale) X(task) X(dataset) X(data_dir) X(val_dir) X(normalize) X(crop_padding) X(workers) X(mixup) X(cutmix) \
  X(val_split) X(seg_scale) X(seg_ratio) X(cat_max_ratio) X(photometric) X(seg_eval) X(seg_stride) X(epochs)       \
  X(max_steps) X(iterations) X(warmup_iters) X(val_every) X(batch_size) X(accum_steps) X(lr) X(min_lr) X(warmup_epochs) X(weight_decay)     \
  X(layer_decay) X(clip_grad) X(max_bad_steps) X(label_smoothing) X(seed) X(device) X(precision) X(out) X(checkpoint_every)    \
  X(log_every) X(resume) X(final_eval)

nlohmann::json to_json(const RunConfig& c) {
  nlohmann::json j;
#define X(f) j[#f] = c.f;
  VIMOE_RUN_FIELDS(X)
#undef X
  return j;
}

RunConfig from_json(const nlohmann::json& j) {
  VIMOE_CHECK(j.is_object(), "run configuration: expected a JSON object, found ", j.type_name());
  RunConfig c;
  try {
#define X(f) if (j.contains(#f)) j.at(#f).get_to(c.f);
    VIMOE_RUN_FIELDS(X)
#undef X
    // Runs stored before --precision existed trained in f32: evaluate them so.
    if (!j.contains("precision")) c.precision = "f32";
    // Runs stored before --renormalize-gates existed renormalised the gates whenever top-k > 1.
    if (!j.contains("renormalize_gates")) c.renormalize_gates = c.top_k > 1;
  } catch (const nlohmann::json::exception& e) {
    VIMOE_FAIL("run configuration: ", e.what());
  }
  return c;
}

nlohmann::json checkpoint_metadata(const std::string& checkpoint, const std::map<std::string, std::string>& metadata,
                                   const std::string& key) {
  const auto it = metadata.find(key);
  VIMOE_CHECK(it != metadata.end(), checkpoint, ": not a vimoe training checkpoint (no \"", key, "\" metadata)");
  try {
    return nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    VIMOE_FAIL(checkpoint, ": its \"", key, "\" metadata is not valid JSON (", e.what(), ")");
  }
}

RunConfig resume_config(const RunConfig& requested, const RunConfig& saved, std::vector<std::string>& changes) {
  static const std::set<std::string> may_change = {"epochs", "max_steps", "iterations", "val_every", "checkpoint_every", "log_every", "max_bad_steps",
                                                   "workers", "device", "out", "data_dir", "val_dir",
                                                   "final_eval", "resume"};
  const nlohmann::json want = to_json(requested), have = to_json(saved), defaults = to_json(RunConfig{});
  nlohmann::json merged = have;
  std::string conflicts;
  for (const auto& [field, value] : want.items()) {
    const bool set = requested.given.empty() ? value != defaults.at(field) : requested.given.count(field) > 0;
    if (!set || !have.contains(field) || value == have.at(field)) continue;
    if (may_change.count(field)) {
      if (field != "resume") changes.push_back(field + ": " + have.at(field).dump() + " -> " + value.dump());
      merged[field] = value;
    } else {
      conflicts += "\n  " + field + ": the checkpoint has " + have.at(field).dump() + ", the command asks for " +
                   value.dump();
    }
  }
  VIMOE_CHECK(conflicts.empty(), "--resume ", requested.resume, ": these options cannot change when resuming "
              "(the checkpoint fixes them; start a new run to change them):", conflicts);
  RunConfig out = from_json(merged);
  out.resume = requested.resume;
  return out;
}

nlohmann::json stored_model_config(const nlohmann::json& model, const RunConfig& run) {
  VIMOE_CHECK(model.is_object(), "model configuration: expected a JSON object, found ", model.type_name());
  if (model.contains("name")) {
    nlohmann::json j = model;
    // MoE configurations stored before "renormalize" existed renormalised whenever top_k > 1.
    if (j.contains("moe") && j["moe"].is_object() && !j["moe"].contains("renormalize"))
      j["moe"]["renormalize"] = j["moe"].value("top_k", int64_t{1}) > 1;
    return j;
  }
  nlohmann::json j = model;  // a ViT's fields, stored before the factory; the MoE layers came from the run
  j["name"] = run.model;
  const nlohmann::json moe = run.moe_options();
  if (!moe.is_null()) j["moe"] = moe;
  return j;
}

}  // namespace vimoe::app
