#include "engine/cpu/elementwise.h"

#include "engine/cpu/acc.h"
#include "engine/cpu/loops.h"

namespace vimoe::cpu {

namespace {

template <kernels::BinaryOp op, typename T>
void binary_typed(const Tensor& a, const Tensor& b, const Tensor& out) {
  const T* pa = static_cast<const T*>(a.storage()->data());
  const T* pb = static_cast<const T*>(b.storage()->data());
  T* po = static_cast<T*>(out.storage()->data());
  for_each_offset<3>(out.shape(), {&a.strides(), &b.strides(), &out.strides()},
                     {a.offset(), b.offset(), out.offset()}, [&](const std::array<int64_t, 3>& o) {
                       po[o[2]] = store<T>(kernels::binary_apply<op>(load(pa[o[0]]), load(pb[o[1]])));
                     });
}

template <kernels::BinaryOp op>
void binary_dispatch(const Tensor& a, const Tensor& b, const Tensor& out) {
  VIMOE_DISPATCH(out.dtype(), "binary", binary_typed<op, scalar_t>(a, b, out));
}

}  // namespace

void binary(kernels::BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  using kernels::BinaryOp;
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

}  // namespace vimoe::cpu
