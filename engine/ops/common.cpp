#include "engine/ops/common.h"

#include <cstring>

#include "engine/ops/cuda_path.h"

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

namespace {

[[noreturn]] void fail_missing(const char* op, const std::string& asker, const char* backend) {
  const bool cudnn = std::strcmp(backend, "cuDNN") == 0;
  VIMOE_FAIL(op, ": ", asker, " asks for the CUDA path, but this build has no ", backend,
             cudnn ? " (install cuDNN for the CUDA toolkit and reconfigure, or keep the tensors on the CPU)"
                   : " backend (configure on a host with nvcc and -DVIMOE_ENABLE_CUDA=ON, or keep the tensors on the CPU)");
}

}  // namespace

void missing_backend(const char* op, const Tensor& t, const char* backend) { fail_missing(op, describe(t), backend); }
void missing_backend(const char* op, Device device, const char* backend) {
  fail_missing(op, "a call on " + device.str(), backend);
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
