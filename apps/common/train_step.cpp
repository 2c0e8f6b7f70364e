#include "apps/common/train_step.h"

#include <cmath>

#include "engine/autocast.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/index.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/softmax.h"

namespace vimoe::app {

TrainStep::TrainStep(models::ImageModel& model, optim::AdamW& optimizer,
                     optim::WarmupCosine schedule, StepRecipe recipe, Device device)
    : model_(model), optimizer_(optimizer), schedule_(schedule), recipe_(recipe), device_(device) {
  VIMOE_CHECK(recipe_.accum_steps > 0, "TrainStep: accum_steps must be positive, found ",
              recipe_.accum_steps);
  VIMOE_CHECK(recipe_.clip_grad >= 0, "TrainStep: clip_grad must be >= 0 (0: off), found ",
              recipe_.clip_grad);
}

MicroBatchLoss TrainStep::micro_batch(const data::Batch& batch) {
  models::ModelOutput out;
  Tensor task, aux, loss, router_accuracy;
  {
    AutocastGuard mixed(recipe_.autocast.value_or(DType::BF16), recipe_.autocast.has_value());
    out = model_.forward(batch.images.to(device_));
    const Tensor logits = out.logits.to(DType::F32);
    if (batch.masks.defined()) {
      // Segmentation: logits [B, classes, H, W] against the label maps, ignored pixels left out.
      task = pixel_cross_entropy(logits, batch.masks.to(device_), recipe_.ignore_index);
    } else if (batch.targets.defined()) {
      // Soft targets from mixup / cutmix (already label-smoothed).
      task = mean(sum(batch.targets.to(device_) * log_softmax(logits, 1), {1})) * -1.0;
    } else {
      task = cross_entropy(logits, batch.labels.to(device_), recipe_.label_smoothing);
    }
    aux = out.aux_loss;
    if (recipe_.group_of.defined()) {
      VIMOE_CHECK(out.router_logits.defined(), "TrainStep: super-class targets need a model with a single router "
                  "(--single-router)");
      const Tensor groups = index_select(recipe_.group_of, 0, batch.labels.to(device_));
      const Tensor router_logits = out.router_logits.to(DType::F32);
      aux = aux + cross_entropy(router_logits, groups) * recipe_.superclass_weight;
      router_accuracy = mean(eq(argmax(router_logits, 1), groups).to(DType::F32)).detach();
    }
    loss = task + aux;
  }
  (loss / static_cast<double>(recipe_.accum_steps)).backward();
  step_loss_ = step_loss_.defined() ? step_loss_ + loss.detach() : loss.detach();
  MicroBatchLoss result{task.detach(), aux.detach(), {}, router_accuracy};
  for (const Routing& r : out.routing)
    if (r.keep.defined()) result.dropped.push_back(1.0 - mean(r.keep.detach()));
  return result;
}

StepResult TrainStep::finish(int64_t step) {
  StepResult r;
  r.lr = schedule_.at(step);
  optimizer_.set_lr(r.lr);
  if (recipe_.clip_grad > 0) {
    r.grad_norm = optim::clip_grad_norm(model_.parameters(), recipe_.clip_grad);
  } else {
    std::vector<Tensor> grads;
    for (const Tensor& p : model_.parameters()) grads.push_back(p.grad());
    r.grad_norm = optim::grad_norm(grads);
  }
  VIMOE_CHECK(step_loss_.defined(), "TrainStep::finish: no micro-batch ran for step ", step);
  r.norm = r.grad_norm.item<double>();
  r.loss = step_loss_.item<double>() / static_cast<double>(recipe_.accum_steps);
  step_loss_ = Tensor();
  r.skipped = !std::isfinite(r.norm) || !std::isfinite(r.loss);
  if (!r.skipped) optimizer_.step();
  optimizer_.zero_grad();
  return r;
}

}  // namespace vimoe::app
