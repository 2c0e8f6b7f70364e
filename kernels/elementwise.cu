#include "kernels/dispatch.cuh"
#include "kernels/elementwise.h"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;

template <BinaryOp op, typename T>
__global__ void binary_kernel(const T* __restrict__ a, StridedLayout la, const T* __restrict__ b,
                              StridedLayout lb, T* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const acc_t<T> x = load_acc(a + strided_offset(la, i));
    const acc_t<T> y = load_acc(b + strided_offset(lb, i));
    store_acc(out + i, binary_apply<op>(x, y));
  }
}

template <BinaryOp op>
cudaError_t launch_binary(DType dtype, const void* a, const StridedLayout& la, const void* b,
                          const StridedLayout& lb, void* out, int64_t n, cudaStream_t stream) {
  VIMOE_KERNEL_DISPATCH(dtype, {
    binary_kernel<op><<<grid_for(n, kBlock), kBlock, 0, stream>>>(
        static_cast<const scalar_t*>(a), la, static_cast<const scalar_t*>(b), lb,
        static_cast<scalar_t*>(out), n);
  });
  return cudaGetLastError();
}

}  // namespace

cudaError_t binary(BinaryOp op, DType dtype, const void* a, const StridedLayout& la,
                   const void* b, const StridedLayout& lb, void* out, int64_t n,
                   cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  switch (op) {
    case BinaryOp::Add: return launch_binary<BinaryOp::Add>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Sub: return launch_binary<BinaryOp::Sub>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Mul: return launch_binary<BinaryOp::Mul>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Div: return launch_binary<BinaryOp::Div>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Pow: return launch_binary<BinaryOp::Pow>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Maximum:
      return launch_binary<BinaryOp::Maximum>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Minimum:
      return launch_binary<BinaryOp::Minimum>(dtype, a, la, b, lb, out, n, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace vimoe::kernels
