#include "engine/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/cpu/parallel.h"

namespace vimoe::cpu {

// Each softmax row (one (o, i) pair) is computed whole by one thread; the threads split the
// outer index.

void softmax_forward(const Tensor& x, const Tensor& y, int64_t outer, int64_t n, int64_t inner,
                     bool log) {
  VIMOE_DISPATCH_FLOATING(x.dtype(), "softmax", {
    const scalar_t* xp = x.data<scalar_t>();
    scalar_t* yp = y.data<scalar_t>();
    parallel_for(0, outer, grain_for(4 * n * inner), [&](int64_t first, int64_t last) {
      for (int64_t o = first; o < last; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t base = o * n * inner + i;
          auto at = [&](int64_t c) { return to_double(xp[base + c * inner]); };
          // NaN propagates through the sum below, so max may skip it.
          double m = -std::numeric_limits<double>::infinity();
          for (int64_t c = 0; c < n; ++c) m = std::max(m, at(c));
          double s = 0;
          for (int64_t c = 0; c < n; ++c) s += std::exp(at(c) - m);
          const double log_s = std::log(s);
          for (int64_t c = 0; c < n; ++c) {
            const double v = log ? (at(c) - m) - log_s : std::exp(at(c) - m) / s;
            yp[base + c * inner] = from_double<scalar_t>(v);
          }
        }
    });
  });
}

void softmax_backward(const Tensor& dy, const Tensor& y, const Tensor& dx, int64_t outer,
                      int64_t n, int64_t inner, bool log) {
  VIMOE_DISPATCH_FLOATING(y.dtype(), "softmax backward", {
    const scalar_t* dyp = dy.data<scalar_t>();
    const scalar_t* yp = y.data<scalar_t>();
    scalar_t* dxp = dx.data<scalar_t>();
    parallel_for(0, outer, grain_for(3 * n * inner), [&](int64_t first, int64_t last) {
      for (int64_t o = first; o < last; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t base = o * n * inner + i;
          double total = 0;
          for (int64_t c = 0; c < n; ++c) {
            const int64_t e = base + c * inner;
            total += log ? to_double(dyp[e]) : to_double(dyp[e]) * to_double(yp[e]);
          }
          for (int64_t c = 0; c < n; ++c) {
            const int64_t e = base + c * inner;
            const double g = to_double(dyp[e]), v = to_double(yp[e]);
            dxp[e] = from_double<scalar_t>(log ? g - std::exp(v) * total : v * (g - total));
          }
        }
    });
  });
}

}  // namespace vimoe::cpu
