#include "engine/cpu/layernorm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "engine/cpu/parallel.h"

namespace vimoe::cpu {

namespace {

// The statistics' type: f64 alongside f64 data (gradient checks need it), else f32 as on
// the GPU.
template <typename T> using stat_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <typename T>
void forward_typed(const Tensor& x_t, const Tensor& w_t, const Tensor& b_t, double eps,
                   const Tensor& y_t, const Tensor& mean_t, const Tensor& rstd_t, int64_t rows,
                   int64_t cols) {
  const T* x = x_t.data<T>();
  const T* w = data_or_null<T>(w_t);
  const T* b = data_or_null<T>(b_t);
  T* y = y_t.data<T>();
  stat_t<T>* mean = mean_t.data<stat_t<T>>();
  stat_t<T>* rstd = rstd_t.data<stat_t<T>>();
  parallel_for(0, rows, grain_for(4 * cols), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      double m = 0;
      for (int64_t c = 0; c < cols; ++c) m += to_double(xr[c]);
      m /= static_cast<double>(cols);
      double var = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double d = to_double(xr[c]) - m;
        var += d * d;
      }
      var /= static_cast<double>(cols);
      const double rs = 1.0 / std::sqrt(var + eps);
      for (int64_t c = 0; c < cols; ++c) {
        double o = (to_double(xr[c]) - m) * rs;
        if (w) o *= to_double(w[c]);
        if (b) o += to_double(b[c]);
        yr[c] = from_double<T>(o);
      }
      mean[r] = static_cast<stat_t<T>>(m);
      rstd[r] = static_cast<stat_t<T>>(rs);
    }
  });
}

template <typename T>
void backward_typed(const Tensor& dy_t, const Tensor& x_t, const Tensor& w_t,
                    const Tensor& mean_t, const Tensor& rstd_t, const Tensor& dx_t,
                    const Tensor& dw_t, const Tensor& db_t, int64_t rows, int64_t cols) {
  const T* dy = dy_t.data<T>();
  const T* x = x_t.data<T>();
  const T* w = data_or_null<T>(w_t);
  const stat_t<T>* mean = mean_t.data<stat_t<T>>();
  const stat_t<T>* rstd = rstd_t.data<stat_t<T>>();
  T* dx = dx_t.defined() ? dx_t.data<T>() : nullptr;
  const double n = static_cast<double>(cols);
  // dx, row by row (rows are independent, so they spread over the threads).
  if (dx) {
    parallel_for(0, rows, grain_for(6 * cols), [&](int64_t first, int64_t last) {
      std::vector<double> xhat(cols), gw(cols);
      for (int64_t r = first; r < last; ++r) {
        const T* xr = x + r * cols;
        const T* gr = dy + r * cols;
        const double m = mean[r], rs = rstd[r];
        // y = xhat * w + b, so dL/dxhat = dy * w; dx follows from xhat's dependence on the
        // row's mean and variance: rstd * (gw - mean(gw) - xhat * mean(gw * xhat)).
        double sum_gw = 0, sum_gw_xhat = 0;
        for (int64_t c = 0; c < cols; ++c) {
          xhat[c] = (to_double(xr[c]) - m) * rs;
          gw[c] = w ? to_double(gr[c]) * to_double(w[c]) : to_double(gr[c]);
          sum_gw += gw[c];
          sum_gw_xhat += gw[c] * xhat[c];
        }
        for (int64_t c = 0; c < cols; ++c)
          dx[r * cols + c] = from_double<T>(rs * (gw[c] - sum_gw / n - xhat[c] * sum_gw_xhat / n));
      }
    });
  }
  // dweight and dbias sum down the columns: the columns spread over the threads, and each
  // column adds its rows in order.
  if (!dw_t.defined() && !db_t.defined()) return;
  T* dw_out = dw_t.defined() ? dw_t.data<T>() : nullptr;
  T* db_out = db_t.defined() ? db_t.data<T>() : nullptr;
  parallel_for(0, cols, std::max<int64_t>(16, grain_for(3 * rows)), [&](int64_t c0, int64_t c1) {
    std::vector<double> dw(c1 - c0, 0.0), db(c1 - c0, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      const T* gr = dy + r * cols;
      const double m = mean[r], rs = rstd[r];
      for (int64_t c = c0; c < c1; ++c) {
        const double g = to_double(gr[c]);
        dw[c - c0] += g * ((to_double(xr[c]) - m) * rs);
        db[c - c0] += g;
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      if (dw_out) dw_out[c] = from_double<T>(dw[c - c0]);
      if (db_out) db_out[c] = from_double<T>(db[c - c0]);
    }
  });
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                        const Tensor& y, const Tensor& mean, const Tensor& rstd, int64_t rows,
                        int64_t cols) {
  VIMOE_DISPATCH_FLOATING(x.dtype(), "layer_norm",
                          forward_typed<scalar_t>(x, weight, bias, eps, y, mean, rstd, rows, cols));
}

void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                         const Tensor& mean, const Tensor& rstd, const Tensor& dx,
                         const Tensor& dweight, const Tensor& dbias, int64_t rows, int64_t cols) {
  VIMOE_DISPATCH_FLOATING(x.dtype(), "layer_norm backward",
                          backward_typed<scalar_t>(dy, x, weight, mean, rstd, dx, dweight, dbias,
                                                   rows, cols));
}

}  // namespace vimoe::cpu
