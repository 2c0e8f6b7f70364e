#include "engine/cpu/gelu.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "engine/cpu/acc.h"
#include "engine/cpu/parallel.h"
#include "kernels/gelu_math.h"

namespace vimoe::cpu {

namespace {

template <typename T>
void forward_typed(const Tensor& x_t, const Tensor& bias_t, const Tensor& out_t, int64_t rows,
                   int64_t cols) {
  const T* x = x_t.data<T>();
  const T* bias = bias_t.defined() ? bias_t.data<T>() : nullptr;
  T* out = out_t.data<T>();
  parallel_for(0, rows, grain_for(16 * cols), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t i = r * cols + c;
        acc_t<T> v = load(x[i]);
        if (bias) v += load(bias[c]);  // added in the compute type, as the fused kernel does
        out[i] = store<T>(kernels::gelu_value(v));
      }
  });
}

template <typename T>
void backward_typed(const Tensor& dy_t, const Tensor& x_t, const Tensor& bias_t,
                    const Tensor& dx_t, const Tensor& dbias_t, int64_t rows, int64_t cols) {
  const T* dy = dy_t.data<T>();
  const T* x = x_t.data<T>();
  const T* bias = bias_t.defined() ? bias_t.data<T>() : nullptr;
  T* dx = dx_t.data<T>();
  T* dbias = dbias_t.defined() ? dbias_t.data<T>() : nullptr;
  // Rows [r0, r1) x columns [c0, c1); dbias of those columns when `sum_columns` (then the
  // range covers every row, so each column's sum runs over the rows in order on one thread).
  auto block = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1, bool sum_columns) {
    std::vector<double> acc(sum_columns ? c1 - c0 : 0, 0.0);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t i = r * cols + c;
        acc_t<T> v = load(x[i]);
        if (bias) v += load(bias[c]);
        const acc_t<T> g = load(dy[i]) * kernels::gelu_derivative(v);
        dx[i] = store<T>(g);
        if (sum_columns) acc[c - c0] += static_cast<double>(g);
      }
    if (sum_columns)
      for (int64_t c = c0; c < c1; ++c) dbias[c] = from_double<T>(acc[c - c0]);
  };
  // dbias sums down the columns, so those are what the threads split for it; each column
  // still adds its rows in order.
  if constexpr (!std::is_same_v<T, acc_t<T>>) {
    if (dbias) {
      // Half types: dx is rounded, so dbias must sum g as it is computed.
      parallel_for(0, cols, std::max<int64_t>(16, grain_for(16 * rows)),
                   [&](int64_t c0, int64_t c1) { block(0, rows, c0, c1, true); });
      return;
    }
  }
  parallel_for(0, rows, grain_for(16 * cols),
               [&](int64_t r0, int64_t r1) { block(r0, r1, 0, cols, false); });
  if (!dbias) return;
  // f32 / f64: dx holds g exactly, so dbias can sum it afterwards, row after row.
  parallel_for(0, cols, std::max<int64_t>(16, grain_for(rows)), [&](int64_t c0, int64_t c1) {
    std::vector<double> acc(c1 - c0, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += to_double(dx[r * cols + c]);
    for (int64_t c = c0; c < c1; ++c) dbias[c] = from_double<T>(acc[c - c0]);
  });
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
