#include "kernels/conv.h"

#include <vector>

namespace vimoe::kernels {

namespace {

#define VIMOE_CUDNN_TRY(expr)                          \
  do {                                                 \
    const cudnnStatus_t vimoe_st_ = (expr);            \
    if (vimoe_st_ != CUDNN_STATUS_SUCCESS) return vimoe_st_; \
  } while (0)

cudnnDataType_t data_type(DType t) {
  switch (t) {
    case DType::F64: return CUDNN_DATA_DOUBLE;
    case DType::BF16: return CUDNN_DATA_BFLOAT16;
    case DType::F16: return CUDNN_DATA_HALF;
    default: return CUDNN_DATA_FLOAT;
  }
}

bool supported(DType t) { return t == DType::F32 || t == DType::F64 || t == DType::BF16 || t == DType::F16; }

// The descriptors of one convolution, released on scope exit.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;

  Descriptors(DType dtype, const Conv2dDims& d) {
    status = make(dtype, d);
  }
  ~Descriptors() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;

 private:
  cudnnStatus_t make(DType dtype, const Conv2dDims& d) {
    if (!supported(dtype)) return CUDNN_STATUS_NOT_SUPPORTED;
    const cudnnDataType_t t = data_type(dtype);
    const cudnnDataType_t compute = dtype == DType::F64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    auto i = [](int64_t v) { return static_cast<int>(v); };
    VIMOE_CUDNN_TRY(cudnnCreateTensorDescriptor(&x));
    VIMOE_CUDNN_TRY(cudnnCreateTensorDescriptor(&y));
    VIMOE_CUDNN_TRY(cudnnCreateFilterDescriptor(&w));
    VIMOE_CUDNN_TRY(cudnnCreateConvolutionDescriptor(&conv));
    VIMOE_CUDNN_TRY(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, t, i(d.n), i(d.c_in), i(d.h), i(d.w)));
    VIMOE_CUDNN_TRY(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, t, i(d.n), i(d.c_out), i(d.oh), i(d.ow)));
    VIMOE_CUDNN_TRY(cudnnSetFilter4dDescriptor(w, t, CUDNN_TENSOR_NCHW, i(d.c_out), i(d.c_in / d.groups), i(d.kh),
                                               i(d.kw)));
    VIMOE_CUDNN_TRY(cudnnSetConvolution2dDescriptor(conv, i(d.pad_h), i(d.pad_w), i(d.stride_h), i(d.stride_w),
                                                    i(d.dil_h), i(d.dil_w), CUDNN_CROSS_CORRELATION, compute));
    VIMOE_CUDNN_TRY(cudnnSetConvolutionGroupCount(conv, i(d.groups)));
    // f32 without TF32; the half types on tensor cores (accumulating in f32).
    math = dtype == DType::F32 || dtype == DType::F64 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    return cudnnSetConvolutionMathType(conv, math);
  }
};

// The scalars alpha / beta: double for f64 data, float otherwise (cuDNN's rule).
struct Scale {
  double d;
  float f;
  explicit Scale(double v) : d(v), f(static_cast<float>(v)) {}
  const void* get(DType t) const { return t == DType::F64 ? static_cast<const void*>(&d) : &f; }
};

// The heuristic's first successful, deterministic result whose math type keeps the
// precision contract (no TF32 for f32).
template <typename Perf>
const Perf* pick(const std::vector<Perf>& results, int count, cudnnMathType_t math) {
  for (int k = 0; k < count; ++k) {
    const Perf& p = results[k];
    if (p.status == CUDNN_STATUS_SUCCESS && p.determinism == CUDNN_DETERMINISTIC &&
        (math == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_FMA_MATH || p.mathType == CUDNN_DEFAULT_MATH))
      return &p;
  }
  return nullptr;
}

void* scratch(const WorkspaceFn& workspace, size_t bytes) { return bytes ? workspace(bytes) : nullptr; }

}  // namespace

cudnnStatus_t conv2d_forward(cudnnHandle_t handle, DType dtype, const Conv2dDims& d, const void* x, const void* w,
                             void* y, const WorkspaceFn& workspace) {
  Descriptors ds(dtype, d);
  VIMOE_CUDNN_TRY(ds.status);
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  int count = 0;
  VIMOE_CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(handle, ds.x, ds.w, ds.conv, ds.y,
                                                         static_cast<int>(perf.size()), &count, perf.data()));
  const cudnnConvolutionFwdAlgoPerf_t* p = pick(perf, count, ds.math);
  if (!p) return CUDNN_STATUS_NOT_SUPPORTED;
  VIMOE_CUDNN_TRY(cudnnSetConvolutionMathType(ds.conv, p->mathType));
  size_t bytes = 0;
  VIMOE_CUDNN_TRY(cudnnGetConvolutionForwardWorkspaceSize(handle, ds.x, ds.w, ds.conv, ds.y, p->algo, &bytes));
  const Scale one(1.0), zero(0.0);
  return cudnnConvolutionForward(handle, one.get(dtype), ds.x, x, ds.w, w, ds.conv, p->algo,
                                 scratch(workspace, bytes), bytes, zero.get(dtype), ds.y, y);
}

cudnnStatus_t conv2d_backward_data(cudnnHandle_t handle, DType dtype, const Conv2dDims& d, const void* dy,
                                   const void* w, void* dx, const WorkspaceFn& workspace) {
  Descriptors ds(dtype, d);
  VIMOE_CUDNN_TRY(ds.status);
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  int count = 0;
  VIMOE_CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, ds.w, ds.y, ds.conv, ds.x,
                                                              static_cast<int>(perf.size()), &count, perf.data()));
  const cudnnConvolutionBwdDataAlgoPerf_t* p = pick(perf, count, ds.math);
  if (!p) return CUDNN_STATUS_NOT_SUPPORTED;
  VIMOE_CUDNN_TRY(cudnnSetConvolutionMathType(ds.conv, p->mathType));
  size_t bytes = 0;
  VIMOE_CUDNN_TRY(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, ds.w, ds.y, ds.conv, ds.x, p->algo, &bytes));
  const Scale one(1.0), zero(0.0);
  return cudnnConvolutionBackwardData(handle, one.get(dtype), ds.w, w, ds.y, dy, ds.conv, p->algo,
                                      scratch(workspace, bytes), bytes, zero.get(dtype), ds.x, dx);
}

cudnnStatus_t conv2d_backward_filter(cudnnHandle_t handle, DType dtype, const Conv2dDims& d, const void* dy,
                                     const void* x, void* dw, const WorkspaceFn& workspace) {
  Descriptors ds(dtype, d);
  VIMOE_CUDNN_TRY(ds.status);
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
  int count = 0;
  VIMOE_CUDNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, ds.x, ds.y, ds.conv, ds.w,
                                                                static_cast<int>(perf.size()), &count, perf.data()));
  const cudnnConvolutionBwdFilterAlgoPerf_t* p = pick(perf, count, ds.math);
  if (!p) return CUDNN_STATUS_NOT_SUPPORTED;
  VIMOE_CUDNN_TRY(cudnnSetConvolutionMathType(ds.conv, p->mathType));
  size_t bytes = 0;
  VIMOE_CUDNN_TRY(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, ds.x, ds.y, ds.conv, ds.w, p->algo, &bytes));
  const Scale one(1.0), zero(0.0);
  return cudnnConvolutionBackwardFilter(handle, one.get(dtype), ds.x, x, ds.y, dy, ds.conv, p->algo,
                                        scratch(workspace, bytes), bytes, zero.get(dtype), ds.w, dw);
}

#undef VIMOE_CUDNN_TRY

}  // namespace vimoe::kernels
