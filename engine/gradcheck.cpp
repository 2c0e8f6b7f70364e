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

// f's output as an f64 copy: f may return a view of its input (slice, select, expand),
// whose values would change with the next perturbation.
Tensor eval_f64(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                const std::vector<Tensor>& inputs) {
  NoGradGuard no_grad;
  return f(inputs).to(DType::F64).clone();
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
      const Tensor up = eval_f64(f, inputs);
      p[i] = saved - eps;
      const Tensor down = eval_f64(f, inputs);
      p[i] = saved;
      // The outputs are differenced before they are weighted and summed: summing first would
      // leave the rounding error of a large total (many outputs of size ~10, as log_softmax
      // gives) divided by 2 eps in the result, ~1e-5 at eps 1e-6.
      const double numeric = sum((up - down) * weights_like(up)).item<double>() / (2 * eps);
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
