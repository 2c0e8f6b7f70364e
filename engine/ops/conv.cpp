#include "engine/ops/conv.h"

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/cpu/conv.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#ifdef VIMOE_WITH_CUDNN
#include "kernels/conv.h"
#endif
#include "engine/profiler.h"

namespace vimoe {

namespace {

constexpr const char* kOp = "conv2d";

#ifdef VIMOE_WITH_CUDNN
kernels::Conv2dDims dims_of(const cpu::Conv2dShape& s) {
  return {s.n,        s.c_in,     s.h,     s.w,     s.c_out, s.kh,     s.kw, s.stride_h,
          s.stride_w, s.pad_h,    s.pad_w, s.dil_h, s.dil_w, s.groups, s.oh, s.ow};
}

// cuDNN's scratch, from the engine's stream-ordered allocator: `holder` keeps it until the
// launch has been enqueued, and a block freed after that is reused only by later work.
kernels::WorkspaceFn workspace_into(Tensor& holder, Device device) {
  return [&holder, device](size_t bytes) {
    holder = Tensor::empty({static_cast<int64_t>(bytes)}, TensorOptions(DType::U8, device));
    return holder.data_ptr();
  };
}
#endif

Tensor forward(const Tensor& x, const Tensor& w, const Tensor& b, const cpu::Conv2dShape& s) {
  Tensor y = Tensor::empty({s.n, s.c_out, s.oh, s.ow}, TensorOptions(x.dtype(), x.device()));
  if (s.n == 0) return y;
  if (x.device().is_cpu()) {
    cpu::conv2d_forward(x, w, b, y, s);
    return y;
  }
  // Built without cuDNN, a CUDA tensor is refused loudly rather than copied to the host
  // behind the caller's back.
  VIMOE_CUDNN_PATH(kOp, x,
    Tensor scratch;
    VIMOE_CUDNN_CHECK(kernels::conv2d_forward(cuda::cudnn(), x.dtype(), dims_of(s), x.data_ptr(), w.data_ptr(),
                                              y.data_ptr(), workspace_into(scratch, x.device())));
    return b.defined() ? y + b.view({1, s.c_out, 1, 1}) : y;
  );
}

std::vector<Tensor> backward(const Tensor& grad, const Tensor& x, const Tensor& w, const cpu::Conv2dShape& s,
                             bool need_x, bool need_w, bool need_b) {
  VIMOE_PROFILE_SCOPE("conv2d_backward");
  const Tensor dy = grad.to(x.device()).to(x.dtype()).contiguous();
  const TensorOptions opts(x.dtype(), x.device());
  Tensor dx = need_x ? Tensor::empty(x.shape(), opts) : Tensor();
  Tensor dw = need_w ? Tensor::empty(w.shape(), opts) : Tensor();
  Tensor db = need_b ? Tensor::empty({s.c_out}, opts) : Tensor();
  if (s.n == 0) {  // no images: zero input gradient, empty sums for the parameters
    if (dw.defined()) dw.zero_();
    if (db.defined()) db.zero_();
    return {dx, dw, db};
  }
  if (x.device().is_cpu()) {
    cpu::conv2d_backward(dy, x, w, dx, dw, db, s);
    return {dx, dw, db};
  }
  VIMOE_CUDNN_PATH("conv2d (backward)", x,
    Tensor scratch;
    if (need_x)
      VIMOE_CUDNN_CHECK(kernels::conv2d_backward_data(cuda::cudnn(), x.dtype(), dims_of(s), dy.data_ptr(),
                                                      w.data_ptr(), dx.data_ptr(), workspace_into(scratch, x.device())));
    if (need_w)
      VIMOE_CUDNN_CHECK(kernels::conv2d_backward_filter(cuda::cudnn(), x.dtype(), dims_of(s), dy.data_ptr(),
                                                        x.data_ptr(), dw.data_ptr(),
                                                        workspace_into(scratch, x.device())));
    if (need_b) db = sum(dy, {0, 2, 3});  // a deterministic reduction in the engine's own kernel
    return {dx, dw, db};
  );
}

}  // namespace

int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dil) {
  return (in + 2 * pad - dil * (kernel - 1) - 1) / stride + 1;
}

Tensor conv2d(const Tensor& x_arg, const Tensor& w_arg, const Tensor& b_arg, const Conv2dOptions& o) {
  VIMOE_PROFILE_SCOPE(kOp);
  const Tensor x_in = autocast::lower(x_arg), w_in = autocast::lower(w_arg), b_in = autocast::lower(b_arg);
  ops::check_defined(x_in, kOp, "x");
  ops::check_defined(w_in, kOp, "weight");
  ops::check_floating(x_in, kOp, "x");
  VIMOE_CHECK(x_in.dim() == 4, kOp, ": x must be [N, C, H, W], found ", describe(x_in));
  VIMOE_CHECK(w_in.dim() == 4, kOp, ": weight must be [C_out, C_in / groups, kH, kW], found ", describe(w_in));
  ops::check_same_device(x_in, w_in, kOp);
  VIMOE_CHECK(w_in.dtype() == x_in.dtype(), kOp, ": weight ", describe(w_in), " must have the dtype of x ",
              describe(x_in));
  for (int axis = 0; axis < 2; ++axis)
    VIMOE_CHECK(o.stride[axis] >= 1 && o.dilation[axis] >= 1 && o.padding[axis] >= 0, kOp,
                ": stride and dilation must be >= 1 and padding >= 0, got stride [", o.stride[0], ", ", o.stride[1],
                "], padding [", o.padding[0], ", ", o.padding[1], "], dilation [", o.dilation[0], ", ",
                o.dilation[1], "]");
  cpu::Conv2dShape s;
  s.n = x_in.size(0), s.c_in = x_in.size(1), s.h = x_in.size(2), s.w = x_in.size(3);
  s.c_out = w_in.size(0), s.kh = w_in.size(2), s.kw = w_in.size(3);
  s.stride_h = o.stride[0], s.stride_w = o.stride[1], s.pad_h = o.padding[0], s.pad_w = o.padding[1];
  s.dil_h = o.dilation[0], s.dil_w = o.dilation[1], s.groups = o.groups;
  VIMOE_CHECK(o.groups >= 1 && s.c_in % o.groups == 0 && s.c_out % o.groups == 0, kOp, ": groups (", o.groups,
              ") must divide the input channels of x ", describe(x_in), " and the output channels of weight ",
              describe(w_in));
  VIMOE_CHECK(w_in.size(1) * o.groups == s.c_in, kOp, ": weight ", describe(w_in), " takes ", w_in.size(1),
              " channels per group x ", o.groups, " groups, but x ", describe(x_in), " has ", s.c_in);
  VIMOE_CHECK(s.kh >= 1 && s.kw >= 1, kOp, ": weight ", describe(w_in), " has an empty kernel");
  if (b_in.defined()) {
    ops::check_same_device(x_in, b_in, kOp);
    VIMOE_CHECK(b_in.shape() == Shape{s.c_out} && b_in.dtype() == x_in.dtype(), kOp, ": bias must be [", s.c_out,
                "] of x's dtype ", describe(x_in), ", found ", describe(b_in));
  }
  s.oh = conv_output_size(s.h, s.kh, s.stride_h, s.pad_h, s.dil_h);
  s.ow = conv_output_size(s.w, s.kw, s.stride_w, s.pad_w, s.dil_w);
  VIMOE_CHECK(s.oh >= 1 && s.ow >= 1, kOp, ": the output would be empty: x ", describe(x_in), " with a ", s.kh, "x",
              s.kw, " kernel, dilation [", s.dil_h, ", ", s.dil_w, "] and padding [", s.pad_h, ", ", s.pad_w, "]");

  // A non-overlapping patchify (kernel == stride, no padding or dilation, one group, the
  // kernel tiling the input: ViT's and ConvNeXt's stems, ConvNeXt's downsampling) is a
  // layout change and one GEMM, on either device. The result is an NCHW view of the GEMM's
  // [N, oh, ow, C_out] output, so a channels-last consumer reads it without a copy.
  const bool patchify = o.stride[0] == s.kh && o.stride[1] == s.kw && o.padding == std::array<int64_t, 2>{0, 0} &&
                        o.dilation == std::array<int64_t, 2>{1, 1} && o.groups == 1 && s.h % s.kh == 0 &&
                        s.w % s.kw == 0;
  if (patchify) {
    const int64_t patch = s.c_in * s.kh * s.kw;
    const Tensor patches = x_in.reshape({s.n, s.c_in, s.oh, s.kh, s.ow, s.kw})
                               .permute({0, 2, 4, 1, 3, 5})
                               .reshape({s.n * s.oh * s.ow, patch});
    return linear(patches, w_in.reshape({s.c_out, patch}), b_in).view({s.n, s.oh, s.ow, s.c_out}).permute({0, 3, 1, 2});
  }

  Tensor x, w, b, y;
  {
    NoGradGuard no_grad;  // one node; the layout copies are not recorded
    x = x_in.contiguous().detach();
    w = w_in.contiguous().detach();
    if (b_in.defined()) b = b_in.contiguous().detach();
    y = forward(x, w, b, s);
  }
  const bool need_x = x_in.requires_grad(), need_w = w_in.requires_grad();
  const bool need_b = b_in.defined() && b_in.requires_grad();
  autograd::record(kOp, y, {x_in, w_in, b_in}, [x, w, s, need_x, need_w, need_b](const Tensor& g) {
    return backward(g, x, w, s, need_x, need_w, need_b);
  });
  return y;
}

}  // namespace vimoe
