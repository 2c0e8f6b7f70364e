// AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient step.
//   p <- p * (1 - lr * wd)
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// Parameters are grouped: each group has its own learning-rate multiplier (layer-wise decay)
// and weight decay (0 for norms, biases, tokens). Parameters and state are f32 (or f64).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace vimoe::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr_scale = 1.0;      // multiplies the optimiser's learning rate
  double weight_decay = 0.0;  // decoupled, scaled by the effective learning rate
};

class AdamW {
 public:
  struct Options {
    double lr = 1e-3;
    double beta1 = 0.9, beta2 = 0.999;
    double eps = 1e-8;
  };

  AdamW(std::vector<ParamGroup> groups, Options options);

  // One update of every parameter that has a gradient; parameters without one are skipped
  // (their moments are untouched), as in PyTorch. On CUDA every parameter of one dtype is
  // updated by a single kernel launch (kernels/adamw.cu), whatever its group.
  void step();
  void zero_grad();
  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }
  int64_t steps() const { return step_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

  // Moments and step count, keyed "exp_avg.<group>.<index>", "exp_avg_sq.<group>.<index>",
  // "step", for checkpoints; load_state_dict checks every key and shape.
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state);

 private:
  std::vector<ParamGroup> groups_;
  Options options_;
  std::vector<std::vector<Tensor>> exp_avg_, exp_avg_sq_;
  int64_t step_ = 0;
};

// The global L2 norm sqrt(sum over tensors and elements of x^2) of a list of floating
// tensors (undefined entries are skipped), as a 0-dim f64 tensor on their device (the CPU
// for an empty list); all defined entries must be on one device. The sum is formed in f64
// on both devices: on the CPU per tensor and then across them; on CUDA in one multi-tensor
// pass (kernels/multi_tensor.h) whose result is bitwise reproducible and agrees with the
// CPU's to ~1e-15 relative. Nothing waits for the device.
Tensor grad_norm(const std::vector<Tensor>& grads);

// Scales all gradients so that their global L2 norm (grad_norm) is at most max_norm, by
// min(1, max_norm / (norm + 1e-6)) rounded to each gradient's dtype; returns the norm
// before clipping (as torch.nn.utils.clip_grad_norm_ does) as a 0-dim f64 tensor on the
// gradients' device. Nothing waits for the device: read the norm only when it is needed.
// On CUDA the norm is one multi-tensor pass and the scaling one more launch over every
// contiguous gradient (a non-contiguous one is scaled on its own).
Tensor clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace vimoe::optim
