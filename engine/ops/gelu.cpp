#include "engine/ops/gelu.h"

#include <utility>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/cpu/gelu.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/gelu.h"
#endif

namespace vimoe {

namespace {

// What the backward reads: contiguous x and bias, viewed as [rows, cols] (cols = the last
// dimension; a 0-dimensional x is one row of one element).
struct Saved {
  Tensor x, bias;
  int64_t rows = 0, cols = 0;
};

Tensor gelu_forward(const Saved& s) {
  Tensor out = Tensor::empty(s.x.shape(), TensorOptions(s.x.dtype(), s.x.device()));
  if (s.x.device().is_cpu()) {
    cpu::gelu_forward(s.x, s.bias, out, s.rows, s.cols);
  } else {
    VIMOE_CUDA_PATH("gelu", s.x,
                    VIMOE_CUDA_CHECK(kernels::gelu_forward(s.x.dtype(), s.x.data_ptr(), ops::ptr_or_null(s.bias),
                                                           out.data_ptr(), s.rows, s.cols, cuda::stream())););
  }
  return out;
}

// dx always (dbias is summed from it); dbias when `need_bias`.
std::pair<Tensor, Tensor> gelu_backward(const Saved& s, const Tensor& grad, bool need_bias) {
  VIMOE_PROFILE_SCOPE("gelu_backward");
  // The gradient arrives in whatever layout and dtype the consumer produced.
  const Tensor dy = grad.to(s.x.device()).to(s.x.dtype()).contiguous();
  const TensorOptions opts(s.x.dtype(), s.x.device());
  Tensor dx = Tensor::empty(s.x.shape(), opts);
  Tensor db = need_bias ? Tensor::empty({s.cols}, opts) : Tensor();
  if (s.rows == 0 || s.cols == 0) {
    if (db.defined()) db.zero_();
    return {dx, db};
  }
  if (s.x.device().is_cpu()) {
    cpu::gelu_backward(dy, s.x, s.bias, dx, db, s.rows, s.cols);
  } else {
    VIMOE_CUDA_PATH("gelu_backward", s.x,
      Tensor work;
      if (need_bias)
        work = Tensor::empty({kernels::gelu_backward_workspace(s.rows, s.cols)},
                             TensorOptions(s.x.dtype() == DType::F64 ? DType::F64 : DType::F32, s.x.device()));
      VIMOE_CUDA_CHECK(kernels::gelu_backward(s.x.dtype(), dy.data_ptr(), s.x.data_ptr(), ops::ptr_or_null(s.bias),
                                              dx.data_ptr(), ops::ptr_or_null(db), ops::ptr_or_null(work), s.rows,
                                              s.cols, cuda::stream()));
    );
  }
  return {dx, db};
}

Saved prepare(const Tensor& x, const Tensor& bias) {
  NoGradGuard no_grad;  // the op is one node; the layout copies are not recorded
  Saved s;
  s.x = x.contiguous().detach();
  if (bias.defined()) s.bias = bias.contiguous().detach();
  s.cols = x.dim() > 0 ? x.size(-1) : 1;
  s.rows = s.cols > 0 ? x.numel() / s.cols : 0;
  return s;
}

}  // namespace

Tensor gelu(const Tensor& x) {
  VIMOE_PROFILE_SCOPE("gelu");
  ops::check_defined(x, "gelu", "x");
  ops::check_floating(x, "gelu", "x");
  const Saved s = prepare(x, Tensor());
  Tensor out;
  {
    NoGradGuard no_grad;
    out = gelu_forward(s);
  }
  autograd::record("gelu", out, {x}, [s](const Tensor& g) {
    return std::vector<Tensor>{gelu_backward(s, g, false).first};
  });
  return out;
}

Tensor bias_gelu(const Tensor& x, const Tensor& bias_arg) {
  VIMOE_PROFILE_SCOPE("bias_gelu");
  const Tensor bias = autocast::follow(bias_arg, x);
  constexpr const char* op = "bias_gelu";
  ops::check_defined(x, op, "x");
  ops::check_defined(bias, op, "bias");
  ops::check_floating(x, op, "x");
  VIMOE_CHECK(x.dim() >= 1, op, ": x must have a last dimension for the bias, found ",
              describe(x));
  VIMOE_CHECK(bias.shape() == Shape{x.size(-1)}, op, ": bias must have shape [", x.size(-1),
              "] (the last dimension of x ", describe(x), "), found ", describe(bias));
  VIMOE_CHECK(bias.dtype() == x.dtype(), op, ": bias must have the dtype of x ", describe(x),
              ", found ", describe(bias));
  ops::check_same_device(x, bias, op);
  const Saved s = prepare(x, bias);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = gelu_forward(s);
  }
  const bool need_x = x.requires_grad(), need_bias = bias.requires_grad();
  autograd::record(op, out, {x, bias}, [s, need_x, need_bias](const Tensor& g) {
    auto [dx, db] = gelu_backward(s, g, need_bias);
    return std::vector<Tensor>{need_x ? dx : Tensor(), db};
  });
  return out;
}

}  // namespace vimoe
