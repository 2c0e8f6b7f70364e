#include "engine/ops/elementwise.h"

#include <cmath>
#include <numbers>

#include "engine/autograd.h"
#include "engine/cpu/elementwise.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/elementwise.h"
#endif

namespace vimoe {

using kernels::BinaryOp;
using kernels::CompareOp;
using kernels::UnaryOp;

namespace {

// Two operands checked, promoted to one dtype and expanded to their broadcast shape.
struct BinaryOperands {
  Tensor a, b;
  Shape shape;
  DType dtype;
};

// `integer_as_f32` makes integer operands compute in f32 (division).
BinaryOperands prepare_binary(const Tensor& a_in, const Tensor& b_in, const char* name,
                              bool integer_as_f32 = false) {
  ops::check_defined(a_in, name, "a");
  ops::check_defined(b_in, name, "b");
  ops::check_same_device(a_in, b_in, name);
  BinaryOperands p;
  p.dtype = promote_types(a_in.dtype(), b_in.dtype());
  if (integer_as_f32 && is_integral(p.dtype)) p.dtype = DType::F32;
  p.shape = broadcast_shapes(a_in.shape(), b_in.shape(), name);
  NoGradGuard no_grad;
  p.a = a_in.to(p.dtype).expand(p.shape);
  p.b = b_in.to(p.dtype).expand(p.shape);
  return p;
}

// Runs `op` into a fresh contiguous tensor. Nothing here is recorded: the public op
// records one node for the whole computation.
Tensor binary_forward(BinaryOp op, const Tensor& a_in, const Tensor& b_in, const char* name) {
  VIMOE_PROFILE_SCOPE(name);
  const BinaryOperands p = prepare_binary(a_in, b_in, name, op == BinaryOp::Div);
  Tensor out = Tensor::empty(p.shape, TensorOptions(p.dtype, p.a.device()));
  if (out.device().is_cpu()) {
    cpu::binary(op, p.a, p.b, out);
  } else {
    VIMOE_CUDA_PATH(name, out,
      VIMOE_CUDA_CHECK(kernels::binary(op, p.dtype, p.a.storage()->data(), ops::kernel_layout(p.a),
                                       p.b.storage()->data(), ops::kernel_layout(p.b),
                                       out.data_ptr(), out.numel(), cuda::stream()));
    );
  }
  return out;
}

Tensor unary_forward(UnaryOp op, const Tensor& x_in, const char* name) {
  VIMOE_PROFILE_SCOPE(name);
  ops::check_defined(x_in, name, "x");
  DType dt = x_in.dtype();
  if (kernels::unary_needs_floating(op) && is_integral(dt)) dt = DType::F32;
  NoGradGuard no_grad;
  const Tensor x = x_in.to(dt);
  Tensor out = Tensor::empty(x.shape(), TensorOptions(dt, x.device()));
  if (out.device().is_cpu()) {
    cpu::unary(op, x, out);
  } else {
    VIMOE_CUDA_PATH(name, x,
      VIMOE_CUDA_CHECK(kernels::unary(op, dt, x.storage()->data(), ops::kernel_layout(x),
                                      out.data_ptr(), out.numel(), cuda::stream()));
    );
  }
  return out;
}

Tensor compare_forward(CompareOp op, const Tensor& a_in, const Tensor& b_in, const char* name) {
  VIMOE_PROFILE_SCOPE(name);
  const BinaryOperands p = prepare_binary(a_in, b_in, name);
  Tensor out = Tensor::empty(p.shape, TensorOptions(DType::U8, p.a.device()));
  if (out.device().is_cpu()) {
    cpu::compare(op, p.a, p.b, out);
  } else {
    VIMOE_CUDA_PATH(name, out,
      VIMOE_CUDA_CHECK(kernels::compare(op, p.dtype, p.a.storage()->data(), ops::kernel_layout(p.a),
                                        p.b.storage()->data(), ops::kernel_layout(p.b),
                                        out.data<uint8_t>(), out.numel(), cuda::stream()));
    );
  }
  return out;
}

// A 0-dimensional zero of g's dtype and device, for masking gradients with where().
Tensor zero_like(const Tensor& g) { return Tensor::scalar(0, TensorOptions(g.dtype(), g.device())); }

}  // namespace

Tensor scalar_like(double value, const Tensor& like) {
  ops::check_defined(like, "scalar_like", "like");
  DType dt = like.dtype();
  if (is_integral(dt) && value != std::floor(value)) dt = DType::F32;
  return Tensor::scalar(value, TensorOptions(dt, like.device()));
}

// ---- binary --------------------------------------------------------------------------

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
    return std::vector<Tensor>{sum_to_shape(g, sa), neg(sum_to_shape(g, sb))};
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
    return std::vector<Tensor>{a.requires_grad() ? sum_to_shape(ga, a.shape()) : Tensor(),
                               b.requires_grad() ? neg(sum_to_shape(ga * a / b, b.shape()))
                                                 : Tensor()};
  });
  return out;
}

// d/da a^b = b a^(b-1), d/db a^b = a^b log a. Like PyTorch, the first is 0 where b == 0
// (so 0^0 has no infinite slope) and the second is 0 where a == 0 and b >= 0 (the limit,
// where log a alone would give -inf * 0 = NaN).
Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Pow, a, b, "pow");
  autograd::record("pow", out, {a, b}, [a, b, res = out.detach()](const Tensor& g) {
    Tensor ga, gb;
    if (a.requires_grad()) {
      const Tensor d = g * b * pow(a, b - 1.0);
      ga = sum_to_shape(where(eq(b, zero_like(b)), zero_like(g), d), a.shape());
    }
    if (b.requires_grad()) {
      const Tensor d = g * res * log(a);
      const Tensor limit = mul(eq(a, zero_like(a)), ge(b, zero_like(b)));
      gb = sum_to_shape(where(limit, zero_like(g), d), b.shape());
    }
    return std::vector<Tensor>{ga, gb};
  });
  return out;
}

Tensor pow(const Tensor& a, double exponent) {
  ops::check_defined(a, "pow", "a");
  VIMOE_CHECK(!(is_integral(a.dtype()) && exponent < 0 && exponent == std::floor(exponent)),
              "pow: integer tensor ", describe(a), " to the negative integer power ", exponent,
              " is not representable");
  Tensor out = binary_forward(BinaryOp::Pow, a, scalar_like(exponent, a), "pow");
  autograd::record("pow", out, {a}, [a, exponent](const Tensor& g) {
    if (exponent == 0.0)
      return std::vector<Tensor>{Tensor::zeros(a.shape(), TensorOptions(g.dtype(), g.device()))};
    return std::vector<Tensor>{g * pow(a, exponent - 1.0) * exponent};
  });
  return out;
}

// Where a == b the gradient is split equally between the operands, as torch.maximum does.
Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Maximum, a, b, "maximum");
  autograd::record("maximum", out, {a, b}, [a, b](const Tensor& g) {
    const Tensor wa = gt(a, b).to(g.dtype()) + eq(a, b).to(g.dtype()) * 0.5;
    return std::vector<Tensor>{
        a.requires_grad() ? sum_to_shape(g * wa, a.shape()) : Tensor(),
        b.requires_grad() ? sum_to_shape(g * (1.0 - wa), b.shape()) : Tensor()};
  });
  return out;
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Minimum, a, b, "minimum");
  autograd::record("minimum", out, {a, b}, [a, b](const Tensor& g) {
    const Tensor wa = lt(a, b).to(g.dtype()) + eq(a, b).to(g.dtype()) * 0.5;
    return std::vector<Tensor>{
        a.requires_grad() ? sum_to_shape(g * wa, a.shape()) : Tensor(),
        b.requires_grad() ? sum_to_shape(g * (1.0 - wa), b.shape()) : Tensor()};
  });
  return out;
}

// ---- unary ---------------------------------------------------------------------------

Tensor neg(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Neg, x, "neg");
  autograd::record("neg", out, {x}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
  return out;
}

Tensor exp(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Exp, x, "exp");
  autograd::record("exp", out, {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{g * y};
  });
  return out;
}

Tensor log(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Log, x, "log");
  autograd::record("log", out, {x}, [x](const Tensor& g) { return std::vector<Tensor>{g / x}; });
  return out;
}

// d sqrt(x) = 1 / (2 sqrt(x)): reuses the output.
Tensor sqrt(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Sqrt, x, "sqrt");
  autograd::record("sqrt", out, {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{g / y * 0.5};
  });
  return out;
}

// d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3.
Tensor rsqrt(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Rsqrt, x, "rsqrt");
  autograd::record("rsqrt", out, {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{neg(g * y * y * y) * 0.5};
  });
  return out;
}

// d tanh(x) = 1 - tanh(x)^2: reuses the output.
Tensor tanh(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Tanh, x, "tanh");
  autograd::record("tanh", out, {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{g * (1.0 - y * y)};
  });
  return out;
}

// d erf(x) = 2/sqrt(pi) exp(-x^2).
Tensor erf(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Erf, x, "erf");
  autograd::record("erf", out, {x}, [x](const Tensor& g) {
    return std::vector<Tensor>{g * exp(neg(x * x)) * (2.0 * std::numbers::inv_sqrtpi)};
  });
  return out;
}

// The gradient at 0 is 0 for relu and for abs, as in PyTorch.
Tensor relu(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Relu, x, "relu");
  autograd::record("relu", out, {x}, [x](const Tensor& g) {
    return std::vector<Tensor>{g * gt(x, zero_like(x)).to(g.dtype())};
  });
  return out;
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Abs, x, "abs");
  autograd::record("abs", out, {x}, [x](const Tensor& g) {
    const Tensor z = zero_like(x);
    const Tensor sign = gt(x, z).to(g.dtype()) - lt(x, z).to(g.dtype());
    return std::vector<Tensor>{g * sign};
  });
  return out;
}

// ---- where ---------------------------------------------------------------------------

Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
  VIMOE_PROFILE_SCOPE("where");
  ops::check_defined(cond, "where", "cond");
  ops::check_defined(a_in, "where", "a");
  ops::check_defined(b_in, "where", "b");
  VIMOE_CHECK(cond.dtype() == DType::U8, "where: cond must be u8, found ", describe(cond));
  ops::check_same_device(cond, a_in, "where");
  ops::check_same_device(a_in, b_in, "where");
  Shape shape;
  try {
    shape = broadcast_shapes(broadcast_shapes(cond.shape(), a_in.shape(), "where"), b_in.shape(),
                             "where");
  } catch (const Error&) {
    VIMOE_FAIL("where: cannot broadcast cond ", shape_str(cond.shape()), ", a ",
               shape_str(a_in.shape()), " and b ", shape_str(b_in.shape()), " together");
  }
  const DType dt = promote_types(a_in.dtype(), b_in.dtype());
  Tensor out = Tensor::empty(shape, TensorOptions(dt, a_in.device()));
  {
    NoGradGuard no_grad;
    const Tensor c = cond.expand(shape);
    const Tensor a = a_in.to(dt).expand(shape), b = b_in.to(dt).expand(shape);
    if (out.device().is_cpu()) {
      cpu::where(c, a, b, out);
    } else {
      VIMOE_CUDA_PATH("where", out,
        VIMOE_CUDA_CHECK(kernels::where(static_cast<const uint8_t*>(c.storage()->data()),
                                        ops::kernel_layout(c), dt, a.storage()->data(),
                                        ops::kernel_layout(a), b.storage()->data(),
                                        ops::kernel_layout(b), out.data_ptr(), out.numel(),
                                        cuda::stream()));
      );
    }
  }
  autograd::record("where", out, {a_in, b_in},
                   [c = cond.detach(), sa = a_in.shape(), sb = b_in.shape()](const Tensor& g) {
                     const Tensor z = zero_like(g);
                     return std::vector<Tensor>{sum_to_shape(where(c, g, z), sa),
                                                sum_to_shape(where(c, z, g), sb)};
                   });
  return out;
}

// ---- comparisons ---------------------------------------------------------------------

Tensor eq(const Tensor& a, const Tensor& b) { return compare_forward(CompareOp::Eq, a, b, "eq"); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare_forward(CompareOp::Ne, a, b, "ne"); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare_forward(CompareOp::Lt, a, b, "lt"); }
Tensor le(const Tensor& a, const Tensor& b) { return compare_forward(CompareOp::Le, a, b, "le"); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare_forward(CompareOp::Gt, a, b, "gt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare_forward(CompareOp::Ge, a, b, "ge"); }

}  // namespace vimoe
