#include "engine/gradcheck.h"

#include <cmath>
#include <sstream>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"

namespace vimoe {

namespace {

// Weights in [0.5, 1.5): distinct per element so a gradient routed to the wrong output
// element shows, never zero so none is hidden.
Tensor weights_like(const Tensor& out) {
  std::vector<double> w(out.numel());
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.5 + static_cast<double>((i * 7919 + 13) % 97) / 97.0;
  return Tensor::from_vector(w, out.shape());
}

double weighted_loss(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                     const std::vector<Tensor>& inputs) {
  NoGradGuard no_grad;
  const Tensor out = f(inputs).to(DType::F64);
  return sum(out * weights_like(out)).item<double>();
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, double eps, double atol,
                          double rtol) {
  for (const Tensor& x : inputs) {
    VIMOE_CHECK(!x.defined() || (x.dtype() == DType::F64 && x.device().is_cpu() && x.is_contiguous()),
                "gradcheck: inputs must be contiguous f64 CPU tensors, found ", describe(x));
    if (x.defined() && x.requires_grad()) x.impl_ptr()->grad.reset();
  }
  {
    const Tensor out = f(inputs);
    VIMOE_CHECK(out.requires_grad(), "gradcheck: the output does not require grad");
    sum(out.to(DType::F64) * weights_like(out)).backward();
  }
  GradcheckResult result;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    const Tensor g = x.grad();
    const std::vector<double> analytic =
        g.defined() ? g.to_vector<double>() : std::vector<double>(x.numel(), 0.0);
    double* p = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double saved = p[i];
      p[i] = saved + eps;
      const double up = weighted_loss(f, inputs);
      p[i] = saved - eps;
      const double down = weighted_loss(f, inputs);
      p[i] = saved;
      const double numeric = (up - down) / (2 * eps);
      const double err = std::fabs(analytic[i] - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (result.ok && err > atol + rtol * std::fabs(numeric)) {
        std::ostringstream os;
        os << "input " << k << " element " << i << ": analytic " << analytic[i] << ", numeric "
           << numeric;
        result.ok = false;
        result.message = os.str();
      }
    }
  }
  // Leave the inputs as we found them: a caller reusing them must not see our gradients.
  for (const Tensor& x : inputs)
    if (x.defined() && x.requires_grad()) x.impl_ptr()->grad.reset();
  return result;
}

}  // namespace vimoe
