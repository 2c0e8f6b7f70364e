#include "engine/cpu/reduce.h"

namespace vimoe::cpu {

void reduce_rows(kernels::ReduceOp op, const Tensor& in, const Tensor& out, int64_t rows,
                 int64_t cols) {
  VIMOE_CHECK(op == kernels::ReduceOp::Sum, "reduce_rows: unsupported reduction");
  VIMOE_DISPATCH(in.dtype(), "sum", {
    const scalar_t* p = in.data<scalar_t>();
    using in_t = scalar_t;
    VIMOE_DISPATCH(out.dtype(), "sum", {
      scalar_t* o = out.data<scalar_t>();
      for (int64_t r = 0; r < rows; ++r) {
        const in_t* row = p + r * cols;
        if constexpr (!std::is_integral_v<scalar_t>) {
          double acc = 0;
          for (int64_t c = 0; c < cols; ++c) acc += to_double(row[c]);
          o[r] = from_double<scalar_t>(acc);
        } else {
          int64_t acc = 0;
          for (int64_t c = 0; c < cols; ++c) {
            acc += convert<int64_t>(row[c]);
          }
          o[r] = static_cast<scalar_t>(acc);
        }
      }
    });
  });
}

}  // namespace vimoe::cpu
