#include "apps/common/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "apps/common/run_dir.h"
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/random.h"
#include "engine/profiler.h"

namespace vimoe::app {

std::atomic<int> g_interrupted{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

void install_interrupt_handler() {
  struct sigaction action = {};
  action.sa_handler = [](int sig) { g_interrupted = sig; };
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a blocking read in progress resumes rather than fails
  for (int sig : {SIGINT, SIGTERM}) ::sigaction(sig, &action, nullptr);
}

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- the trainer -----------------------------------------------------------------------

Trainer::Trainer(RunConfig cfg) : cfg_(std::move(cfg)) {
  apply_task_defaults(cfg_);
  cfg_.validate();
  cfg_.make_paths_absolute();  // before a resume compares them with the checkpoint's
  if (!cfg_.resume.empty()) {
    // The checkpoint's configuration, with what a resume may change (and says it changes).
    const io::SafetensorsFile f = io::SafetensorsFile::open(cfg_.resume);
    const RunConfig saved = from_json(checkpoint_metadata(cfg_.resume, f.metadata(), "config"));
    std::vector<std::string> changes;
    cfg_ = resume_config(cfg_, saved, changes);
    std::fprintf(stderr, "resuming %s at step %s%s\n", cfg_.resume.c_str(), f.metadata().at("step").c_str(),
                 changes.empty() ? " with the checkpoint's options" : "; changed:");
    for (const std::string& c : changes) std::fprintf(stderr, "  %s\n", c.c_str());
    cfg_.validate();
    cfg_.make_paths_absolute();  // a run stored before paths were absolute
  }
  VIMOE_CHECK(cfg_.batch_size > 0 && cfg_.accum_steps > 0 && cfg_.epochs > 0, "batch size, "
              "accumulation steps and epochs must be positive");
  for (const std::string& f : prepare_run_dir(cfg_.out, !cfg_.resume.empty(), cfg_.overwrite))
    std::fprintf(stderr, "removed %s, left by a writer that no longer runs\n", (fs::path(cfg_.out) / f).c_str());
  if (!cfg_.resume.empty()) {
    const int64_t step = std::stoll(io::SafetensorsFile::open(cfg_.resume).metadata().at("step"));
    const std::string metrics = (fs::path(cfg_.out) / "metrics.jsonl").string();
    if (const int64_t dropped = truncate_metrics(metrics, step))
      std::fprintf(stderr, "%s: trimmed to step %lld, the checkpoint's (%lld records dropped or rewritten; the "
                   "steps after it are logged again)\n",
                   metrics.c_str(), static_cast<long long>(step), static_cast<long long>(dropped));
  }
  device_ = pick_device(cfg_.device);
  autocast_ = autocast_type(cfg_.precision, device_);
  manual_seed(cfg_.seed);
  data_ = open_datasets(cfg_);
  const int64_t classes = data_.train->num_classes();
  model_ = build_model(cfg_, classes, data_.channels);
  superclasses_ = superclasses(cfg_, data_);
  if (superclasses_) {
    std::string groups;
    for (int64_t g = 0; g < superclasses_->groups(); ++g) {
      groups += (g ? "; " : "") + superclasses_->group_names[g] + ":";
      for (int64_t c = 0; c < classes; ++c)
        if (superclasses_->group_of[c] == g) groups += " " + data_.train->class_names()[c];
    }
    std::fprintf(stderr, "super-classes (%s, loss weight %g): %s\n", cfg_.superclasses.c_str(), cfg_.superclass_weight,
                 groups.c_str());
    data::write_superclasses((fs::path(cfg_.out) / "superclasses.json").string(), *superclasses_,
                             data_.train->class_names());
  }
  data::LoaderOptions train_opts = train_loader_options(cfg_, data_, model_->input());
  train_opts.pin_memory = device_.is_cuda();
  train_loader_ = std::make_unique<data::Loader>(data_.train, train_opts);
  val_loader_ = std::make_unique<data::Loader>(data_.val, eval_loader_options(cfg_, data_, model_->input(), cfg_.workers));

  model_->to(device_);
  optimizer_ = std::make_unique<optim::AdamW>(models::param_groups(*model_, cfg_.weight_decay, cfg_.layer_decay),
                                              optim::AdamW::Options{.lr = cfg_.lr});
  const int64_t steps_per_epoch = train_loader_->batches_per_epoch() / cfg_.accum_steps;
  steps_per_epoch_ = std::max<int64_t>(steps_per_epoch, 1);
  VIMOE_CHECK(steps_per_epoch > 0, "the training set (", data_.train->size(), " images) is smaller than one "
              "optimiser step (", cfg_.batch_size * cfg_.accum_steps, " images)");
  total_steps_ = cfg_.iterations > 0 ? cfg_.iterations : steps_per_epoch * cfg_.epochs;
  if (cfg_.max_steps > 0) total_steps_ = std::min(total_steps_, cfg_.max_steps);
  // --max-steps sets the schedule's length too (as a run of that many steps would expect):
  // the cosine reaches --min-lr at the last step either way.
  const int64_t warmup = cfg_.iterations > 0 ? cfg_.warmup_iters
                                             : static_cast<int64_t>(cfg_.warmup_epochs * steps_per_epoch);
  const optim::WarmupCosine schedule{cfg_.lr, cfg_.min_lr, std::min<int64_t>(total_steps_, warmup), total_steps_};
  StepRecipe recipe;
  recipe.accum_steps = cfg_.accum_steps;
  recipe.label_smoothing = cfg_.label_smoothing;
  if (data_.train->dense_labels()) recipe.ignore_index = data_.train->ignore_index();
  recipe.clip_grad = cfg_.clip_grad;
  recipe.autocast = autocast_;
  if (superclasses_) {
    recipe.group_of = Tensor::from_vector<int64_t>(superclasses_->group_of, {classes}).to(device_);
    recipe.superclass_weight = cfg_.superclass_weight;
  }
  step_runner_ = std::make_unique<TrainStep>(*model_, *optimizer_, schedule, recipe, device_);
  if (!cfg_.resume.empty()) load_checkpoint(cfg_.resume);
}

void Trainer::log_metrics(const nlohmann::json& record) {
  metrics_ << record.dump() << "\n";
  metrics_.flush();
}

void Trainer::warn_unreadable(const std::vector<data::SkippedSample>& skipped, const char* split) {
  for (const data::SkippedSample& s : skipped)
    if (warned_.emplace(split, s.index).second)
      std::fprintf(stderr, "%swarning: skipping an unreadable %s image (it is left out of every epoch): %s\n",
                   ::isatty(::fileno(stderr)) ? "\n" : "", split, s.reason.c_str());
}

// ", 3 unreadable images skipped (2 training, 1 validation)" or nothing when none were.
static std::string skipped_note(int64_t train, int64_t val) {
  if (train + val == 0) return "";
  return ", " + std::to_string(train + val) + " unreadable image" + (train + val == 1 ? "" : "s") +
         " skipped (" + std::to_string(train) + " training, " + std::to_string(val) + " validation)";
}

// "  router 87.1%": the single router's super-class accuracy, when there is one.
static std::string router_note(const EvalResult& r) {
  if (r.router_accuracy < 0) return "";
  char s[32];
  std::snprintf(s, sizeof s, "  router %.2f%%", 100 * r.router_accuracy);
  return s;
}

EvalResult Trainer::validate(bool progress) {
  if (cfg_.segmentation())
    return evaluate_segmentation(*model_, *val_loader_, device_, progress, autocast_,
                                 seg_inference(cfg_, model_->input()));
  return evaluate(*model_, *val_loader_, device_, progress, autocast_, group_of());
}

void Trainer::report_validation(const EvalResult& r, bool final_eval) {
  warn_unreadable(r.skipped, "validation");
  const auto val_skipped = static_cast<int64_t>(r.skipped.size());
  // "epoch" in validation records counts completed epochs.
  const data::LoaderPosition p = train_loader_->position();
  const int64_t epochs = p.epoch + (p.batch == train_loader_->batches_per_epoch() ? 1 : 0);
  nlohmann::json record = {{"step", step_}, {"epoch", epochs}, {"val_loss", r.loss},
                           {"skipped_train_images", epoch_skipped_}, {"skipped_val_images", val_skipped}};
  char scores[160];
  if (r.pixels) {
    const models::SegmentationMetrics m = models::segmentation_metrics(*r.pixels);
    std::snprintf(scores, sizeof scores, "mIoU %.2f%%  mAcc %.2f%%  aAcc %.2f%%", 100 * m.miou,
                  100 * m.mean_accuracy, 100 * m.pixel_accuracy);
    record["val_miou"] = m.miou;
    record["val_macc"] = m.mean_accuracy;
    record["val_aacc"] = m.pixel_accuracy;
  } else {
    std::snprintf(scores, sizeof scores, "top-1 %.2f%%  top-5 %.2f%%", 100 * r.top1, 100 * r.top5);
    record["val_top1"] = r.top1;
    record["val_top5"] = r.top5;
  }
  if (final_eval)
    std::fprintf(stderr, "final validation: loss %.4f  %s%s on %lld images%s\n", r.loss, scores,
                 router_note(r).c_str(), static_cast<long long>(r.images),
                 skipped_note(epoch_skipped_, val_skipped).c_str());
  else
    std::fprintf(stderr, "%s  validation: loss %.4f  %s%s%s\n", ::isatty(::fileno(stderr)) ? "\n" : "", r.loss,
                 scores, router_note(r).c_str(), skipped_note(epoch_skipped_, val_skipped).c_str());
  if (r.router_accuracy >= 0) record["val_router_accuracy"] = r.router_accuracy;
  if (final_eval) record["final"] = true;
  log_metrics(record);
}

void Trainer::print_progress(double loss, double aux, const std::vector<double>& dropped, double router_accuracy,
                             double images_per_s, bool final_line) {
  static const bool tty = ::isatty(::fileno(stderr));
  const double remaining = images_per_s > 0 ? static_cast<double>((total_steps_ - step_) * cfg_.batch_size *
                                                                  cfg_.accum_steps) / images_per_s
                                            : 0;
  const int64_t eta = static_cast<int64_t>(remaining);
  // With an expert capacity: the share of routing slots dropped, averaged over the MoE layers
  // (each layer's is in metrics.jsonl).
  char drop[48] = "";
  if (!dropped.empty()) {
    double total = 0;
    for (double d : dropped) total += d;
    std::snprintf(drop, sizeof drop, "  drop %.1f%%", 100.0 * total / static_cast<double>(dropped.size()));
  }
  if (router_accuracy >= 0) {
    const size_t used = std::strlen(drop);
    std::snprintf(drop + used, sizeof drop - used, "  router %.1f%%", 100.0 * router_accuracy);
  }
  // An iteration-based schedule has no epoch count to show.
  char epoch[48] = "";
  if (cfg_.iterations == 0)
    std::snprintf(epoch, sizeof epoch, "epoch %lld/%lld  ", static_cast<long long>(std::min(step_ / steps_per_epoch_ + 1, cfg_.epochs)),
                  static_cast<long long>(cfg_.epochs));
  char line[256];
  std::snprintf(line, sizeof line,
                "%sstep %lld/%lld  loss %.4f  aux %.4f%s  lr %.2e  %.0f img/s  ETA %lldm%02llds", epoch,
                static_cast<long long>(step_), static_cast<long long>(total_steps_), loss, aux, drop, optimizer_->lr(),
                images_per_s, static_cast<long long>(eta / 60), static_cast<long long>(eta % 60));
  if (tty) std::fprintf(stderr, "\r%-110s%s", line, final_line ? "\n" : "");
  else std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

int Trainer::run() {
  metrics_.open(fs::path(cfg_.out) / "metrics.jsonl", std::ios::app);
  VIMOE_CHECK(metrics_.good(), "cannot write ", (fs::path(cfg_.out) / "metrics.jsonl").string());
  io::write_file_atomic((fs::path(cfg_.out) / "config.json").string(), to_json(cfg_).dump(2) + "\n", "vimoe-train");
  std::fprintf(stderr, "vimoe-train: %s; %lld parameters; %s on %s (%s); %lld steps of %lld images\n",
               model_->describe().c_str(), static_cast<long long>(model_->num_parameters()), cfg_.dataset.c_str(),
               device_.str().c_str(), autocast_ ? "bf16 autocast" : "f32", static_cast<long long>(total_steps_),
               static_cast<long long>(cfg_.batch_size * cfg_.accum_steps));
  install_interrupt_handler();
  model_->train();
  const std::string last = (fs::path(cfg_.out) / "last.safetensors").string();
  // Losses are summed on the device and read once per log line: no host sync per step.
  Tensor window_loss, window_aux, last_grad_norm;
  std::vector<Tensor> window_dropped;  // per capacity-limited MoE layer
  Tensor window_router;                // the super-class router accuracy, summed
  int64_t window_steps = 0, logged_images = 0;
  auto window_start = Clock::now();
  // Epochs fully consumed: the loader sits at the end of epoch e (batch == batches_per_epoch)
  // or somewhere in epoch e; a validation runs each time this count grows.
  auto completed_epochs = [this] {
    const data::LoaderPosition p = train_loader_->position();
    return p.epoch + (p.batch == train_loader_->batches_per_epoch() ? 1 : 0);
  };
  int64_t epochs_done = completed_epochs();
  const int64_t max_bad_steps = cfg_.max_bad_steps > 0 ? cfg_.max_bad_steps : (autocast_ ? 5 : 1);
  int64_t bad_steps = 0;
  while (step_ < total_steps_) {
    for (int64_t micro = 0; micro < cfg_.accum_steps; ++micro) {
      std::optional<data::Batch> b = train_loader_->next();
      if (!b) b = train_loader_->next();  // an epoch ended: continue with the next one
      if (!b->skipped.empty()) {
        warn_unreadable(b->skipped, "training");
        epoch_skipped_ += static_cast<int64_t>(b->skipped.size());
      }
      const MicroBatchLoss l = step_runner_->micro_batch(*b);
      window_loss = window_loss.defined() ? window_loss + l.task : l.task;
      window_aux = window_aux.defined() ? window_aux + l.aux : l.aux;
      window_dropped.resize(l.dropped.size());
      for (size_t i = 0; i < l.dropped.size(); ++i)
        window_dropped[i] = window_dropped[i].defined() ? window_dropped[i] + l.dropped[i] : l.dropped[i];
      if (l.router_accuracy.defined())
        window_router = window_router.defined() ? window_router + l.router_accuracy : l.router_accuracy;
      logged_images += b->images.size(0);
    }
    window_steps += cfg_.accum_steps;
    const StepResult result = step_runner_->finish(step_);
    last_grad_norm = result.grad_norm;
    ++step_;
    if (result.skipped) {
      ++bad_steps;
      std::fprintf(stderr, "\nstep %lld: loss %g, gradient norm %g: not finite, no update made (%lld of at most %lld "
                   "in a row)\n", static_cast<long long>(step_), result.loss, result.norm,
                   static_cast<long long>(bad_steps), static_cast<long long>(max_bad_steps));
      if (bad_steps >= max_bad_steps) {
        log_metrics({{"step", step_}, {"epoch", train_loader_->position().epoch}, {"diverged", true},
                     {"loss_avg", result.loss}, {"grad_norm", result.norm}, {"lr", optimizer_->lr()}});
        std::fprintf(stderr, "training diverged at step %lld: %lld step(s) in a row had a non-finite loss or "
                     "gradient norm; stopped without writing a checkpoint, so %s keeps the last good state "
                     "(try a lower --lr, a longer --warmup-epochs or --clip-grad)\n",
                     static_cast<long long>(step_), static_cast<long long>(bad_steps), last.c_str());
        return 3;
      }
    } else {
      bad_steps = 0;
    }
    // Validation at epoch ends (epoch schedules without --val-every) or every --val-every steps.
    const bool epoch_end = completed_epochs() > epochs_done;
    const bool validate_now = cfg_.val_every > 0 ? step_ % cfg_.val_every == 0 : epoch_end && cfg_.iterations == 0;
    if (step_ % cfg_.log_every == 0 || step_ == total_steps_) {
      const double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
      const double ips = secs > 0 ? static_cast<double>(logged_images) / secs : 0;
      const double loss = window_loss.item<double>() / static_cast<double>(window_steps);
      const double aux = window_aux.item<double>() / static_cast<double>(window_steps);
      std::vector<double> dropped;
      for (const Tensor& d : window_dropped) dropped.push_back(d.item<double>() / static_cast<double>(window_steps));
      const double router =
          window_router.defined() ? window_router.item<double>() / static_cast<double>(window_steps) : -1;
      print_progress(loss, aux, dropped, router, ips, step_ == total_steps_);
      nlohmann::json line = {{"step", step_},       {"epoch", train_loader_->position().epoch},
                             {"loss_avg", loss},    {"aux_loss", aux},
                             {"lr", optimizer_->lr()}, {"grad_norm", last_grad_norm.item<double>()},
                             {"images_per_s", ips}};
      if (!dropped.empty()) line["dropped_fraction"] = dropped;  // per MoE layer, in depth order
      if (router >= 0) line["router_accuracy"] = router;
      log_metrics(line);
      window_loss = window_aux = Tensor();
      window_dropped.clear();
      window_router = Tensor();
      window_steps = logged_images = 0;
      window_start = Clock::now();
    }
    // No periodic checkpoint right after a skipped step: the last one stays the last good step.
    if ((bad_steps == 0 && cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0) || g_interrupted)
      save_checkpoint(last);
    if (step_ == pause_at_) {
      save_checkpoint(last);
      return 0;
    }
    if (const int sig = g_interrupted) {
      std::fprintf(stderr, "\n%s: checkpoint written to %s (resume with --resume %s)\n",
                   sig == SIGTERM ? "terminated (SIGTERM)" : "interrupted (SIGINT)", last.c_str(), last.c_str());
      return 128 + sig;
    }
    if (epoch_end) epochs_done = completed_epochs();
    if (validate_now && step_ < total_steps_) {
      report_validation(validate(false), false);
      epoch_skipped_ = 0;
      save_checkpoint(last);
      window_start = Clock::now();
      logged_images = 0;
    }
  }
  save_checkpoint(last);
  if (profiler::enabled())
    std::fprintf(stderr, "\nper-step op profile (VIMOE_PROFILE):\n%s",
                 profiler::report(static_cast<double>(step_)).c_str());
  const std::string final_path = (fs::path(cfg_.out) / "final.safetensors").string();
  save_checkpoint(final_path);
  if (!cfg_.final_eval) {
    std::printf("%s\n", final_path.c_str());
    return 0;
  }
  report_validation(validate(true), true);
  std::printf("%s\n", final_path.c_str());
  return 0;
}

}  // namespace vimoe::app
