#include "engine/ops/routing.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/autograd.h"
#include "engine/cpu/routing.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/index.h"
#include "engine/ops/reduce.h"
#include "engine/ops/softmax.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/routing.h"
#endif

namespace vimoe {

Routing route_topk(const Tensor& logits_in, int64_t k, bool renormalize, double alpha) {
  VIMOE_PROFILE_SCOPE("route_topk");
  ops::check_defined(logits_in, "route_topk", "logits");
  ops::check_floating(logits_in, "route_topk", "logits");
  VIMOE_CHECK(logits_in.dim() == 2, "route_topk: logits must be [rows, experts], found ",
              shape_str(logits_in.shape()));
  const int64_t R = logits_in.size(0), N = logits_in.size(1);
  VIMOE_CHECK(R >= 1 && N >= 1 && N <= 64, "route_topk: expected 1..64 experts and at least one "
              "row, found logits ", shape_str(logits_in.shape()));
  VIMOE_CHECK(k >= 1 && k <= N, "route_topk: k must be in 1..", N, " for ", N, " experts, found ", k);
  const DType st = logits_in.dtype() == DType::F64 ? DType::F64 : DType::F32;
  const Device dev = logits_in.device();
  const TensorOptions opts(st, dev);

  Routing out;
  Tensor counts;
  {
    NoGradGuard no_grad;
    const Tensor logits = logits_in.to(st).contiguous();
    out.probs = Tensor::empty({R, N}, opts);
    out.expert_ids = Tensor::empty({R, k}, TensorOptions(DType::I32, dev));
    out.gates = Tensor::empty({R, k}, opts);
    counts = Tensor::zeros({N}, TensorOptions(DType::I32, dev));
    if (dev.is_cpu()) {
      cpu::routing_forward(logits, k, renormalize, out.probs, out.expert_ids, out.gates, counts);
    } else {
      VIMOE_CUDA_PATH("route_topk", logits,
        VIMOE_CUDA_CHECK(kernels::routing_forward(st, logits.data_ptr(), R, static_cast<int>(N),
                                                  static_cast<int>(k), renormalize, out.probs.data_ptr(),
                                                  out.expert_ids.data<int32_t>(), out.gates.data_ptr(),
                                                  counts.data<int32_t>(), cuda::stream()));
      );
    }
    out.load = counts.to(st) / static_cast<double>(R);
    const Tensor mean_prob = sum(out.probs, {0}) / static_cast<double>(R);
    out.aux_loss = sum(out.load * mean_prob) * (alpha * static_cast<double>(N));
  }
  const Tensor probs = out.probs, ids = out.expert_ids, load = out.load;
  autograd::record_multi(
      "route_topk", {&out.gates, &out.aux_loss}, {logits_in},
      [probs, ids, load, renormalize, alpha, R, N, k](const std::vector<Tensor>& g) {
        const Tensor dgates = g[0].to(probs.dtype()).contiguous();
        const Tensor daux = g[1].to(probs.dtype()).contiguous();
        Tensor dlogits = Tensor::empty({R, N}, TensorOptions(probs.dtype(), probs.device()));
        if (probs.device().is_cpu()) {
          cpu::routing_backward(probs, ids, load, dgates, daux.item<double>(), renormalize, alpha,
                                dlogits);
        } else {
          VIMOE_CUDA_PATH("route_topk (backward)", probs,
            VIMOE_CUDA_CHECK(kernels::routing_backward(
                probs.dtype(), probs.data_ptr(), ids.data<int32_t>(), load.data_ptr(),
                dgates.data_ptr(), daux.data_ptr(), R, static_cast<int>(N), static_cast<int>(k),
                renormalize, alpha, dlogits.data_ptr(), cuda::stream()));
          );
        }
        return std::vector<Tensor>{dlogits};
      });
  return out;
}

namespace {

// var(v) / (mean(v)^2 + eps), population variance: V-MoE's cv_squared.
Tensor cv_squared(const Tensor& v) {
  const Tensor m = mean(v);
  return mean((v - m) * (v - m)) / (m * m + 1e-10);
}

}  // namespace

Tensor importance_load_loss(const Tensor& logits_in, const Tensor& noisy_in, const Tensor& expert_ids,
                            double sigma) {
  VIMOE_PROFILE_SCOPE("importance_load_loss");
  constexpr const char* op = "importance_load_loss";
  ops::check_defined(logits_in, op, "logits");
  ops::check_defined(noisy_in, op, "noisy");
  ops::check_defined(expert_ids, op, "expert_ids");
  ops::check_floating(logits_in, op, "logits");
  ops::check_floating(noisy_in, op, "noisy");
  VIMOE_CHECK(logits_in.dim() == 2 && noisy_in.shape() == logits_in.shape(), op,
              ": expected logits [R, N] and noisy logits of the same shape, found ", describe(logits_in), " and ",
              describe(noisy_in));
  VIMOE_CHECK(expert_ids.dim() == 2 && expert_ids.size(0) == logits_in.size(0) && expert_ids.size(1) >= 1 &&
                  expert_ids.size(1) <= logits_in.size(1) && expert_ids.dtype() == DType::I32,
              op, ": expected expert_ids i32 [", logits_in.size(0), ", k] with 1 <= k <= ", logits_in.size(1),
              ", found ", describe(expert_ids));
  VIMOE_CHECK(sigma > 0, op, ": expected a positive noise std, found ", sigma);
  // Routing statistics in f32 at least, as route_topk.
  const DType t = logits_in.dtype() == DType::F64 ? DType::F64 : DType::F32;
  const Tensor logits = logits_in.to(t), noisy = noisy_in.to(t);
  const int64_t k = expert_ids.size(1);
  const Tensor importance = sum(softmax(noisy, 1), {0});                            // [N]
  const Tensor threshold = gather(noisy, 1, expert_ids.narrow(1, k - 1, 1).contiguous());     // [R, 1]
  const Tensor z = (threshold - logits) * (1.0 / (sigma * std::numbers::sqrt2));  // [R, N]
  const Tensor load = sum((1.0 - erf(z)) * 0.5, {0});                              // 1 - Phi, summed
  return (cv_squared(importance) + cv_squared(load)) * 0.5;
}

Tensor capacity_mask(const Tensor& expert_ids, int64_t experts, int64_t capacity, const Tensor& priority,
                     DType dtype) {
  VIMOE_PROFILE_SCOPE("capacity_mask");
  constexpr const char* op = "capacity_mask";
  ops::check_defined(expert_ids, op, "expert_ids");
  VIMOE_CHECK(expert_ids.dim() == 2 && expert_ids.dtype() == DType::I32, op,
              ": expert_ids must be i32 [rows, k], found ", describe(expert_ids));
  VIMOE_CHECK(experts >= 1 && capacity >= 0, op, ": expected experts >= 1 and capacity >= 0, found ", experts,
              " experts and capacity ", capacity);
  const int64_t R = expert_ids.size(0);
  if (priority.defined()) {
    ops::check_floating(priority, op, "priority");
    VIMOE_CHECK(priority.dim() == 1 && priority.size(0) == R, op, ": priority must be [", R, "] for expert_ids ",
                describe(expert_ids), ", found ", describe(priority));
  }
  NoGradGuard no_grad;
  const Tensor ids = expert_ids.to(Device::cpu()).contiguous();
  for (const int32_t e : ids.to_vector<int32_t>())
    VIMOE_CHECK(e >= 0 && e < experts, op, ": expert id ", e, " is outside [0, ", experts, ")");
  const Tensor prio = priority.defined() ? priority.detach().to(Device::cpu()).to(DType::F64).contiguous() : Tensor();
  Tensor keep = Tensor::empty(ids.shape(), TensorOptions(DType::U8, Device::cpu()));
  cpu::capacity_mask(ids, prio, experts, capacity, keep);
  return keep.to(dtype).to(expert_ids.device());
}

int64_t expert_capacity(double capacity_factor, int64_t k, int64_t rows, int64_t experts) {
  VIMOE_CHECK(capacity_factor > 0 && k >= 1 && rows >= 0 && experts >= 1, "expert_capacity: expected a positive "
              "capacity factor, k >= 1 and experts >= 1, found factor ", capacity_factor, ", k ", k, ", ", experts,
              " experts");
  const double slots = capacity_factor * static_cast<double>(k * rows) / static_cast<double>(experts);
  // The product is formed in double: round away the error of an exact quotient (1.0 * 4 * 6 / 3)
  // before the ceiling, or 8 + 1e-15 would become 9.
  const double nearest = std::round(slots);
  const int64_t c = std::abs(slots - nearest) < 1e-9 ? static_cast<int64_t>(nearest)
                                                      : static_cast<int64_t>(std::ceil(slots));
  return std::max<int64_t>(c, 1);
}

}  // namespace vimoe
