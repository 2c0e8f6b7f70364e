#include "engine/ops/attention.h"

#include <cmath>
#include <cstdint>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/cpu/attention.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/softmax.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/attention.h"
#endif

namespace vimoe {

namespace {

// The log-sum-exp keeps f64 for gradient checks; everything else saves it in f32.
DType lse_dtype(DType dt) { return dt == DType::F64 ? DType::F64 : DType::F32; }

void check_shapes(const Tensor& q, const Tensor& k, const Tensor& v, const char* op) {
  ops::check_defined(q, op, "q");
  ops::check_defined(k, op, "k");
  ops::check_defined(v, op, "v");
  for (const auto& [name, t] : {std::pair<const char*, const Tensor&>{"q", q}, {"k", k}, {"v", v}})
    VIMOE_CHECK(t.dim() == 4, op, ": expected '", name, "' of shape [B, H, S, Dh], found ",
                describe(t));
  VIMOE_CHECK(k.shape() == q.shape() && v.shape() == q.shape(), op,
              ": q, k and v must have one shape, found q ", describe(q), ", k ", describe(k),
              ", v ", describe(v));
  ops::check_same_device(q, k, op);
  ops::check_same_device(q, v, op);
  ops::check_floating(q, op, "q");
  VIMOE_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), op,
              ": q, k and v must share one dtype, found q ", describe(q), ", k ", describe(k),
              ", v ", describe(v));
  VIMOE_CHECK(q.size(3) > 0, op, ": head dim must be positive, found q ", describe(q));
}

// The fused kernels' operands: check_shapes, and on CUDA what the kernels cover.
void check_qkv(const Tensor& q, const Tensor& k, const Tensor& v, const char* op) {
  check_shapes(q, k, v, op);
  if (q.is_cuda()) {
    VIMOE_CUDA_PATH(op, q,
      VIMOE_CHECK(q.dtype() == DType::F32 || q.dtype() == DType::BF16, op,
                  ": the CUDA kernels take f32 or bf16, found q ", describe(q));
      VIMOE_CHECK(kernels::attention_head_dim_supported(q.size(3)), op,
                  ": the CUDA kernels support head dim 64 or 128, found head dim ", q.size(3),
                  " (q ", describe(q), ")");
    );
  }
}

#ifdef VIMOE_WITH_CUDA
// The batch, head and row strides the kernels address a [B, H, S, Dh] operand through. A
// size-1 dim's stride never moves the address, so it is passed as 0 (which also keeps it out
// of the bf16 multiple-of-8 rule).
kernels::AttnLayout layout_of(const Tensor& t) {
  const Shape& st = t.strides();
  auto stride = [&](int64_t d) { return t.size(d) == 1 ? int64_t{0} : st[d]; };
  return {stride(0), stride(1), stride(2)};
}
#endif

// History-free operands the kernels read. On the GPU a view is passed through as it is when
// the kernels take its strides (unit last stride; bf16 also a 16-byte aligned start and
// strides that are multiples of 8 elements, kernels/attention.h), so the ViT's per-head views
// of its projections cost no copy. Everything else is copied contiguous and, on the GPU,
// 16-byte aligned (a view starting at an odd element offset is cloned: the bf16 kernels move
// rows in 16-byte pieces). The CPU reference reads contiguous tensors.
Tensor kernel_ready(const Tensor& t) {
  if (t.is_cuda() && t.numel() > 0 && t.strides()[3] == 1) {
    VIMOE_CUDA_PATH("attention", t,
      if (kernels::attention_operand_supported(t.dtype(), t.data_ptr(), layout_of(t))) return t.detach();
    );
  }
  Tensor c = t.contiguous();
  if (c.is_cuda() && c.numel() > 0 && reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 != 0)
    c = c.clone();
  return c.detach();
}

struct Forward {
  Tensor q, k, v, out, lse;  // the operands the kernels read (kernel_ready), and the results
};

Forward run_forward(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, double scale) {
  VIMOE_PROFILE_SCOPE("attention");
  check_qkv(q_in, k_in, v_in, "attention");
  VIMOE_CHECK(std::isfinite(scale), "attention: scale must be finite, found ", scale);
  NoGradGuard no_grad;
  Forward f{kernel_ready(q_in), kernel_ready(k_in), kernel_ready(v_in), {}, {}};
  const Shape& s = f.q.shape();
  const DType dt = f.q.dtype();
  // On the GPU the output is stored [B, S, H, Dh] and returned as its [B, H, S, Dh] view: the
  // kernels write it through its strides, and the usual next step, merging the heads back
  // into [B, S, H * Dh] (permute + reshape), is then a view instead of a copy.
  f.out = f.q.is_cuda() ? Tensor::empty({s[0], s[2], s[1], s[3]}, TensorOptions(dt, f.q.device()))
                              .permute({0, 2, 1, 3})
                        : Tensor::empty(s, TensorOptions(dt, f.q.device()));
  f.lse = Tensor::empty({s[0], s[1], s[2]}, TensorOptions(lse_dtype(dt), f.q.device()));
  if (f.out.numel() == 0) return f;
  if (f.q.device().is_cpu()) {
    cpu::attention_forward(f.q, f.k, f.v, f.out, f.lse, scale);
  } else {
    VIMOE_CUDA_PATH("attention", f.q,
      VIMOE_CUDA_CHECK(kernels::attention_forward(
          dt, f.q.data_ptr(), layout_of(f.q), f.k.data_ptr(), layout_of(f.k), f.v.data_ptr(),
          layout_of(f.v), f.out.data_ptr(), layout_of(f.out), f.lse.data<float>(), s[0] * s[1],
          s[1], s[2], s[3], static_cast<float>(scale), cuda::stream()));
    );
  }
  return f;
}

}  // namespace

AttentionOutput attention_with_lse(const Tensor& q_arg, const Tensor& k_arg, const Tensor& v_arg,
                                   double scale) {
  const Tensor q = autocast::lower(q_arg), k = autocast::lower(k_arg), v = autocast::lower(v_arg);
  Forward f = run_forward(q, k, v, scale);
  // Saves the operands the kernels read (the caller's views where the kernels take them,
  // else contiguous copies), the output and the lse.
  autograd::record("attention", f.out, {q, k, v},
                   [qc = f.q, kc = f.k, vc = f.v, out = f.out.detach(), lse = f.lse,
                    scale](const Tensor& g) {
                     const AttentionGrads gr =
                         attention_backward(qc, kc, vc, out, lse, g.to(out.dtype()), scale);
                     return std::vector<Tensor>{gr.dq, gr.dk, gr.dv};
                   });
  return {f.out, f.lse};
}

Tensor attention(const Tensor& q_arg, const Tensor& k_arg, const Tensor& v_arg, double scale) {
  // Cast once here; attention_with_lse's own autocast step then finds nothing to do.
  const Tensor q = autocast::lower(q_arg), k = autocast::lower(k_arg), v = autocast::lower(v_arg);
  if (q.defined() && q.is_cuda() && q.dim() == 4) {
    VIMOE_CUDA_PATH("attention", q,
      if (!kernels::attention_head_dim_supported(q.size(3)) || (q.dtype() != DType::F32 && q.dtype() != DType::BF16))
        return attention_composed(q, k, v, scale);
    );
  }
  return attention_with_lse(q, k, v, scale).out;
}

Tensor attention_composed(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  VIMOE_PROFILE_SCOPE("attention_composed");
  check_shapes(q, k, v, "attention");
  VIMOE_CHECK(std::isfinite(scale), "attention: scale must be finite, found ", scale);
  // Half-precision scores are scaled and normalised in f32 (one rounding, the GEMM's).
  Tensor scores = matmul(q, k.transpose(-1, -2));
  if (scores.dtype() == DType::BF16 || scores.dtype() == DType::F16) scores = scores.to(DType::F32);
  const Tensor probs = softmax(scores * scale, -1);
  return matmul(probs.to(v.dtype()), v);
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  check_shapes(q, k, v, "attention");  // the default scale needs a valid head dim
  return attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(q.size(3))));
}

AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, const Tensor& dout,
                                  double scale) {
  VIMOE_PROFILE_SCOPE("attention_backward");
  const char* op = "attention_backward";
  check_qkv(q, k, v, op);
  for (const auto& [name, t] : {std::pair<const char*, const Tensor&>{"out", out}, {"dout", dout}}) {
    ops::check_defined(t, op, name);
    VIMOE_CHECK(t.shape() == q.shape() && t.dtype() == q.dtype() && t.device() == q.device(), op,
                ": '", name, "' must match q ", describe(q), ", found ", describe(t));
  }
  ops::check_defined(lse, op, "lse");
  const Shape& s = q.shape();
  const Shape lse_shape{s[0], s[1], s[2]};
  VIMOE_CHECK(lse.shape() == lse_shape && lse.dtype() == lse_dtype(q.dtype()) &&
                  lse.device() == q.device(),
              op, ": expected lse ", shape_str(lse_shape), " ", dtype_name(lse_dtype(q.dtype())),
              " ", q.device().str(), " for q ", describe(q), ", found ", describe(lse));
  VIMOE_CHECK(std::isfinite(scale), op, ": scale must be finite, found ", scale);

  NoGradGuard no_grad;
  const Tensor qc = kernel_ready(q), kc = kernel_ready(k), vc = kernel_ready(v),
               oc = kernel_ready(out), gc = kernel_ready(dout), lc = lse.contiguous();
  const TensorOptions opts(q.dtype(), q.device());
  AttentionGrads r{Tensor::empty(s, opts), Tensor::empty(s, opts), Tensor::empty(s, opts)};
  if (qc.numel() == 0) return r;
  if (q.device().is_cpu()) {
    cpu::attention_backward(qc, kc, vc, oc, gc, lc, r.dq, r.dk, r.dv, scale);
  } else {
    VIMOE_CUDA_PATH(op, q,
      Tensor delta = Tensor::empty(lse_shape, TensorOptions(DType::F32, q.device()));
      VIMOE_CUDA_CHECK(kernels::attention_backward(
          q.dtype(), qc.data_ptr(), layout_of(qc), kc.data_ptr(), layout_of(kc), vc.data_ptr(),
          layout_of(vc), oc.data_ptr(), layout_of(oc), gc.data_ptr(), layout_of(gc),
          lc.data<float>(), delta.data<float>(), r.dq.data_ptr(), layout_of(r.dq),
          r.dk.data_ptr(), layout_of(r.dk), r.dv.data_ptr(), layout_of(r.dv), s[0] * s[1], s[1],
          s[2], s[3], static_cast<float>(scale), cuda::stream()));
    );
  }
  return r;
}

}  // namespace vimoe
