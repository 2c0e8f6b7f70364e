// One optimiser step of vimoe-train's recipe, in one place: the trainer runs it, and the
// step-parity test (tests/test_train_step_parity.cpp) replays it against PyTorch, so what the
// test checks is the code the app trains with.
//   per micro-batch: forward (under the run's autocast), task loss = cross-entropy with label
//     smoothing (soft targets from mixup / cutmix instead when the batch carries them;
//     segmentation batches, which carry label maps: the pixel cross-entropy, ignored pixels
//     left out),
//     loss = task + the MoE load-balancing loss (+ the super-class loss: StepRecipe),
//     (loss / accum_steps).backward();
//   then: the learning rate schedule(step) (each parameter group scales it), the global
//     gradient norm clipped to clip_grad, one AdamW update, gradients zeroed. A step whose
//     loss or gradient norm is not finite makes no update (weights and optimiser state stay
//     as they were) and says so; the caller decides when to give up. Checking costs one
//     read of two device scalars per step.
#pragma once
#include <optional>

#include "data/loader.h"
#include "engine/optim/adamw.h"
#include "engine/optim/schedule.h"
#include "models/model.h"

namespace vimoe::app {

struct StepRecipe {
  int64_t accum_steps = 1;
  double label_smoothing = 0;
  int64_t ignore_index = 255;        // segmentation: the label maps' unlabelled value
  double clip_grad = 0;              // 0: no clipping
  std::optional<DType> autocast;     // the forward's half type; nullopt: f32
  // Mobile V-MoE's super-class loss: with `group_of` (i64 [classes] on the run's device, each
  // class's super-class) the single router's logits get weight * CE(router logits, group of
  // the label) added to the loss (to the aux part: it stands in for a balancing loss). Under
  // mixup / cutmix the group is the batch's first label's (the image it was pasted into).
  Tensor group_of;
  double superclass_weight = 0;
};

// What one micro-batch gave, as detached device scalars (reading them waits for the device).
struct MicroBatchLoss {
  Tensor task, aux;
  // Per MoE layer with an expert capacity, the fraction of its routing slots dropped; empty
  // when every layer is dropless.
  std::vector<Tensor> dropped;
  // With super-classes: the share of images whose single-router top choice is their group.
  Tensor router_accuracy;
};

// What one optimiser step did.
struct StepResult {
  Tensor grad_norm;      // the global gradient norm before clipping: a 0-dim f64 device scalar
  double lr = 0;         // the schedule's learning rate for the step (before group scales)
  bool skipped = false;  // the loss or the gradient norm was not finite: no update was made
  double loss = 0;       // the step's mean loss (task + aux over its micro-batches), on the host
  double norm = 0;       // grad_norm, on the host
};

class TrainStep {
 public:
  TrainStep(models::ImageModel& model, optim::AdamW& optimizer, optim::WarmupCosine schedule,
            StepRecipe recipe, Device device);

  // Forward and backward of one micro-batch; call accum_steps times, then finish().
  MicroBatchLoss micro_batch(const data::Batch& batch);
  // The update for optimiser step `step` (counted from 0, the schedule's step).
  StepResult finish(int64_t step);

  const StepRecipe& recipe() const { return recipe_; }
  const optim::WarmupCosine& schedule() const { return schedule_; }

 private:
  models::ImageModel& model_;
  optim::AdamW& optimizer_;
  optim::WarmupCosine schedule_;
  StepRecipe recipe_;
  Device device_;
  Tensor step_loss_;  // task + aux summed over this step's micro-batches (device scalar)
};

}  // namespace vimoe::app
