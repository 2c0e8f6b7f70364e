// Everything a training or evaluation run is configured by: the model, the data, the
// optimisation. Set from a TOML config file (--config) with command-line overrides (CLI11),
// and stored as JSON inside every checkpoint so evaluation and resumption rebuild the run.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>


namespace vimoe::app {

struct RunConfig {
  // Model.
  std::string model = "vit_tiny";      // a model name (models/factory.h: vit_s14, convnext_tiny, ...)
  int64_t image_size = 0;              // 0: the preset's
  int64_t patch_size = 0;              // 0: the preset's
  int64_t width = 0, depth = 0, heads = 0;  // 0: the preset's
  double mlp_ratio = 0;                // hidden = ratio * width (0: the preset's)
  int64_t registers = -1;              // register tokens (-1: the preset's)
  std::string init = "scratch";        // "scratch" or a DINOv2 .safetensors path
  int64_t experts = 0;                 // 0: dense
  int64_t moe_last = 0;                // MoE in the last L blocks...
  std::vector<int64_t> moe_blocks;     // ...or these blocks (counted over all stages)...
  bool moe_every_second = false;       // ...or every second block...
  std::string moe_placement;           // ...or a named placement (every2, last2, last3, stage)
  int64_t top_k = 1;
  bool shared_expert = false;
  std::string routing = "image";       // "image" or "token"
  double aux_alpha = 0.01;
  std::string balance = "switch";      // "switch", "importance_load" or "none"
  std::string gate = "linear";         // "linear", "cosine" or "l2"
  int64_t gate_dim = 0;                // cosine / l2 projection width (0: min(width / 2, 256))
  // Gates renormalised over the chosen top-k. Runs stored before the option existed had it on
  // whenever top_k > 1, and load so (from_json).
  bool renormalize_gates = false;
  double capacity_factor = 0;          // 0: dropless
  bool bpr = false;                    // Batch Prioritized Routing (needs a capacity factor)
  bool single_router = false;          // Mobile V-MoE: one per-image router for every MoE layer
  // The single router's super-class targets: "" (none), "coarse" (CIFAR-100's), "random" (a
  // fixed random map, the paper's ablation) or a JSON file (data/superclasses.h).
  std::string superclasses;
  double superclass_weight = 0.3;      // lambda in L = L_C + lambda * CE(router logits, super-class)
  std::string head = "cls";            // "cls" or "cls+mean"
  double drop_path = 0.0;
  // LayerScale's initial value; 0: the preset's; kNoLayerScale (--layer-scale none): blocks
  // without LayerScale, as timm's ViT by default.
  double layer_scale = 0;
  static constexpr double kNoLayerScale = -1;

  // Task: "classification", "segmentation" (a per-patch head, logits upsampled to the pixels,
  // pixel cross-entropy, mIoU), or "auto": segmentation for the segmentation datasets (camvid,
  // ade20k), else classification. Segmentation changes defaults the command line does not
  // set: the head ("patches"), --aux-alpha 0.001 (the ViMoE paper's), --label-smoothing 0
  // (apply_task_defaults).
  std::string task = "auto";

  // Data.
  std::string dataset = "fashion-mnist";  // fashion-mnist | mnist | cifar10 | cifar100 | folder | camvid | ade20k
  std::string data_dir;                   // "": the dataset's default location
  std::string val_dir;                    // image folders: the validation root
  std::string normalize = "auto";         // per-channel statistics; see app::normalization
  std::string crop_padding = "zero";      // small images' shift: "zero" or "reflect" padding
  int workers = 2;
  double mixup = 0, cutmix = 0;           // Beta alphas; 0 disables
  // Segmentation data (data/seg_transforms.h). The training crop is the model's --image-size.
  std::string val_split;                  // "": camvid's val, ade20k's validation
  std::vector<int64_t> seg_scale;         // keep-ratio (long, short) scale; empty: the dataset's
  std::vector<double> seg_ratio = {0.5, 2.0};  // training rescale ratio range
  double cat_max_ratio = 0.75;            // the crop's largest class share (1: any window)
  bool photometric = true;                // photometric distortion in training
  std::string seg_eval = "whole";         // whole image (padded to the patch grid) or "slide"
  int64_t seg_stride = 0;                 // sliding windows' stride (0: 2/3 of the crop)

  // Optimisation.
  int64_t epochs = 10;
  int64_t max_steps = 0;                  // train this many optimiser steps, schedule included (0: epochs)
  // An iteration-based schedule (segmentation recipes: 80k iterations): this many optimiser
  // steps whatever the epochs, warmup_iters of linear warmup, a validation every val_every
  // steps. 0: the epoch-based schedule.
  int64_t iterations = 0;
  int64_t warmup_iters = 0;
  int64_t val_every = 0;                  // 0: at epoch ends (iterations: only at the end)
  int64_t batch_size = 128;
  int64_t accum_steps = 1;
  double lr = 1e-3, min_lr = 1e-5;
  double warmup_epochs = 1;
  double weight_decay = 0.05;
  double layer_decay = 1.0;               // layer-wise lr decay (1: off)
  double clip_grad = 1.0;                 // 0: off
  // Consecutive steps with a non-finite loss or gradient norm (each makes no update) after
  // which the run stops as diverged; 0: 1 in f32, 5 under autocast, where one overflowing
  // batch should not end a long run.
  int64_t max_bad_steps = 0;
  double label_smoothing = 0.1;
  uint64_t seed = 0;

  // Run.
  std::string device = "auto";            // auto | cpu | cuda
  std::string precision = "auto";         // auto (bf16 on CUDA, f32 on the CPU) | f32 | bf16
  std::string out = "runs/latest";
  int64_t checkpoint_every = 500;         // optimiser steps between checkpoints (0: epoch ends only)
  int64_t log_every = 20;                 // steps between progress/metric lines
  std::string resume;                     // a checkpoint to continue from
  bool overwrite = false;                 // start over in an --out that holds a run (not saved)
  bool final_eval = true;                 // evaluate on the validation set at the end

  // The fields (as named in config.json) set on the command line or in a --config file,
  // recorded by add_options' parser; empty for a configuration built in code (then a field
  // counts as set when it differs from its default). Not saved.
  std::set<std::string> given;

  // The options models::create_model(model, ...) takes: the model options set here (the
  // preset's values elsewhere), the data's classes and channels, and "pretrained" for --init.
  // Throws, naming the option, for values the command line cannot mean (--layer-scale or
  // --head out of range); the model's builder checks the rest.
  nlohmann::json model_options(int64_t num_classes, int64_t in_channels) const;
  // The "moe" part (null for a dense model). Throws for MoE options that contradict each
  // other: placement, --shared-expert or --top-k without experts, --top-k outside
  // 1..experts, no placement or more than one.
  nlohmann::json moe_options() const;
  // Throws for option values that make no sense (negative weight decay, clip norm or
  // learning rate, a smoothing outside [0, 1), ...), naming the option and the value; the
  // model options are checked by model_options and the model's builder.
  void validate() const;
  // Makes the data locations and the --init weights absolute (against the working
  // directory), so the stored configuration opens them again from any directory.
  void make_paths_absolute();

  // "classification" or "segmentation", with "auto" resolved from the dataset.
  std::string resolved_task() const;
  bool segmentation() const { return resolved_task() == "segmentation"; }
  // The segmentation scale: --seg-scale, else the dataset's (camvid 480 x 360, its own size;
  // ade20k 2048 x 512, mmseg's).
  std::pair<int64_t, int64_t> segmentation_scale() const;
};

// Sets the task's defaults on the fields the configuration does not set (RunConfig::given;
// for a configuration built in code, fields at their defaults): under segmentation the head
// "patches", --aux-alpha 0.001 and --label-smoothing 0. Resolves task "auto".
void apply_task_defaults(RunConfig& cfg);

// The configuration a resumed run continues with: the checkpoint's (`saved`), with the
// options a resume may change taken from `requested` where it sets them -- epochs and
// max-steps (the schedule's length, so a finished run can be extended), checkpoint and log
// intervals, workers, device, output, data locations, the final evaluation. Each change is
// appended to `changes` ("epochs: 3 -> 5"). Any other option set to a value that differs
// from the checkpoint's (model shape, experts, dataset, recipe) is an error naming every
// such conflict.
// The JSON a checkpoint's metadata holds under `key` ("config", "model"); throws naming the
// checkpoint and the key when it is missing or not valid JSON.
nlohmann::json checkpoint_metadata(const std::string& checkpoint, const std::map<std::string, std::string>& metadata,
                                   const std::string& key);

RunConfig resume_config(const RunConfig& requested, const RunConfig& saved, std::vector<std::string>& changes);

// Registers every field as an option of `app` (and --config for a TOML file).
void add_options(CLI::App& app, RunConfig& cfg);

nlohmann::json to_json(const RunConfig& cfg);
// Missing keys keep their defaults, except for runs from before an option existed: a missing
// precision means f32, a missing renormalize_gates means top_k > 1.
RunConfig from_json(const nlohmann::json& j);

// The model configuration stored in a checkpoint (ImageModel::config(), under "model") as
// models::create_model_from_config takes it. Checkpoints written before the model factory
// stored a ViT's fields without a name; those get the run's model name and MoE options. An MoE
// configuration without "renormalize" (stored before it existed) gets top_k > 1.
nlohmann::json stored_model_config(const nlohmann::json& model_metadata, const RunConfig& run);

}  // namespace vimoe::app
