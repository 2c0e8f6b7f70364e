#include "engine/ops/interpolate.h"

#include "engine/autograd.h"
#include "engine/cpu/interpolate.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/interpolate.h"
#endif

namespace vimoe {

namespace {

struct Geometry {
  int64_t planes = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  Shape input;
  DType dtype = DType::F32;
  Device device = Device::cpu();
};

Tensor bilinear_backward(const Geometry& g, const Tensor& grad) {
  VIMOE_PROFILE_SCOPE("interpolate_bilinear_backward");
  const Tensor dy = grad.to(g.device).to(g.dtype).contiguous();
  Tensor dx = Tensor::empty(g.input, TensorOptions(g.dtype, g.device));
  if (g.planes == 0) return dx;
  if (g.device.is_cpu()) {
    cpu::bilinear_backward(dy, dx, g.planes, g.in_h, g.in_w, g.out_h, g.out_w);
  } else {
    VIMOE_CUDA_PATH("interpolate_bilinear_backward", dy,
                    VIMOE_CUDA_CHECK(kernels::bilinear_backward(g.dtype, dy.data_ptr(), dx.data_ptr(), g.planes,
                                                                g.in_h, g.in_w, g.out_h, g.out_w, cuda::stream())););
  }
  return dx;
}

}  // namespace

Tensor interpolate_bilinear(const Tensor& x_arg, int64_t out_h, int64_t out_w) {
  VIMOE_PROFILE_SCOPE("interpolate_bilinear");
  constexpr const char* op = "interpolate_bilinear";
  ops::check_defined(x_arg, op, "x");
  ops::check_floating(x_arg, op, "x");
  VIMOE_CHECK(x_arg.dim() == 4, op, ": expected x [N, C, H, W], found ", describe(x_arg));
  VIMOE_CHECK(out_h >= 1 && out_w >= 1, op, ": the output size must be at least 1x1, found ", out_h, "x", out_w,
              " (for x ", describe(x_arg), ")");
  VIMOE_CHECK(x_arg.size(2) >= 1 && x_arg.size(3) >= 1, op, ": x must have at least one row and column, found ",
              describe(x_arg));
  Geometry g;
  g.planes = x_arg.size(0) * x_arg.size(1);
  g.in_h = x_arg.size(2);
  g.in_w = x_arg.size(3);
  g.out_h = out_h;
  g.out_w = out_w;
  g.input = x_arg.shape();
  g.dtype = x_arg.dtype();
  g.device = x_arg.device();
  Tensor out;
  {
    NoGradGuard no_grad;
    const Tensor x = x_arg.contiguous();
    out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, TensorOptions(g.dtype, g.device));
    if (g.planes > 0) {
      if (g.device.is_cpu()) {
        cpu::bilinear_forward(x, out, g.planes, g.in_h, g.in_w, out_h, out_w);
      } else {
        VIMOE_CUDA_PATH(op, x,
                        VIMOE_CUDA_CHECK(kernels::bilinear_forward(g.dtype, x.data_ptr(), out.data_ptr(), g.planes,
                                                                   g.in_h, g.in_w, out_h, out_w, cuda::stream())););
      }
    }
  }
  autograd::record(op, out, {x_arg}, [g](const Tensor& grad) { return std::vector<Tensor>{bilinear_backward(g, grad)}; });
  return out;
}

}  // namespace vimoe
