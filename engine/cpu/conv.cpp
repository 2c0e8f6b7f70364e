#include "engine/cpu/conv.h"

#include "engine/cpu/parallel.h"

namespace vimoe::cpu {

namespace {

// Every gradient is gathered (each output element sums its own terms in a fixed order), so
// results do not depend on the thread count.
template <typename T>
void forward_typed(const Tensor& x_t, const Tensor& w_t, const Tensor& b_t, const Tensor& y_t,
                   const Conv2dShape& s) {
  const T* x = x_t.data<T>();
  const T* w = w_t.data<T>();
  const T* b = b_t.defined() ? b_t.data<T>() : nullptr;
  T* y = y_t.data<T>();
  const int64_t cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  const int64_t work = s.oh * s.ow * cin_g * s.kh * s.kw;
  // One (image, output channel) plane per task.
  parallel_for(0, s.n * s.c_out, grain_for(work), [&](int64_t first, int64_t last) {
    for (int64_t plane = first; plane < last; ++plane) {
      const int64_t n = plane / s.c_out, oc = plane % s.c_out, g = oc / cout_g;
      const T* wo = w + oc * cin_g * s.kh * s.kw;
      T* yp = y + plane * s.oh * s.ow;
      for (int64_t oy = 0; oy < s.oh; ++oy)
        for (int64_t ox = 0; ox < s.ow; ++ox) {
          double acc = b ? to_double(b[oc]) : 0.0;
          for (int64_t icg = 0; icg < cin_g; ++icg) {
            const T* xc = x + (n * s.c_in + g * cin_g + icg) * s.h * s.w;
            const T* wc = wo + icg * s.kh * s.kw;
            for (int64_t ky = 0; ky < s.kh; ++ky) {
              const int64_t iy = oy * s.stride_h - s.pad_h + ky * s.dil_h;
              if (iy < 0 || iy >= s.h) continue;
              for (int64_t kx = 0; kx < s.kw; ++kx) {
                const int64_t ix = ox * s.stride_w - s.pad_w + kx * s.dil_w;
                if (ix < 0 || ix >= s.w) continue;
                acc += to_double(xc[iy * s.w + ix]) * to_double(wc[ky * s.kw + kx]);
              }
            }
          }
          yp[oy * s.ow + ox] = from_double<T>(acc);
        }
    }
  });
}

// The output position o along one axis that input position i meets through kernel tap k,
// or -1: i = o * stride - pad + k * dil.
inline int64_t output_of(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t out) {
  const int64_t t = i + pad - k * dil;
  if (t < 0 || t % stride != 0) return -1;
  const int64_t o = t / stride;
  return o < out ? o : -1;
}

template <typename T>
void backward_typed(const Tensor& dy_t, const Tensor& x_t, const Tensor& w_t, const Tensor& dx_t,
                    const Tensor& dw_t, const Tensor& db_t, const Conv2dShape& s) {
  const T* dy = dy_t.data<T>();
  const T* x = x_t.data<T>();
  const T* w = w_t.data<T>();
  const int64_t cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  if (dx_t.defined()) {  // dx[n, ic, iy, ix] = sum over the group's oc and the taps that reach it
    T* dx = dx_t.data<T>();
    parallel_for(0, s.n * s.c_in, grain_for(s.h * s.w * cout_g * s.kh * s.kw), [&](int64_t first, int64_t last) {
      for (int64_t plane = first; plane < last; ++plane) {
        const int64_t n = plane / s.c_in, ic = plane % s.c_in, g = ic / cin_g, icg = ic % cin_g;
        for (int64_t iy = 0; iy < s.h; ++iy)
          for (int64_t ix = 0; ix < s.w; ++ix) {
            double acc = 0;
            for (int64_t ocg = 0; ocg < cout_g; ++ocg) {
              const int64_t oc = g * cout_g + ocg;
              const T* dyp = dy + (n * s.c_out + oc) * s.oh * s.ow;
              const T* wc = w + (oc * cin_g + icg) * s.kh * s.kw;
              for (int64_t ky = 0; ky < s.kh; ++ky) {
                const int64_t oy = output_of(iy, ky, s.stride_h, s.pad_h, s.dil_h, s.oh);
                if (oy < 0) continue;
                for (int64_t kx = 0; kx < s.kw; ++kx) {
                  const int64_t ox = output_of(ix, kx, s.stride_w, s.pad_w, s.dil_w, s.ow);
                  if (ox < 0) continue;
                  acc += to_double(dyp[oy * s.ow + ox]) * to_double(wc[ky * s.kw + kx]);
                }
              }
            }
            dx[plane * s.h * s.w + iy * s.w + ix] = from_double<T>(acc);
          }
      }
    });
  }
  if (dw_t.defined()) {  // dw[oc, icg, ky, kx] = sum over images and output positions
    T* dw = dw_t.data<T>();
    parallel_for(0, s.c_out * cin_g, grain_for(s.kh * s.kw * s.n * s.oh * s.ow), [&](int64_t first, int64_t last) {
      for (int64_t filter = first; filter < last; ++filter) {
        const int64_t oc = filter / cin_g, icg = filter % cin_g, ic = (oc / cout_g) * cin_g + icg;
        for (int64_t ky = 0; ky < s.kh; ++ky)
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            double acc = 0;
            for (int64_t n = 0; n < s.n; ++n) {
              const T* dyp = dy + (n * s.c_out + oc) * s.oh * s.ow;
              const T* xc = x + (n * s.c_in + ic) * s.h * s.w;
              for (int64_t oy = 0; oy < s.oh; ++oy) {
                const int64_t iy = oy * s.stride_h - s.pad_h + ky * s.dil_h;
                if (iy < 0 || iy >= s.h) continue;
                for (int64_t ox = 0; ox < s.ow; ++ox) {
                  const int64_t ix = ox * s.stride_w - s.pad_w + kx * s.dil_w;
                  if (ix < 0 || ix >= s.w) continue;
                  acc += to_double(dyp[oy * s.ow + ox]) * to_double(xc[iy * s.w + ix]);
                }
              }
            }
            dw[filter * s.kh * s.kw + ky * s.kw + kx] = from_double<T>(acc);
          }
      }
    });
  }
  if (db_t.defined()) {  // db[oc] = sum of dy over images and positions
    T* db = db_t.data<T>();
    parallel_for(0, s.c_out, grain_for(s.n * s.oh * s.ow), [&](int64_t first, int64_t last) {
      for (int64_t oc = first; oc < last; ++oc) {
        double acc = 0;
        for (int64_t n = 0; n < s.n; ++n) {
          const T* dyp = dy + (n * s.c_out + oc) * s.oh * s.ow;
          for (int64_t p = 0; p < s.oh * s.ow; ++p) acc += to_double(dyp[p]);
        }
        db[oc] = from_double<T>(acc);
      }
    });
  }
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y,
                    const Conv2dShape& s) {
  VIMOE_DISPATCH_FLOATING(x.dtype(), "conv2d", forward_typed<scalar_t>(x, weight, bias, y, s));
}

void conv2d_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& dx,
                     const Tensor& dweight, const Tensor& dbias, const Conv2dShape& s) {
  VIMOE_DISPATCH_FLOATING(x.dtype(), "conv2d backward",
                          backward_typed<scalar_t>(dy, x, weight, dx, dweight, dbias, s));
}

}  // namespace vimoe::cpu
