// The training driver behind vimoe-train: builds the data (run_data.h), the model
// (run_model.h) and the optimiser from a RunConfig, runs the loop with progress, metrics,
// validation (evaluate.h) and atomic checkpoints (checkpoint.cpp), and resumes exactly from a
// checkpoint.
#pragma once
#include <atomic>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apps/common/evaluate.h"
#include "apps/common/run_config.h"
#include "apps/common/run_data.h"
#include "apps/common/run_model.h"
#include "apps/common/train_step.h"
#include "data/loader.h"
#include "engine/optim/adamw.h"
#include "engine/optim/schedule.h"
#include "models/model.h"

namespace vimoe::app {

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
  // The validation set evaluated for the run's task, and its line and metrics record.
  EvalResult validate(bool progress);
  void report_validation(const EvalResult& r, bool final_eval);
  // Means since the last line; `dropped`: per capacity-limited MoE layer (empty: dropless).
  // `router_accuracy` < 0: no super-classes.
  void print_progress(double loss, double aux, const std::vector<double>& dropped, double router_accuracy,
                      double images_per_s, bool final_line);
  const std::vector<int64_t>* group_of() const { return superclasses_ ? &superclasses_->group_of : nullptr; }
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
  std::optional<data::SuperclassMap> superclasses_;   // --superclasses, resolved
};

// The signal that asked the run to stop (SIGINT from Ctrl-C, SIGTERM from `timeout`, container
// stops and batch schedulers), 0 while none has: the loop writes its checkpoint at the next
// step boundary and returns 128 + the signal. Further signals only set it again, so a second
// one during the (atomic) checkpoint write neither kills the process nor corrupts the file.
extern std::atomic<int> g_interrupted;
void install_interrupt_handler();

}  // namespace vimoe::app
