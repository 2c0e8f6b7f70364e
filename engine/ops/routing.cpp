#include "engine/ops/routing.h"

#include "engine/autograd.h"
#include "engine/cpu/routing.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
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

}  // namespace vimoe
