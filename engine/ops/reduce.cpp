#include "engine/ops/reduce.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/cpu/reduce.h"
#include "engine/cuda/runtime.h"
#include "engine/ops/common.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/reduce.h"
#endif

namespace vimoe {

namespace {

// A reduction laid out for a row kernel: the input permuted so kept axes come first and
// reduced axes last, made contiguous, and viewed as [rows, cols].
struct RowPlan {
  Tensor rows2d;            // contiguous [rows, cols]
  int64_t rows = 1, cols = 1;
  Shape out_shape;          // with or without the reduced axes, per keepdim
  std::vector<bool> reduced;  // per input axis
};

RowPlan plan_rows(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  RowPlan p;
  const int64_t nd = x.dim();
  p.reduced.assign(nd, dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, nd, op);
    VIMOE_CHECK(!p.reduced[w], op, ": axis ", w, " listed twice");
    p.reduced[w] = true;
  }
  std::vector<int64_t> order;
  for (int64_t d = 0; d < nd; ++d)
    if (!p.reduced[d]) {
      order.push_back(d);
      p.rows *= x.size(d);
    }
  for (int64_t d = 0; d < nd; ++d)
    if (p.reduced[d]) {
      order.push_back(d);
      p.cols *= x.size(d);
    }
  for (int64_t d = 0; d < nd; ++d) {
    if (!p.reduced[d]) p.out_shape.push_back(x.size(d));
    else if (keepdim) p.out_shape.push_back(1);
  }
  NoGradGuard no_grad;
  p.rows2d = x.permute(order).contiguous().view({p.rows, p.cols});
  return p;
}

Tensor run_rows(kernels::ReduceOp op, const RowPlan& p, DType out_dtype) {
  Tensor out = Tensor::empty({p.rows}, TensorOptions(out_dtype, p.rows2d.device()));
  if (out.device().is_cpu()) {
    cpu::reduce_rows(op, p.rows2d, out, p.rows, p.cols);
  } else {
#ifdef VIMOE_WITH_CUDA
    VIMOE_CUDA_CHECK(kernels::reduce_rows(op, p.rows2d.dtype(), p.rows2d.data_ptr(), out_dtype,
                                          out.data_ptr(), p.rows, p.cols, cuda::stream()));
#endif
  }
  return out.view(p.out_shape);
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ops::check_defined(x, "sum", "x");
  const RowPlan p = plan_rows(x, dims, keepdim, "sum");
  const DType out_dtype = is_floating(x.dtype()) ? x.dtype() : DType::I64;
  Tensor out = run_rows(kernels::ReduceOp::Sum, p, out_dtype);
  // Backward: broadcast the gradient back over the reduced axes.
  Shape keep_shape = x.shape();
  for (size_t d = 0; d < keep_shape.size(); ++d)
    if (p.reduced[d]) keep_shape[d] = 1;
  autograd::record("sum", out, {x}, [keep_shape, in_shape = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(keep_shape).expand(in_shape).contiguous()};
  });
  return out;
}

Tensor sum_to_shape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  VIMOE_CHECK(lead >= 0, "sum_to_shape: cannot reduce ", shape_str(g.shape()), " to ",
              shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < g.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
      continue;
    }
    const int64_t want = shape[d - lead];
    if (want == 1 && g.size(d) != 1) dims.push_back(d);
    else VIMOE_CHECK(want == g.size(d), "sum_to_shape: cannot reduce ", shape_str(g.shape()),
                     " to ", shape_str(shape));
  }
  if (dims.empty()) return g.reshape(shape);
  return sum(g, dims, true).reshape(shape);
}

}  // namespace vimoe
