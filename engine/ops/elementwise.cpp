#include "engine/ops/elementwise.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/cpu/elementwise.h"
#include "engine/cuda/runtime.h"
#include "engine/ops/common.h"
#include "engine/ops/reduce.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/elementwise.h"
#endif

namespace vimoe {

using kernels::BinaryOp;

namespace {

// Broadcasts and promotes both operands, then runs `op` into a fresh contiguous tensor.
// Nothing here is recorded: the public op records one node for the whole computation.
Tensor binary_forward(BinaryOp op, const Tensor& a_in, const Tensor& b_in, const char* name) {
  ops::check_defined(a_in, name, "a");
  ops::check_defined(b_in, name, "b");
  ops::check_same_device(a_in, b_in, name);
  DType dt = promote_types(a_in.dtype(), b_in.dtype());
  if (op == BinaryOp::Div && is_integral(dt)) dt = DType::F32;
  const Shape shape = broadcast_shapes(a_in.shape(), b_in.shape(), name);
  NoGradGuard no_grad;
  const Tensor a = a_in.to(dt).expand(shape), b = b_in.to(dt).expand(shape);
  Tensor out = Tensor::empty(shape, TensorOptions(dt, a.device()));
  if (out.device().is_cpu()) {
    cpu::binary(op, a, b, out);
  } else {
#ifdef VIMOE_WITH_CUDA
    VIMOE_CUDA_CHECK(kernels::binary(op, dt, a.storage()->data(), ops::kernel_layout(a),
                                     b.storage()->data(), ops::kernel_layout(b), out.data_ptr(),
                                     out.numel(), cuda::stream()));
#endif
  }
  return out;
}

}  // namespace

Tensor scalar_like(double value, const Tensor& like) {
  ops::check_defined(like, "scalar_like", "like");
  DType dt = like.dtype();
  if (is_integral(dt) && value != std::floor(value)) dt = DType::F32;
  return Tensor::scalar(value, TensorOptions(dt, like.device()));
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, a, b, "add");
  autograd::record("add", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(g, sb)};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, a, b, "sub");
  autograd::record("sub", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(g * -1.0, sb)};
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, a, b, "mul");
  autograd::record("mul", out, {a, b}, [a, b](const Tensor& g) {
    return std::vector<Tensor>{a.requires_grad() ? sum_to_shape(g * b, a.shape()) : Tensor(),
                               b.requires_grad() ? sum_to_shape(g * a, b.shape()) : Tensor()};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, a, b, "div");
  autograd::record("div", out, {a, b}, [a, b](const Tensor& g) {
    const Tensor ga = g / b;
    return std::vector<Tensor>{
        a.requires_grad() ? sum_to_shape(ga, a.shape()) : Tensor(),
        b.requires_grad() ? sum_to_shape(ga * a / b * -1.0, b.shape()) : Tensor()};
  });
  return out;
}

}  // namespace vimoe
