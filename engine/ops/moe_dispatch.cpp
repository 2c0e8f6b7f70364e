#include "engine/ops/moe_dispatch.h"

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/cpu/moe_dispatch.h"
#include "engine/cpu/linalg.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/gemm.h"
#include "kernels/moe_dispatch.h"
#endif

namespace vimoe {

namespace {

void check_plan_rows(const Tensor& t, int64_t want, const char* op, const char* what) {
  VIMOE_CHECK(t.dim() >= 1 && t.size(0) == want, op, ": ", what, " must have ", want,
              " rows (dim 0), found ", shape_str(t.shape()));
}

// out[i] = scale[order[i]] * x[order[i] / k]; scale may be undefined.
Tensor gather(const Tensor& x, const DispatchPlan& plan, const Tensor& scale) {
  Shape shape = x.shape();
  shape[0] = plan.rows * plan.k;
  Tensor out = Tensor::empty(shape, TensorOptions(x.dtype(), x.device()));
  if (x.device().is_cpu()) {
    cpu::gather_rows(x, plan.order, plan.k, scale, out);
  } else {
    VIMOE_CUDA_PATH("dispatch_rows", x,
      const int64_t width = plan.rows ? x.numel() / plan.rows : 0;
      VIMOE_CUDA_CHECK(kernels::gather_rows(
          x.dtype(), x.data_ptr(), plan.order.data<int32_t>(), shape[0], plan.k, width,
          ops::ptr_or_null(scale), scale.defined() ? scale.dtype() : DType::F32,
          out.data_ptr(), cuda::stream()));
    );
  }
  return out;
}

// y[r] = sum_j gates[r*k + j] * src[position[r*k + j]]; gates may be undefined.
Tensor combine(const Tensor& src, const DispatchPlan& plan, const Tensor& gates) {
  Shape shape = src.shape();
  shape[0] = plan.rows;
  Tensor y = Tensor::empty(shape, TensorOptions(src.dtype(), src.device()));
  if (src.device().is_cpu()) {
    cpu::combine_rows(src, plan.position, plan.k, gates, y);
  } else {
    VIMOE_CUDA_PATH("combine_rows", src,
      const int64_t width = plan.rows ? y.numel() / plan.rows : 0;
      VIMOE_CUDA_CHECK(kernels::combine_rows(
          src.dtype(), src.data_ptr(), plan.position.data<int32_t>(), plan.rows, plan.k, width,
          ops::ptr_or_null(gates), gates.defined() ? gates.dtype() : DType::F32,
          y.data_ptr(), cuda::stream()));
    );
  }
  return y;
}

// C[m, n] = op(A) @ op(B) (+ C when accumulate) on raw row-major pointers, on either device.
void gemm(Device dev, DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* a,
          int64_t lda, const void* b, int64_t ldb, bool accumulate, void* c, int64_t ldc) {
  if (m == 0 || n == 0 || k == 0) return;
  const double beta = accumulate ? 1.0 : 0.0;
  if (dev.is_cpu()) {
    cpu::gemm(dt, ta, tb, m, n, k, 1.0, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
  } else {
    VIMOE_CUDA_PATH("grouped_linear", dev,
      VIMOE_CUBLAS_CHECK(kernels::gemm_strided_batched(cuda::cublas(), dt, ta, tb, m, n, k, 1.0, a, lda,
                                                       0, b, ldb, 0, beta, c, ldc, 0, 1));
    );
  }
}

// Byte address of element `index` of a contiguous tensor.
void* at(const Tensor& t, int64_t index) {
  return static_cast<char*>(t.data_ptr()) + index * static_cast<int64_t>(dtype_size(t.dtype()));
}

}  // namespace

DispatchPlan plan_dispatch(const Tensor& expert_ids, int64_t experts) {
  VIMOE_PROFILE_SCOPE("plan_dispatch");
  ops::check_defined(expert_ids, "plan_dispatch", "expert_ids");
  VIMOE_CHECK(expert_ids.dim() == 2 && expert_ids.dtype() == DType::I32,
              "plan_dispatch: expert_ids must be [rows, k] i32, found ", describe(expert_ids));
  VIMOE_CHECK(experts >= 1 && experts <= 1024, "plan_dispatch: 1..1024 experts supported, found ",
              experts);
  DispatchPlan plan;
  plan.rows = expert_ids.size(0);
  plan.k = expert_ids.size(1);
  plan.experts = experts;
  const int64_t slots = plan.rows * plan.k;
  VIMOE_CHECK(slots < (int64_t{1} << 31), "plan_dispatch: ", slots, " slots exceed the i32 range");
  const Tensor ids = expert_ids.contiguous();
  const TensorOptions i32(DType::I32, ids.device());
  plan.order = Tensor::empty({slots}, i32);
  plan.position = Tensor::empty({slots}, i32);
  plan.offsets.assign(experts + 1, 0);
  if (ids.device().is_cpu()) {
    cpu::plan_dispatch(ids, experts, plan.order, plan.position, plan.offsets.data());
  } else {
    VIMOE_CUDA_PATH("plan_dispatch", ids,
      Tensor offsets = Tensor::empty({experts + 2}, TensorOptions(DType::I64, ids.device()));
      VIMOE_CUDA_CHECK(kernels::plan_dispatch(ids.data<int32_t>(), slots, static_cast<int>(experts),
                                              plan.order.data<int32_t>(), plan.position.data<int32_t>(),
                                              offsets.data<int64_t>(), cuda::stream()));
      // The grouped GEMMs need the segment sizes on the host: one small synchronous copy.
      const std::vector<int64_t> host = offsets.to_vector<int64_t>();
      VIMOE_CHECK(host[experts + 1] == 0, "plan_dispatch: ", host[experts + 1],
                  " expert ids are outside [0, ", experts, ")");
      std::copy(host.begin(), host.begin() + experts + 1, plan.offsets.begin());
    );
  }
  return plan;
}

Tensor dispatch_rows(const Tensor& x, const DispatchPlan& plan) {
  VIMOE_PROFILE_SCOPE("dispatch_rows");
  ops::check_defined(x, "dispatch_rows", "x");
  check_plan_rows(x, plan.rows, "dispatch_rows", "x");
  VIMOE_CHECK(x.device() == plan.order.device(), "dispatch_rows: x is on ", x.device().str(),
              ", the plan on ", plan.order.device().str());
  Tensor out;
  {
    NoGradGuard no_grad;
    out = gather(x.contiguous(), plan, Tensor());
  }
  autograd::record("dispatch_rows", out, {x}, [plan](const Tensor& g) {
    return std::vector<Tensor>{combine(g.contiguous(), plan, Tensor())};
  });
  return out;
}

Tensor grouped_linear(const Tensor& buf_arg, const Tensor& weight_arg, const Tensor& bias_arg,
                      const DispatchPlan& plan) {
  VIMOE_PROFILE_SCOPE("grouped_linear");
  const Tensor buf_in = autocast::lower(buf_arg), weight_in = autocast::lower(weight_arg),
               bias_in = autocast::lower(bias_arg);
  ops::check_defined(buf_in, "grouped_linear", "buf");
  ops::check_defined(weight_in, "grouped_linear", "weight");
  ops::check_floating(buf_in, "grouped_linear", "buf");
  VIMOE_CHECK(weight_in.dim() == 3 && weight_in.size(0) == plan.experts, "grouped_linear: weight must be [",
              plan.experts, ", out, in], found ", shape_str(weight_in.shape()));
  const int64_t out_f = weight_in.size(1), in_f = weight_in.size(2);
  VIMOE_CHECK(buf_in.dim() >= 2 && buf_in.size(0) == plan.rows * plan.k && buf_in.size(-1) == in_f,
              "grouped_linear: buf must be [", plan.rows * plan.k, ", ..., ", in_f, "], found ",
              shape_str(buf_in.shape()));
  VIMOE_CHECK(buf_in.dtype() == weight_in.dtype(), "grouped_linear: buf is ", dtype_name(buf_in.dtype()),
              ", weight is ", dtype_name(weight_in.dtype()));
  ops::check_same_device(buf_in, weight_in, "grouped_linear");
  if (bias_in.defined()) {
    VIMOE_CHECK(bias_in.shape() == (Shape{plan.experts, out_f}) && bias_in.dtype() == buf_in.dtype(),
                "grouped_linear: bias must be ", shape_str({plan.experts, out_f}), " ",
                dtype_name(buf_in.dtype()), ", found ", describe(bias_in));
    ops::check_same_device(buf_in, bias_in, "grouped_linear");
  }
  const Tensor buf = buf_in.contiguous(), weight = weight_in.contiguous();
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
  // Tokens per buffer row: a routed row may be a whole image.
  const int64_t slots = plan.rows * plan.k;
  const int64_t tokens = slots > 0 && in_f > 0 ? buf.numel() / (slots * in_f) : 0;
  Shape out_shape = buf.shape();
  out_shape.back() = out_f;
  Tensor out = Tensor::empty(out_shape, TensorOptions(buf.dtype(), buf.device()));
  {
    NoGradGuard no_grad;
    for (int64_t e = 0; e < plan.experts; ++e) {
      const int64_t first = plan.offsets[e] * tokens, count = (plan.offsets[e + 1] - plan.offsets[e]) * tokens;
      if (count == 0) continue;
      Tensor seg = out.view({-1, out_f}).narrow(0, first, count);
      if (bias.defined()) seg.copy_(bias.select(0, e));
      gemm(buf.device(), buf.dtype(), false, true, count, out_f, in_f, at(buf, first * in_f), in_f,
           at(weight, e * out_f * in_f), in_f, bias.defined(), seg.data_ptr(), out_f);
    }
  }
  autograd::record("grouped_linear", out, {buf_in, weight_in, bias_in},
                   [plan, buf, weight, has_bias = bias.defined(), tokens, in_f, out_f](const Tensor& g_in) {
    const Tensor g = g_in.to(buf.dtype()).contiguous();
    const TensorOptions opts(buf.dtype(), buf.device());
    // Every buffer row belongs to one expert's segment, whose GEMM writes it, so d_buf needs
    // no zeros (unless out_f == 0 leaves the GEMMs nothing to do); the weight and bias
    // gradients of experts that got no rows are zeroed below.
    Tensor d_buf = out_f > 0 ? Tensor::empty(buf.shape(), opts) : Tensor::zeros(buf.shape(), opts);
    Tensor d_w = Tensor::empty(weight.shape(), opts);
    Tensor d_b = has_bias ? Tensor::empty({plan.experts, out_f}, opts) : Tensor();
    for (int64_t e = 0; e < plan.experts; ++e) {
      const int64_t first = plan.offsets[e] * tokens, count = (plan.offsets[e + 1] - plan.offsets[e]) * tokens;
      if (count == 0) {
        d_w.select(0, e).zero_();
        if (has_bias) d_b.select(0, e).zero_();
        continue;
      }
      // d buf_e = g_e @ W_e;  d W_e = g_e^T @ buf_e;  d b_e = column sums of g_e.
      gemm(buf.device(), buf.dtype(), false, false, count, in_f, out_f, at(g, first * out_f), out_f,
           at(weight, e * out_f * in_f), in_f, false, at(d_buf, first * in_f), in_f);
      gemm(buf.device(), buf.dtype(), true, false, out_f, in_f, count, at(g, first * out_f), out_f,
           at(buf, first * in_f), in_f, false, at(d_w, e * out_f * in_f), in_f);
      if (has_bias) d_b.select(0, e).copy_(sum(g.view({-1, out_f}).narrow(0, first, count), {0}));
    }
    return std::vector<Tensor>{d_buf, d_w, d_b};
  });
  return out;
}

Tensor combine_rows(const Tensor& expert_out, const Tensor& gates, const DispatchPlan& plan) {
  VIMOE_PROFILE_SCOPE("combine_rows");
  ops::check_defined(expert_out, "combine_rows", "expert_out");
  ops::check_defined(gates, "combine_rows", "gates");
  ops::check_floating(expert_out, "combine_rows", "expert_out");
  check_plan_rows(expert_out, plan.rows * plan.k, "combine_rows", "expert_out");
  VIMOE_CHECK(gates.shape() == (Shape{plan.rows, plan.k}), "combine_rows: gates must be ",
              shape_str({plan.rows, plan.k}), ", found ", shape_str(gates.shape()));
  ops::check_same_device(expert_out, gates, "combine_rows");
  const DType gate_dtype = expert_out.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor y;
  const Tensor src = expert_out.contiguous();
  const Tensor g = gates.to(gate_dtype).contiguous();
  {
    NoGradGuard no_grad;
    y = combine(src, plan, g);
  }
  autograd::record("combine_rows", y, {expert_out, gates}, [plan, src, g](const Tensor& dy_in) {
    const Tensor dy = dy_in.to(src.dtype()).contiguous();
    // d expert_out[position[s]] = gates[s] * dy[s / k];  d gates[s] = <dy[s / k], src[position[s]]>.
    const Tensor d_src = gather(dy, plan, g);
    Tensor d_gates = Tensor::empty({plan.rows, plan.k}, TensorOptions(g.dtype(), g.device()));
    if (dy.device().is_cpu()) {
      cpu::gates_grad(dy, src, plan.position, plan.k, d_gates);
    } else {
      VIMOE_CUDA_PATH("combine_rows (backward)", dy,
        const int64_t width = plan.rows ? dy.numel() / plan.rows : 0;
        VIMOE_CUDA_CHECK(kernels::gates_grad(src.dtype(), dy.data_ptr(), src.data_ptr(),
                                             plan.position.data<int32_t>(), plan.rows, plan.k, width,
                                             d_gates.data_ptr(), g.dtype(), cuda::stream()));
      );
    }
    return std::vector<Tensor>{d_src, d_gates};
  });
  return y;
}

}  // namespace vimoe
