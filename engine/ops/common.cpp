#include "engine/ops/common.h"

namespace vimoe::ops {

void check_defined(const Tensor& t, const char* op, const char* name) {
  VIMOE_CHECK(t.defined(), op, ": argument '", name, "' is an undefined tensor");
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  VIMOE_CHECK(a.device() == b.device(), op, ": expected tensors on one device, found ",
              describe(a), " and ", describe(b));
}

void check_floating(const Tensor& t, const char* op, const char* name) {
  VIMOE_CHECK(is_floating(t.dtype()), op, ": '", name, "' must be floating, found ", describe(t));
}

kernels::StridedLayout kernel_layout(const Tensor& t) {
  if (!t.is_contiguous()) return strided_layout(t);
  kernels::StridedLayout l;
  l.ndim = 1;
  l.sizes[0] = t.numel() > 0 ? t.numel() : 1;
  l.strides[0] = 1;
  l.offset = t.offset();
  return l;
}

}  // namespace vimoe::ops
