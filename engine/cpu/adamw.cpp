#include "engine/cpu/adamw.h"

#include <cmath>

#include "engine/cpu/parallel.h"

namespace vimoe::cpu {

namespace {
template <typename T>
void update(T* p, const T* g, T* m, T* v, int64_t n, const AdamWStep& s) {
  const double decay = 1.0 - s.lr * s.weight_decay;
  const double step_size = s.lr / s.bias_correction1;
  const double root_bc2 = std::sqrt(s.bias_correction2);
  // Every element updates on its own: the threads split the elements.
  parallel_for(0, n, grain_for(16), [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      const double gi = g[i];
      const double mi = s.beta1 * m[i] + (1 - s.beta1) * gi;
      const double vi = s.beta2 * v[i] + (1 - s.beta2) * gi * gi;
      m[i] = static_cast<T>(mi);
      v[i] = static_cast<T>(vi);
      const double denom = std::sqrt(vi) / root_bc2 + s.eps;
      p[i] = static_cast<T>(p[i] * decay - step_size * mi / denom);
    }
  });
}
}  // namespace

void adamw_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                  const Tensor& exp_avg_sq, const AdamWStep& s) {
  const int64_t n = param.numel();
  if (param.dtype() == DType::F64) {
    update(param.data<double>(), grad.data<double>(), exp_avg.data<double>(),
           exp_avg_sq.data<double>(), n, s);
  } else {
    update(param.data<float>(), grad.data<float>(), exp_avg.data<float>(),
           exp_avg_sq.data<float>(), n, s);
  }
}

}  // namespace vimoe::cpu
