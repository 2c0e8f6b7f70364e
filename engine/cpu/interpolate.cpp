#include "engine/cpu/interpolate.h"

#include <algorithm>
#include <vector>

#include "engine/cpu/acc.h"
#include "engine/cpu/parallel.h"
#include "kernels/interpolate_math.h"

namespace vimoe::cpu {

namespace {

template <typename A>
std::vector<kernels::LinearTap<A>> taps(int64_t in, int64_t out) {
  std::vector<kernels::LinearTap<A>> t(out);
  for (int64_t o = 0; o < out; ++o) t[o] = kernels::linear_tap<A>(o, in, out);
  return t;
}

template <typename T>
void forward_typed(const Tensor& x_t, const Tensor& y_t, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                   int64_t out_w) {
  using A = acc_t<T>;
  const auto ty = taps<A>(in_h, out_h), tx = taps<A>(in_w, out_w);
  const T* x = x_t.data<T>();
  T* y = y_t.data<T>();
  parallel_for(0, planes, grain_for(4 * out_h * out_w), [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      const T* in = x + p * in_h * in_w;
      T* out = y + p * out_h * out_w;
      for (int64_t oy = 0; oy < out_h; ++oy)
        for (int64_t ox = 0; ox < out_w; ++ox) {
          const auto& a = ty[oy];
          const auto& b = tx[ox];
          const A top = b.l0 * load(in[a.i0 * in_w + b.i0]) + b.l1 * load(in[a.i0 * in_w + b.i1]);
          const A bottom = b.l0 * load(in[a.i1 * in_w + b.i0]) + b.l1 * load(in[a.i1 * in_w + b.i1]);
          out[oy * out_w + ox] = store<T>(a.l0 * top + a.l1 * bottom);
        }
    }
  });
}

template <typename T>
void backward_typed(const Tensor& dy_t, const Tensor& dx_t, int64_t planes, int64_t in_h, int64_t in_w,
                    int64_t out_h, int64_t out_w) {
  using A = acc_t<T>;
  const auto ty = taps<A>(in_h, out_h), tx = taps<A>(in_w, out_w);
  const T* dy = dy_t.data<T>();
  T* dx = dx_t.data<T>();
  parallel_for(0, planes, grain_for(4 * out_h * out_w), [&](int64_t first, int64_t last) {
    std::vector<double> acc(in_h * in_w);
    for (int64_t p = first; p < last; ++p) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const T* g = dy + p * out_h * out_w;
      for (int64_t oy = 0; oy < out_h; ++oy)
        for (int64_t ox = 0; ox < out_w; ++ox) {
          const auto& a = ty[oy];
          const auto& b = tx[ox];
          const double v = to_double(g[oy * out_w + ox]);
          acc[a.i0 * in_w + b.i0] += static_cast<double>(a.l0) * static_cast<double>(b.l0) * v;
          acc[a.i0 * in_w + b.i1] += static_cast<double>(a.l0) * static_cast<double>(b.l1) * v;
          acc[a.i1 * in_w + b.i0] += static_cast<double>(a.l1) * static_cast<double>(b.l0) * v;
          acc[a.i1 * in_w + b.i1] += static_cast<double>(a.l1) * static_cast<double>(b.l1) * v;
        }
      for (int64_t i = 0; i < in_h * in_w; ++i) dx[p * in_h * in_w + i] = from_double<T>(acc[i]);
    }
  });
}

}  // namespace

void bilinear_forward(const Tensor& x, const Tensor& y, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                      int64_t out_w) {
  VIMOE_DISPATCH_FLOATING(x.dtype(), "interpolate_bilinear",
                          forward_typed<scalar_t>(x, y, planes, in_h, in_w, out_h, out_w));
}

void bilinear_backward(const Tensor& dy, const Tensor& dx, int64_t planes, int64_t in_h, int64_t in_w,
                       int64_t out_h, int64_t out_w) {
  VIMOE_DISPATCH_FLOATING(dy.dtype(), "interpolate_bilinear backward",
                          backward_typed<scalar_t>(dy, dx, planes, in_h, in_w, out_h, out_w));
}

}  // namespace vimoe::cpu
