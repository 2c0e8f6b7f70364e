#include "engine/ops/layernorm.h"

#include <cmath>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/cpu/layernorm.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/layernorm.h"
#endif

namespace vimoe {

namespace {

constexpr const char* kOp = "layer_norm";

// weight and bias: [D] with D = x's last dimension, x's dtype and device.
void check_param(const Tensor& p, const Tensor& x, const char* name) {
  if (!p.defined()) return;
  const int64_t d = x.size(-1);
  VIMOE_CHECK(p.shape() == Shape{d}, kOp, ": ", name, " must have shape [", d,
              "] (the last dimension of x ", describe(x), "), found ", describe(p));
  VIMOE_CHECK(p.dtype() == x.dtype(), kOp, ": ", name, " must have the dtype of x ", describe(x),
              ", found ", describe(p));
  ops::check_same_device(x, p, kOp);
}

// Statistics stay in f32 for f32/bf16/f16 data (as the kernels keep them) and in f64 for f64.
DType stat_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

// The forward's results that the backward reads: contiguous x and weight, per-row stats.
struct Saved {
  Tensor x, weight, mean, rstd;
  int64_t rows = 0, cols = 0;
};

// dx, dweight, dbias (each only where `need_*`) from an arbitrary incoming gradient.
std::vector<Tensor> layer_norm_backward(const Saved& s, const Tensor& grad, bool need_x,
                                        bool need_w, bool need_b) {
  VIMOE_PROFILE_SCOPE("layer_norm_backward");
  // The gradient arrives in whatever layout and dtype the consumer produced.
  const Tensor dy = grad.to(s.x.device()).to(s.x.dtype()).contiguous();
  const TensorOptions opts(s.x.dtype(), s.x.device());
  Tensor dx = need_x ? Tensor::empty(s.x.shape(), opts) : Tensor();
  Tensor dw = need_w ? Tensor::empty({s.cols}, opts) : Tensor();
  Tensor db = need_b ? Tensor::empty({s.cols}, opts) : Tensor();
  if (s.rows == 0) {  // no rows: the column sums are empty sums
    if (dw.defined()) dw.zero_();
    if (db.defined()) db.zero_();
    return {dx, dw, db};
  }
  if (s.x.device().is_cpu()) {
    cpu::layer_norm_backward(dy, s.x, s.weight, s.mean, s.rstd, dx, dw, db, s.rows, s.cols);
  } else {
    VIMOE_CUDA_PATH("layer_norm (backward)", s.x,
      Tensor work;
      if (need_w || need_b)
        work = Tensor::empty({kernels::layer_norm_backward_workspace(s.rows, s.cols)},
                             TensorOptions(s.mean.dtype(), s.x.device()));
      VIMOE_CUDA_CHECK(kernels::layer_norm_backward(
          s.x.dtype(), dy.data_ptr(), s.x.data_ptr(), ops::ptr_or_null(s.weight), s.mean.data_ptr(),
          s.rstd.data_ptr(), ops::ptr_or_null(dx), ops::ptr_or_null(dw), ops::ptr_or_null(db),
          ops::ptr_or_null(work), s.rows, s.cols, cuda::stream()));
    );
  }
  return {dx, dw, db};
}

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight_arg, const Tensor& bias_arg, double eps) {
  VIMOE_PROFILE_SCOPE(kOp);
  const Tensor weight_in = autocast::follow(weight_arg, x_in), bias_in = autocast::follow(bias_arg, x_in);
  ops::check_defined(x_in, kOp, "x");
  ops::check_floating(x_in, kOp, "x");
  VIMOE_CHECK(x_in.dim() >= 1 && x_in.size(-1) >= 1, kOp,
              ": x must have a non-empty last dimension, found ", describe(x_in));
  check_param(weight_in, x_in, "weight");
  check_param(bias_in, x_in, "bias");
  VIMOE_CHECK(std::isfinite(eps) && eps >= 0, kOp, ": eps must be finite and >= 0, got ", eps,
              " for x ", describe(x_in));

  Saved s;
  s.cols = x_in.size(-1);
  s.rows = x_in.numel() / s.cols;
  Tensor y, bias;
  {
    NoGradGuard no_grad;  // the whole op is one node; the layout copies are not recorded
    s.x = x_in.contiguous().detach();
    if (weight_in.defined()) s.weight = weight_in.contiguous().detach();
    if (bias_in.defined()) bias = bias_in.contiguous();
    const Device dev = s.x.device();
    y = Tensor::empty(s.x.shape(), TensorOptions(s.x.dtype(), dev));
    s.mean = Tensor::empty({s.rows}, TensorOptions(stat_dtype(s.x.dtype()), dev));
    s.rstd = Tensor::empty({s.rows}, TensorOptions(stat_dtype(s.x.dtype()), dev));
    if (dev.is_cpu()) {
      cpu::layer_norm_forward(s.x, s.weight, bias, eps, y, s.mean, s.rstd, s.rows, s.cols);
    } else {
      VIMOE_CUDA_PATH(kOp, s.x,
        VIMOE_CUDA_CHECK(kernels::layer_norm_forward(
            s.x.dtype(), s.x.data_ptr(), ops::ptr_or_null(s.weight), ops::ptr_or_null(bias), y.data_ptr(),
            s.mean.data_ptr(), s.rstd.data_ptr(), s.rows, s.cols, eps, cuda::stream()));
      );
    }
  }
  const bool need_x = x_in.requires_grad();
  const bool need_w = weight_in.defined() && weight_in.requires_grad();
  const bool need_b = bias_in.defined() && bias_in.requires_grad();
  autograd::record(kOp, y, {x_in, weight_in, bias_in},
                   [s, need_x, need_w, need_b](const Tensor& g) {
                     return layer_norm_backward(s, g, need_x, need_w, need_b);
                   });
  return y;
}

}  // namespace vimoe
