#include "engine/cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace vimoe::cpu {

int64_t cross_entropy_forward(const Tensor& logits, const Tensor& target, double label_smoothing,
                              int64_t ignore_index, const Tensor& loss, const Tensor& lse,
                              const Tensor& count) {
  const int64_t rows = logits.size(0), classes = logits.size(1);
  const int64_t* t = target.data<int64_t>();
  for (int64_t r = 0; r < rows; ++r)
    if (t[r] != ignore_index && (t[r] < 0 || t[r] >= classes)) return r;
  double* lp = lse.data<double>();
  double total = 0;
  int64_t n = 0;
  VIMOE_DISPATCH_FLOATING(logits.dtype(), "cross_entropy", {
    const scalar_t* x = logits.data<scalar_t>();
    for (int64_t r = 0; r < rows; ++r) {
      lp[r] = 0;
      if (t[r] == ignore_index) continue;
      const scalar_t* xr = x + r * classes;
      double m = -std::numeric_limits<double>::infinity(), sx = 0;
      for (int64_t c = 0; c < classes; ++c) {
        m = std::max(m, to_double(xr[c]));
        sx += to_double(xr[c]);
      }
      double s = 0;
      for (int64_t c = 0; c < classes; ++c) s += std::exp(to_double(xr[c]) - m);
      lp[r] = m + std::log(s);
      total += lp[r] - (1 - label_smoothing) * to_double(xr[t[r]]) -
               label_smoothing / static_cast<double>(classes) * sx;
      ++n;
    }
    loss.data<scalar_t>()[0] = from_double<scalar_t>(n > 0 ? total / static_cast<double>(n) : 0.0);
  });
  count.data<int64_t>()[0] = n;
  return rows;
}

void cross_entropy_backward(const Tensor& logits, const Tensor& target, double label_smoothing,
                            int64_t ignore_index, const Tensor& grad, const Tensor& lse,
                            const Tensor& count, const Tensor& dx) {
  const int64_t rows = logits.size(0), classes = logits.size(1);
  const int64_t* t = target.data<int64_t>();
  const double* lp = lse.data<double>();
  const int64_t n = count.data<int64_t>()[0];
  VIMOE_DISPATCH_FLOATING(logits.dtype(), "cross_entropy backward", {
    const scalar_t* x = logits.data<scalar_t>();
    scalar_t* d = dx.data<scalar_t>();
    const double scale = n > 0 ? to_double(grad.data<scalar_t>()[0]) / static_cast<double>(n) : 0.0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < classes; ++c) {
        const int64_t e = r * classes + c;
        double v = 0;
        if (n > 0 && t[r] != ignore_index) {
          const double target_weight = (c == t[r] ? 1 - label_smoothing : 0.0);
          v = scale * (std::exp(to_double(x[e]) - lp[r]) - target_weight -
                       label_smoothing / static_cast<double>(classes));
        }
        d[e] = from_double<scalar_t>(v);
      }
  });
}

}  // namespace vimoe::cpu
