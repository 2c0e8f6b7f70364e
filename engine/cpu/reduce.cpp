#include "engine/cpu/reduce.h"

#include <algorithm>
#include <vector>

#include "engine/cpu/acc.h"
#include "engine/cpu/parallel.h"

namespace vimoe::cpu {

// Every row (or column) is summed by one thread in index order, so the threads only decide
// which rows run where, never how a sum is formed.

void reduce_rows(kernels::ReduceOp op, const Tensor& in, const Tensor& out, int64_t rows,
                 int64_t cols) {
  const bool mean = op == kernels::ReduceOp::Mean;
  VIMOE_CHECK(!mean || is_floating(in.dtype()), "mean: expected a floating dtype, found ",
              dtype_name(in.dtype()));
  VIMOE_DISPATCH(in.dtype(), "sum", {
    const scalar_t* p = in.data<scalar_t>();
    using in_t = scalar_t;
    VIMOE_DISPATCH(out.dtype(), "sum", {
      scalar_t* o = out.data<scalar_t>();
      parallel_for(0, rows, grain_for(cols), [&](int64_t first, int64_t last) {
        for (int64_t r = first; r < last; ++r) {
          const in_t* row = p + r * cols;
          if constexpr (!std::is_integral_v<scalar_t>) {
            double acc = 0;
            for (int64_t c = 0; c < cols; ++c) acc += to_double(row[c]);
            if (mean) acc /= static_cast<double>(cols);  // 0/0 = NaN for an empty row
            o[r] = from_double<scalar_t>(acc);
          } else {
            int64_t acc = 0;
            for (int64_t c = 0; c < cols; ++c) acc += convert<int64_t>(row[c]);
            o[r] = static_cast<scalar_t>(acc);
          }
        }
      });
    });
  });
}

void reduce_cols(kernels::ReduceOp op, const Tensor& in, const Tensor& out, int64_t rows,
                 int64_t cols) {
  const bool mean = op == kernels::ReduceOp::Mean;
  VIMOE_CHECK(!mean || is_floating(in.dtype()), "mean: expected a floating dtype, found ",
              dtype_name(in.dtype()));
  // A chunk of at least 16 columns: threads then rarely read the same cache lines.
  const int64_t grain = std::max<int64_t>(16, grain_for(rows));
  VIMOE_DISPATCH(in.dtype(), "sum", {
    const scalar_t* p = in.data<scalar_t>();
    using in_t = scalar_t;
    VIMOE_DISPATCH(out.dtype(), "sum", {
      scalar_t* o = out.data<scalar_t>();
      using sum_t = std::conditional_t<std::is_integral_v<scalar_t>, int64_t, double>;
      parallel_for(0, cols, grain, [&](int64_t first, int64_t last) {
        // Row after row over this chunk of columns: the accumulators stay in cache and each
        // column still adds its rows in order.
        std::vector<sum_t> acc(last - first, sum_t(0));
        for (int64_t r = 0; r < rows; ++r) {
          const in_t* row = p + r * cols + first;
          for (int64_t c = 0; c < last - first; ++c) acc[c] += convert<sum_t>(row[c]);
        }
        for (int64_t c = first; c < last; ++c) {
          if constexpr (!std::is_integral_v<scalar_t>) {
            double v = acc[c - first];
            if (mean) v /= static_cast<double>(rows);
            o[c] = from_double<scalar_t>(v);
          } else {
            o[c] = static_cast<scalar_t>(acc[c - first]);
          }
        }
      });
    });
  });
}

void max_rows(const Tensor& in, const Tensor& values, const Tensor& indices, int64_t rows,
              int64_t cols) {
  VIMOE_CHECK(cols >= 1, "max: cannot reduce rows of length 0");
  VIMOE_DISPATCH(in.dtype(), "max", {
    const scalar_t* p = in.data<scalar_t>();
    scalar_t* vo = values.defined() ? values.data<scalar_t>() : nullptr;
    int64_t* io = indices.defined() ? indices.data<int64_t>() : nullptr;
    parallel_for(0, rows, grain_for(cols), [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {
        const scalar_t* row = p + r * cols;
        acc_t<scalar_t> best = load(row[0]);
        int64_t bi = 0;
        for (int64_t c = 1; c < cols; ++c) {
          const acc_t<scalar_t> v = load(row[c]);
          if (kernels::max_beats(v, best)) {
            best = v;
            bi = c;
          }
        }
        if (vo) vo[r] = row[bi];
        if (io) io[r] = bi;
      }
    });
  });
}

void var_rows(const Tensor& in, const Tensor& out, int64_t rows, int64_t cols,
              int64_t correction) {
  const double dof = static_cast<double>(std::max<int64_t>(cols - correction, 0));
  VIMOE_DISPATCH_FLOATING(in.dtype(), "var", {
    const scalar_t* p = in.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    parallel_for(0, rows, grain_for(2 * cols), [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {
        const scalar_t* row = p + r * cols;
        double s = 0;
        for (int64_t c = 0; c < cols; ++c) s += to_double(row[c]);
        const double mean = s / static_cast<double>(cols);
        double ss = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double d = to_double(row[c]) - mean;
          ss += d * d;
        }
        o[r] = from_double<scalar_t>(ss / dof);  // dof 0: inf, or NaN for 0/0, like torch.var
      }
    });
  });
}

void max_backward(const Tensor& grad, const Tensor& index, const Tensor& out, int64_t outer,
                  int64_t n, int64_t inner) {
  VIMOE_DISPATCH_FLOATING(out.dtype(), "max backward", {
    const scalar_t* g = grad.data<scalar_t>();
    const int64_t* idx = index.data<int64_t>();
    scalar_t* o = out.data<scalar_t>();
    parallel_for(0, outer, grain_for(n * inner), [&](int64_t first, int64_t last) {
      for (int64_t a = first; a < last; ++a)
        for (int64_t c = 0; c < n; ++c)
          for (int64_t i = 0; i < inner; ++i) {
            const int64_t r = a * inner + i;
            o[(a * n + c) * inner + i] = idx[r] == c ? g[r] : from_double<scalar_t>(0.0);
          }
    });
  });
}

}  // namespace vimoe::cpu
