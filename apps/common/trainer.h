// The training and evaluation driver behind vimoe-train and vimoe-eval: builds the data,
// the model and the optimiser from a RunConfig, runs the loop with progress, metrics and
// atomic checkpoints, and resumes exactly from a checkpoint.
#pragma once
#include <atomic>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apps/common/run_config.h"
#include "apps/common/train_step.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "engine/optim/adamw.h"
#include "engine/optim/schedule.h"
#include "models/model.h"

namespace vimoe::app {

struct Datasets {
  std::shared_ptr<const data::Dataset> train, val;
  int64_t channels = 3;      // what the images carry
  int64_t native_size = 0;   // their side when all are square and share one (IDX, CIFAR), else 0
};
Datasets open_datasets(const RunConfig& cfg);

// Per-channel mean and std the images are normalised with (after augmentation, on [0, 1]
// pixel values, as torchvision's Normalize): from --normalize, where auto means the training
// set's own statistics for the built-in datasets (CIFAR-10's for CIFAR-10, CIFAR-100's for
// CIFAR-100, ...) and ImageNet's for image folders and whenever DINOv2 weights are loaded.
struct Normalization {
  std::vector<float> mean, std;
};
Normalization normalization(const RunConfig& cfg);

// The loaders' per-sample transforms: light augmentation at the native size for small
// images, ImageNet-style crops for large ones; normalised with the dataset's statistics
// (ImageNet's when starting from DINOv2).
data::Transform train_transform(const RunConfig& cfg, const Datasets& d, int64_t size, int64_t channels);
data::Transform eval_transform(const RunConfig& cfg, const Datasets& d, int64_t size, int64_t channels);

Device pick_device(const std::string& name);  // auto | cpu | cuda
// The autocast type a run's forward passes use on `device` (nullopt: plain f32), from
// --precision: auto is bf16 on CUDA and f32 on the CPU.
std::optional<DType> autocast_type(const std::string& precision, Device device);

// The run's model from the factory (--model and its options), initialised from --seed by the
// family's from-scratch recipe, then with --init's pretrained weights when given (the import
// report goes to stderr).
std::shared_ptr<models::ImageModel> build_model(const RunConfig& cfg, int64_t num_classes, int64_t channels);

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;
  int64_t images = 0;
  std::vector<int64_t> class_total, class_correct;
  // Per MoE layer: [classes x experts] counts of top-1 routing decisions (image-level: one
  // per image; token-level: one per token), and the set of expert paths images took.
  std::vector<std::vector<std::vector<int64_t>>> routing_counts;
  std::vector<int64_t> moe_blocks;
  int64_t distinct_paths = 0;
  // Validation images left out because they could not be decoded (not in `images`).
  std::vector<data::SkippedSample> skipped;
};
EvalResult evaluate(models::ImageModel& model, data::Loader& loader, Device device,
                    bool progress, std::optional<DType> autocast = std::nullopt);

class Trainer {
 public:
  explicit Trainer(RunConfig cfg);
  // Trains until the epochs (or max_steps) are done, SIGINT / SIGTERM, or divergence; writes
  // checkpoints, metrics (out/metrics.jsonl) and a final evaluation. Returns the process exit
  // code: 0 done, 3 diverged (--max-bad-steps non-finite steps in a row; no checkpoint is
  // written then), 128 + the signal when interrupted.
  int run();
  // Makes run() stop after `step` steps as if interrupted (checkpoint written; returns 0), the
  // schedule untouched: a run continued later with --resume is the same run, step for step.
  void pause_at(int64_t step) { pause_at_ = step; }

  int64_t step() const { return step_; }
  models::ImageModel& model() { return *model_; }
  void save_checkpoint(const std::string& path) const;
  void load_checkpoint(const std::string& path);

 private:
  void log_metrics(const nlohmann::json& record);
  void print_progress(double loss, double aux, double images_per_s, bool final_line);  // means since the last line
  // One warning line per unreadable image the first time it is met (it recurs each epoch).
  void warn_unreadable(const std::vector<data::SkippedSample>& skipped, const char* split);

  RunConfig cfg_;
  Device device_;
  std::optional<DType> autocast_;
  Datasets data_;
  std::shared_ptr<models::ImageModel> model_;
  std::unique_ptr<data::Loader> train_loader_, val_loader_;
  std::unique_ptr<optim::AdamW> optimizer_;
  std::unique_ptr<TrainStep> step_runner_;  // the recipe's micro-batches and updates
  int64_t step_ = 0, total_steps_ = 0, steps_per_epoch_ = 1, pause_at_ = -1;
  std::ofstream metrics_;
  std::set<std::pair<std::string, int64_t>> warned_;  // (split, dataset index) already reported
  int64_t epoch_skipped_ = 0;                          // training images skipped in this epoch
};

// The signal that asked the run to stop (SIGINT from Ctrl-C, SIGTERM from `timeout`, container
// stops and batch schedulers), 0 while none has: the loop writes its checkpoint at the next
// step boundary and returns 128 + the signal. Further signals only set it again, so a second
// one during the (atomic) checkpoint write neither kills the process nor corrupts the file.
extern std::atomic<int> g_interrupted;
void install_interrupt_handler();

}  // namespace vimoe::app
