#include "kernels/dispatch.cuh"
#include "kernels/interpolate.h"
#include "kernels/interpolate_math.h"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void bilinear_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t total, int64_t in_h,
                                        int64_t in_w, int64_t out_h, int64_t out_w) {
  using A = acc_t<T>;
  for (int64_t i = first_index<int64_t>(); i < total; i += grid_stride<int64_t>()) {
    const int64_t ox = i % out_w, oy = (i / out_w) % out_h, plane = i / (out_w * out_h);
    const LinearTap<A> ty = linear_tap<A>(oy, in_h, out_h), tx = linear_tap<A>(ox, in_w, out_w);
    const T* p = x + plane * in_h * in_w;
    const A top = tx.l0 * load_acc(p + ty.i0 * in_w + tx.i0) + tx.l1 * load_acc(p + ty.i0 * in_w + tx.i1);
    const A bottom = tx.l0 * load_acc(p + ty.i1 * in_w + tx.i0) + tx.l1 * load_acc(p + ty.i1 * in_w + tx.i1);
    store_acc(y + i, ty.l0 * top + ty.l1 * bottom);
  }
}

template <typename T>
__global__ void bilinear_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t total, int64_t in_h,
                                         int64_t in_w, int64_t out_h, int64_t out_w) {
  using A = acc_t<T>;
  for (int64_t i = first_index<int64_t>(); i < total; i += grid_stride<int64_t>()) {
    const int64_t ix = i % in_w, iy = (i / in_w) % in_h, plane = i / (in_w * in_h);
    int64_t y0, y1, x0, x1;
    linear_readers<A>(iy, in_h, out_h, &y0, &y1);
    linear_readers<A>(ix, in_w, out_w, &x0, &x1);
    const T* g = dy + plane * out_h * out_w;
    A sum = A(0);
    for (int64_t oy = y0; oy <= y1; ++oy) {
      const A wy = linear_weight(linear_tap<A>(oy, in_h, out_h), iy);
      A row = A(0);
      for (int64_t ox = x0; ox <= x1; ++ox)
        row += linear_weight(linear_tap<A>(ox, in_w, out_w), ix) * load_acc(g + oy * out_w + ox);
      sum += wy * row;
    }
    store_acc(dx + i, sum);
  }
}

}  // namespace

cudaError_t bilinear_forward(DType dtype, const void* x, void* y, int64_t planes, int64_t in_h, int64_t in_w,
                             int64_t out_h, int64_t out_w, cudaStream_t stream) {
  const int64_t total = planes * out_h * out_w;
  if (total == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, bilinear_forward_kernel<scalar_t><<<grid_for(total, kBlock), kBlock, 0, stream>>>(
                                            static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), total, in_h,
                                            in_w, out_h, out_w));
  return cudaGetLastError();
}

cudaError_t bilinear_backward(DType dtype, const void* dy, void* dx, int64_t planes, int64_t in_h, int64_t in_w,
                              int64_t out_h, int64_t out_w, cudaStream_t stream) {
  const int64_t total = planes * in_h * in_w;
  if (total == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, bilinear_backward_kernel<scalar_t><<<grid_for(total, kBlock), kBlock, 0, stream>>>(
                                            static_cast<const scalar_t*>(dy), static_cast<scalar_t*>(dx), total, in_h,
                                            in_w, out_h, out_w));
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
