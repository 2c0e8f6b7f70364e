#include "engine/optim/adamw.h"

#include <cmath>
#include <map>

#include "engine/autograd.h"
#include "engine/cpu/adamw.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/adamw.h"
#include "kernels/multi_tensor.h"
#endif

namespace vimoe::optim {

AdamW::AdamW(std::vector<ParamGroup> groups, Options options)
    : groups_(std::move(groups)), options_(options) {
  VIMOE_CHECK(options_.lr >= 0 && options_.eps >= 0 && options_.beta1 >= 0 &&
                  options_.beta1 < 1 && options_.beta2 >= 0 && options_.beta2 < 1,
              "AdamW: invalid options (lr ", options_.lr, ", betas ", options_.beta1, ", ",
              options_.beta2, ", eps ", options_.eps, ")");
  // A parameter listed twice would be updated twice per step (on CUDA by two blocks of one
  // launch at once), as PyTorch also refuses.
  std::map<const void*, std::pair<size_t, size_t>> seen;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    exp_avg_.emplace_back();
    exp_avg_sq_.emplace_back();
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
      const Tensor& p = groups_[gi].params[pi];
      VIMOE_CHECK(p.defined() && p.is_leaf() && p.requires_grad(), "AdamW: parameter ", pi,
                  " of group ", gi, " must be a leaf that requires grad, found ", describe(p));
      VIMOE_CHECK((p.dtype() == DType::F32 || p.dtype() == DType::F64) && p.is_contiguous(),
                  "AdamW: parameter ", pi, " of group ", gi,
                  " must be contiguous f32 or f64 (master weights), found ", describe(p));
      if (p.numel() > 0) {
        const auto [it, fresh] = seen.emplace(p.data_ptr(), std::make_pair(gi, pi));
        VIMOE_CHECK(fresh, "AdamW: parameter ", pi, " of group ", gi, " is parameter ", it->second.second,
                    " of group ", it->second.first, " again; each parameter may appear once");
      }
      const TensorOptions opts(p.dtype(), p.device());
      exp_avg_[gi].push_back(Tensor::zeros(p.shape(), opts));
      exp_avg_sq_[gi].push_back(Tensor::zeros(p.shape(), opts));
    }
  }
}

void AdamW::step() {
  NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1 - std::pow(options_.beta1, static_cast<double>(step_));
  const double bc2 = 1 - std::pow(options_.beta2, static_cast<double>(step_));
  // CUDA parameters are collected and updated together, one launch per dtype.
  struct Pending {
    Tensor p, g, m, v;  // g: the converted gradient, kept alive until the launch is queued
    double lr, weight_decay;
  };
  std::vector<Pending> on_gpu;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& group = groups_[gi];
    const double lr = options_.lr * group.lr_scale;
    for (size_t pi = 0; pi < group.params.size(); ++pi) {
      const Tensor& p = group.params[pi];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      g = g.to(p.dtype()).contiguous();
      const Tensor& m = exp_avg_[gi][pi];
      const Tensor& v = exp_avg_sq_[gi][pi];
      if (p.device().is_cpu()) {
        cpu::adamw_update(p, g, m, v,
                          {lr, options_.beta1, options_.beta2, options_.eps, group.weight_decay, bc1, bc2});
      } else {
        on_gpu.push_back({p, g, m, v, lr, group.weight_decay});
      }
    }
  }
  if (on_gpu.empty()) return;
  VIMOE_CUDA_PATH("AdamW.step", on_gpu.front().p,
    const kernels::AdamWHyper h{static_cast<float>(options_.beta1), static_cast<float>(options_.beta2),
                                static_cast<float>(options_.eps), static_cast<float>(bc1),
                                static_cast<float>(bc2)};
    std::vector<kernels::AdamWTensor> by_dtype[2];  // f32, f64
    for (const Pending& u : on_gpu)
      by_dtype[u.p.dtype() == DType::F64].push_back({u.p.data_ptr(), u.g.data_ptr(), u.m.data_ptr(),
                                                     u.v.data_ptr(), u.p.numel(), static_cast<float>(u.lr),
                                                     static_cast<float>(u.weight_decay)});
    for (int f64 = 0; f64 < 2; ++f64)
      if (!by_dtype[f64].empty())
        VIMOE_CUDA_CHECK(kernels::adamw_update(f64 ? DType::F64 : DType::F32, by_dtype[f64].data(),
                                               static_cast<int>(by_dtype[f64].size()), h, cuda::stream()));
  );
}

void AdamW::zero_grad() {
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) p.zero_grad();
}

std::map<std::string, Tensor> AdamW::state_dict() const {
  std::map<std::string, Tensor> out;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
      const std::string key = std::to_string(gi) + "." + std::to_string(pi);
      out.emplace("exp_avg." + key, exp_avg_[gi][pi]);
      out.emplace("exp_avg_sq." + key, exp_avg_sq_[gi][pi]);
    }
  out.emplace("step", Tensor::scalar(static_cast<double>(step_), DType::I64));
  return out;
}

void AdamW::load_state_dict(const std::map<std::string, Tensor>& state) {
  const std::map<std::string, Tensor> mine = state_dict();
  for (const auto& [k, t] : mine) {
    auto it = state.find(k);
    VIMOE_CHECK(it != state.end(), "AdamW::load_state_dict: missing \"", k, "\"");
    VIMOE_CHECK(it->second.shape() == t.shape(), "AdamW::load_state_dict: \"", k, "\" has shape ",
                shape_str(it->second.shape()), ", expected ", shape_str(t.shape()));
  }
  VIMOE_CHECK(state.size() == mine.size(), "AdamW::load_state_dict: ", state.size(),
              " entries for an optimiser with ", mine.size(), " (different parameter groups?)");
  NoGradGuard no_grad;
  for (auto& [k, t] : mine)
    if (k != "step") Tensor(t).copy_(state.at(k));
  step_ = state.at("step").item<int64_t>();
}

namespace {

constexpr double kClipEps = 1e-6;  // as torch.nn.utils.clip_grad_norm_

// The defined entries of `grads`, checked: floating, all on one device.
std::vector<Tensor> defined_grads(const std::vector<Tensor>& grads, const char* op) {
  std::vector<Tensor> out;
  size_t first = 0;
  for (size_t i = 0; i < grads.size(); ++i) {
    const Tensor& g = grads[i];
    if (!g.defined()) continue;
    VIMOE_CHECK(is_floating(g.dtype()), op, ": expected floating gradients, found ", describe(g),
                " at position ", i);
    if (out.empty()) first = i;
    VIMOE_CHECK(out.empty() || g.device() == out.front().device(), op,
                ": expected every gradient on one device; position ", first, " is on ",
                grads[first].device().str(), ", position ", i, " on ",
                g.device().str());
    out.push_back(g);
  }
  return out;
}

// The CPU reference: each tensor's sum of squares in f64, added in list order.
Tensor cpu_norm(const std::vector<Tensor>& grads) {
  Tensor total;
  for (const Tensor& g : grads) {
    const Tensor g64 = g.to(DType::F64);
    const Tensor sq = sum(g64 * g64);
    total = total.defined() ? total + sq : sq;
  }
  return sqrt(total);
}

#ifdef VIMOE_WITH_CUDA
// The multi-tensor table over contiguous forms of the gradients; `keep` holds them (the
// copies made of non-contiguous ones) until the launch is queued, after which the caching
// allocator's stream order makes freeing them safe.
std::vector<kernels::MultiTensorRef> table(const std::vector<Tensor>& grads,
                                           std::vector<Tensor>* keep) {
  std::vector<kernels::MultiTensorRef> refs;
  for (const Tensor& g : grads) {
    if (g.numel() == 0) continue;
    const Tensor c = g.contiguous();
    keep->push_back(c);
    refs.push_back({c.data_ptr(), c.numel(), c.dtype()});
  }
  return refs;
}

// The norm, and with `scale` the clip factor min(1, max_norm / (norm + eps)), on the device.
Tensor cuda_norm(const std::vector<Tensor>& grads, Tensor* scale, double max_norm) {
  const Device dev = grads.front().device();
  std::vector<Tensor> keep;
  const std::vector<kernels::MultiTensorRef> refs = table(grads, &keep);
  const int count = static_cast<int>(refs.size());
  const int64_t chunks = kernels::multi_tensor_l2_norm_workspace(refs.data(), count);
  const Tensor work = chunks > 0 ? Tensor::empty({chunks}, TensorOptions(DType::F64, dev)) : Tensor();
  Tensor norm = Tensor::empty({}, TensorOptions(DType::F64, dev));
  if (scale) *scale = Tensor::empty({}, TensorOptions(DType::F64, dev));
  VIMOE_CUDA_CHECK(kernels::multi_tensor_l2_norm(
      refs.data(), count, work.defined() ? work.data<double>() : nullptr, norm.data<double>(),
      scale ? scale->data<double>() : nullptr, max_norm, kClipEps, cuda::stream()));
  return norm;
}
#endif

}  // namespace

Tensor grad_norm(const std::vector<Tensor>& grads) {
  NoGradGuard no_grad;
  const std::vector<Tensor> gs = defined_grads(grads, "grad_norm");
  if (gs.empty()) return Tensor::zeros({}, DType::F64);
  if (gs.front().device().is_cpu()) return cpu_norm(gs);
  VIMOE_CUDA_PATH("grad_norm", gs.front(), return cuda_norm(gs, nullptr, 0););
}

Tensor clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params) grads.push_back(p.grad());
  const std::vector<Tensor> gs = defined_grads(grads, "clip_grad_norm");
  if (gs.empty()) return Tensor::zeros({}, DType::F64);
  if (gs.front().device().is_cpu()) {
    const Tensor norm = cpu_norm(gs);
    // min(1, max_norm / (norm + eps)) on the device: no host round trip per step.
    const Tensor scale = minimum(max_norm / (norm + kClipEps), scalar_like(1.0, norm));
    for (const Tensor& g : gs) Tensor(g).copy_(g * scale.to(g.dtype()));
    return norm;
  }
  VIMOE_CUDA_PATH("clip_grad_norm", gs.front(),
    Tensor scale;
    const Tensor norm = cuda_norm(gs, &scale, max_norm);
    // Contiguous gradients are scaled in place by one multi-tensor launch; another layout
    // (a gradient set by hand as a view) the way the CPU path does it.
    std::vector<kernels::MultiTensorRef> refs;
    for (const Tensor& g : gs) {
      if (g.numel() == 0) continue;
      if (g.is_contiguous()) refs.push_back({g.data_ptr(), g.numel(), g.dtype()});
      else Tensor(g).copy_(g * scale.to(g.dtype()));
    }
    VIMOE_CUDA_CHECK(kernels::multi_tensor_scale(refs.data(), static_cast<int>(refs.size()),
                                                 scale.data<double>(), cuda::stream()));
    return norm;
  );
}

}  // namespace vimoe::optim
