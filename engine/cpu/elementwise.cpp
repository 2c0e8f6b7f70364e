#include "engine/cpu/elementwise.h"

#include "engine/cpu/acc.h"
#include "engine/cpu/loops.h"

namespace vimoe::cpu {

namespace {

using kernels::BinaryOp;
using kernels::CompareOp;
using kernels::UnaryOp;

template <typename T>
T* base(const Tensor& t) {
  return static_cast<T*>(t.storage()->data());
}

template <BinaryOp op, typename T>
void binary_typed(const Tensor& a, const Tensor& b, const Tensor& out) {
  const T* pa = base<const T>(a);
  const T* pb = base<const T>(b);
  T* po = base<T>(out);
  const auto layout = collapse_layout<3>(out.shape(), {&a.strides(), &b.strides(), &out.strides()});
  parallel_segments(layout, {a.offset(), b.offset(), out.offset()}, 2,
                    [&](const Offsets<3>& o, int64_t n, const Offsets<3>& s) {
                      const T* x = pa + o[0];
                      const T* y = pb + o[1];
                      T* z = po + o[2];
                      run_segment(n, s, [&](int64_t i, int64_t j, int64_t k) {
                        z[k] = store<T>(kernels::binary_apply<op>(load(x[i]), load(y[j])));
                      });
                    });
}

template <BinaryOp op>
void binary_dispatch(const Tensor& a, const Tensor& b, const Tensor& out) {
  VIMOE_DISPATCH(out.dtype(), "binary", binary_typed<op, scalar_t>(a, b, out));
}

template <UnaryOp op, typename T>
void unary_typed(const Tensor& x, const Tensor& out) {
  const T* px = base<const T>(x);
  T* po = base<T>(out);
  const auto layout = collapse_layout<2>(out.shape(), {&x.strides(), &out.strides()});
  parallel_segments(layout, {x.offset(), out.offset()}, 1,
                    [&](const Offsets<2>& o, int64_t n, const Offsets<2>& s) {
                      const T* u = px + o[0];
                      T* z = po + o[1];
                      run_segment(n, s, [&](int64_t i, int64_t k) {
                        z[k] = store<T>(kernels::unary_apply<op>(load(u[i])));
                      });
                    });
}

template <UnaryOp op>
void unary_dispatch(const Tensor& x, const Tensor& out) {
  if constexpr (kernels::unary_needs_floating(op)) {
    VIMOE_DISPATCH_FLOATING(out.dtype(), "unary", unary_typed<op, scalar_t>(x, out));
  } else {
    VIMOE_DISPATCH(out.dtype(), "unary", unary_typed<op, scalar_t>(x, out));
  }
}

template <CompareOp op, typename T>
void compare_typed(const Tensor& a, const Tensor& b, const Tensor& out) {
  const T* pa = base<const T>(a);
  const T* pb = base<const T>(b);
  uint8_t* po = base<uint8_t>(out);
  const auto layout = collapse_layout<3>(out.shape(), {&a.strides(), &b.strides(), &out.strides()});
  parallel_segments(layout, {a.offset(), b.offset(), out.offset()}, 2,
                    [&](const Offsets<3>& o, int64_t n, const Offsets<3>& s) {
                      const T* x = pa + o[0];
                      const T* y = pb + o[1];
                      uint8_t* z = po + o[2];
                      run_segment(n, s, [&](int64_t i, int64_t j, int64_t k) {
                        z[k] = kernels::compare_apply<op>(load(x[i]), load(y[j])) ? 1 : 0;
                      });
                    });
}

template <CompareOp op>
void compare_dispatch(const Tensor& a, const Tensor& b, const Tensor& out) {
  VIMOE_DISPATCH(a.dtype(), "compare", compare_typed<op, scalar_t>(a, b, out));
}

template <typename T>
void where_typed(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  const uint8_t* pc = base<const uint8_t>(cond);
  const T* pa = base<const T>(a);
  const T* pb = base<const T>(b);
  T* po = base<T>(out);
  const auto layout = collapse_layout<4>(
      out.shape(), {&cond.strides(), &a.strides(), &b.strides(), &out.strides()});
  parallel_segments(layout, {cond.offset(), a.offset(), b.offset(), out.offset()}, 3,
                    [&](const Offsets<4>& o, int64_t n, const Offsets<4>& s) {
                      const uint8_t* c = pc + o[0];
                      const T* x = pa + o[1];
                      const T* y = pb + o[2];
                      T* z = po + o[3];
                      run_segment(n, s, [&](int64_t h, int64_t i, int64_t j, int64_t k) {
                        z[k] = c[h] != 0 ? x[i] : y[j];
                      });
                    });
}

}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  switch (op) {
    case BinaryOp::Add: return binary_dispatch<BinaryOp::Add>(a, b, out);
    case BinaryOp::Sub: return binary_dispatch<BinaryOp::Sub>(a, b, out);
    case BinaryOp::Mul: return binary_dispatch<BinaryOp::Mul>(a, b, out);
    case BinaryOp::Div: return binary_dispatch<BinaryOp::Div>(a, b, out);
    case BinaryOp::Pow: return binary_dispatch<BinaryOp::Pow>(a, b, out);
    case BinaryOp::Maximum: return binary_dispatch<BinaryOp::Maximum>(a, b, out);
    case BinaryOp::Minimum: return binary_dispatch<BinaryOp::Minimum>(a, b, out);
  }
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out) {
  switch (op) {
    case UnaryOp::Neg: return unary_dispatch<UnaryOp::Neg>(x, out);
    case UnaryOp::Exp: return unary_dispatch<UnaryOp::Exp>(x, out);
    case UnaryOp::Log: return unary_dispatch<UnaryOp::Log>(x, out);
    case UnaryOp::Sqrt: return unary_dispatch<UnaryOp::Sqrt>(x, out);
    case UnaryOp::Rsqrt: return unary_dispatch<UnaryOp::Rsqrt>(x, out);
    case UnaryOp::Tanh: return unary_dispatch<UnaryOp::Tanh>(x, out);
    case UnaryOp::Relu: return unary_dispatch<UnaryOp::Relu>(x, out);
    case UnaryOp::Abs: return unary_dispatch<UnaryOp::Abs>(x, out);
    case UnaryOp::Erf: return unary_dispatch<UnaryOp::Erf>(x, out);
  }
}

void compare(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  switch (op) {
    case CompareOp::Eq: return compare_dispatch<CompareOp::Eq>(a, b, out);
    case CompareOp::Ne: return compare_dispatch<CompareOp::Ne>(a, b, out);
    case CompareOp::Lt: return compare_dispatch<CompareOp::Lt>(a, b, out);
    case CompareOp::Le: return compare_dispatch<CompareOp::Le>(a, b, out);
    case CompareOp::Gt: return compare_dispatch<CompareOp::Gt>(a, b, out);
    case CompareOp::Ge: return compare_dispatch<CompareOp::Ge>(a, b, out);
  }
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  VIMOE_DISPATCH(out.dtype(), "where", where_typed<scalar_t>(cond, a, b, out));
}

}  // namespace vimoe::cpu
