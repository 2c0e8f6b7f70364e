#include "engine/cpu/layernorm.h"

#include <cmath>
#include <type_traits>
#include <vector>

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
  for (int64_t r = 0; r < rows; ++r) {
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
  std::vector<double> dw(cols, 0.0), db(cols, 0.0), xhat(cols), gw(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* gr = dy + r * cols;
    const double m = mean[r], rs = rstd[r];
    // y = xhat * w + b, so dL/dxhat = dy * w; dx follows from xhat's dependence on the row's
    // mean and variance: rstd * (gw - mean(gw) - xhat * mean(gw * xhat)).
    double sum_gw = 0, sum_gw_xhat = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double g = to_double(gr[c]);
      xhat[c] = (to_double(xr[c]) - m) * rs;
      gw[c] = w ? g * to_double(w[c]) : g;
      sum_gw += gw[c];
      sum_gw_xhat += gw[c] * xhat[c];
      dw[c] += g * xhat[c];
      db[c] += g;
    }
    if (!dx) continue;
    const double n = static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c)
      dx[r * cols + c] = from_double<T>(rs * (gw[c] - sum_gw / n - xhat[c] * sum_gw_xhat / n));
  }
  if (dw_t.defined())
    for (int64_t c = 0; c < cols; ++c) dw_t.data<T>()[c] = from_double<T>(dw[c]);
  if (db_t.defined())
    for (int64_t c = 0; c < cols; ++c) db_t.data<T>()[c] = from_double<T>(db[c]);
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
