#include "engine/cpu/gelu.h"

#include <vector>

#include "engine/cpu/acc.h"
#include "kernels/gelu_math.h"

namespace vimoe::cpu {

namespace {

template <typename T>
void forward_typed(const Tensor& x_t, const Tensor& bias_t, const Tensor& out_t, int64_t rows,
                   int64_t cols) {
  const T* x = x_t.data<T>();
  const T* bias = bias_t.defined() ? bias_t.data<T>() : nullptr;
  T* out = out_t.data<T>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      acc_t<T> v = load(x[i]);
      if (bias) v += load(bias[c]);  // added in the compute type, as the fused kernel does
      out[i] = store<T>(kernels::gelu_value(v));
    }
}

template <typename T>
void backward_typed(const Tensor& dy_t, const Tensor& x_t, const Tensor& bias_t,
                    const Tensor& dx_t, const Tensor& dbias_t, int64_t rows, int64_t cols) {
  const T* dy = dy_t.data<T>();
  const T* x = x_t.data<T>();
  const T* bias = bias_t.defined() ? bias_t.data<T>() : nullptr;
  T* dx = dx_t.data<T>();
  std::vector<double> dbias(dbias_t.defined() ? cols : 0, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      acc_t<T> v = load(x[i]);
      if (bias) v += load(bias[c]);
      const acc_t<T> g = load(dy[i]) * kernels::gelu_derivative(v);
      dx[i] = store<T>(g);
      if (!dbias.empty()) dbias[c] += static_cast<double>(g);
    }
  if (dbias_t.defined())
    for (int64_t c = 0; c < cols; ++c) dbias_t.data<T>()[c] = from_double<T>(dbias[c]);
}

}  // namespace

void gelu_forward(const Tensor& x, const Tensor& bias, const Tensor& out, int64_t rows,
                  int64_t cols) {
  VIMOE_DISPATCH_FLOATING(x.dtype(), "gelu", forward_typed<scalar_t>(x, bias, out, rows, cols));
}

void gelu_backward(const Tensor& dy, const Tensor& x, const Tensor& bias, const Tensor& dx,
                   const Tensor& dbias, int64_t rows, int64_t cols) {
  VIMOE_CHECK(!dbias.defined() || bias.defined(), "gelu backward: dbias needs a bias");
  VIMOE_DISPATCH_FLOATING(x.dtype(), "gelu backward",
                          backward_typed<scalar_t>(dy, x, bias, dx, dbias, rows, cols));
}

}  // namespace vimoe::cpu
