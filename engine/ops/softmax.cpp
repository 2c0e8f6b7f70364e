#include "engine/ops/softmax.h"

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/cpu/softmax.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/softmax.h"
#endif

namespace vimoe {

namespace {

// A contiguous tensor seen as [outer, n, inner] around axis `dim` (a 0-dim tensor is one
// element: [1, 1, 1]).
struct AxisPlan {
  int64_t outer = 1, n = 1, inner = 1;
};

AxisPlan plan_axis(const Tensor& x, int64_t dim, const char* op) {
  AxisPlan p;
  const int64_t d = wrap_dim(dim, x.dim(), op);
  for (int64_t k = 0; k < x.dim(); ++k) {
    if (k < d) p.outer *= x.size(k);
    else if (k == d) p.n = x.size(k);
    else p.inner *= x.size(k);
  }
  return p;
}

Tensor forward(const Tensor& x_arg, int64_t dim, bool log, const char* op) {
  VIMOE_PROFILE_SCOPE(op);
  const Tensor x_in = autocast::upper(x_arg);
  ops::check_defined(x_in, op, "x");
  ops::check_floating(x_in, op, "x");
  const AxisPlan p = plan_axis(x_in, dim, op);
  Tensor y;
  {
    NoGradGuard no_grad;
    const Tensor x = x_in.detach().contiguous();
    y = Tensor::empty(x.shape(), TensorOptions(x.dtype(), x.device()));
    if (x.device().is_cpu()) {
      cpu::softmax_forward(x, y, p.outer, p.n, p.inner, log);
    } else {
      VIMOE_CUDA_PATH(op, x,
        VIMOE_CUDA_CHECK(kernels::softmax_forward(x.dtype(), x.data_ptr(), y.data_ptr(), p.outer,
                                                  p.n, p.inner, log, cuda::stream()));
      );
    }
  }
  autograd::record(op, y, {x_in}, [y_saved = y.detach(), dim, log](const Tensor& g) {
    return std::vector<Tensor>{log ? log_softmax_backward(g, y_saved, dim)
                                   : softmax_backward(g, y_saved, dim)};
  });
  return y;
}

Tensor backward(const Tensor& dy_in, const Tensor& y_in, int64_t dim, bool log, const char* op) {
  VIMOE_PROFILE_SCOPE(op);
  ops::check_defined(dy_in, op, "dy");
  ops::check_defined(y_in, op, "y");
  ops::check_floating(y_in, op, "y");
  ops::check_same_device(dy_in, y_in, op);
  VIMOE_CHECK(dy_in.shape() == y_in.shape(), op, ": dy and y differ in shape: ", describe(dy_in),
              " vs ", describe(y_in));
  const AxisPlan p = plan_axis(y_in, dim, op);
  NoGradGuard no_grad;
  const Tensor y = y_in.detach().contiguous();
  const Tensor dy = dy_in.detach().to(y.dtype()).contiguous();
  Tensor dx = Tensor::empty(y.shape(), TensorOptions(y.dtype(), y.device()));
  if (y.device().is_cpu()) {
    cpu::softmax_backward(dy, y, dx, p.outer, p.n, p.inner, log);
  } else {
    VIMOE_CUDA_PATH(op, y,
      VIMOE_CUDA_CHECK(kernels::softmax_backward(y.dtype(), dy.data_ptr(), y.data_ptr(),
                                                 dx.data_ptr(), p.outer, p.n, p.inner, log,
                                                 cuda::stream()));
    );
  }
  return dx;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return forward(x, dim, false, "softmax"); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return forward(x, dim, true, "log_softmax"); }

Tensor softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim) {
  return backward(dy, y, dim, false, "softmax_backward");
}
Tensor log_softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim) {
  return backward(dy, y, dim, true, "log_softmax_backward");
}

}  // namespace vimoe
