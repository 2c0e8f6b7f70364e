#include "engine/ops/reduce.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/cpu/reduce.h"
#include "engine/cuda/runtime.h"
#include "engine/ops/common.h"
#include "engine/ops/elementwise.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/reduce.h"
#endif

namespace vimoe {

namespace {

// A reduction laid out for a row kernel: the input permuted so kept axes come first and
// reduced axes last, made contiguous, and viewed as [rows, cols]. On the CPU a contiguous
// input whose reduced axes all come before its kept ones (a bias gradient: [N, D] -> [D])
// is instead reduced by columns where it lies, as [cols, rows], rather than transposed first.
struct RowPlan {
  Tensor rows2d;            // contiguous [rows, cols], or [cols, rows] when by_columns
  bool by_columns = false;
  int64_t rows = 1, cols = 1;
  Shape out_shape;          // with or without the reduced axes, per keepdim
  Shape keep_shape;         // the input shape with reduced axes set to 1 (for backward)
  std::vector<bool> reduced;  // per input axis
};

// `columns_ok`: the caller can run a by-columns plan (sum and mean can).
RowPlan plan_rows(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, const char* op,
                  bool columns_ok = false) {
  RowPlan p;
  const int64_t nd = x.dim();
  // A 0-dim tensor reduces like a one-element vector whose axis is never shown: dims may
  // name axis 0 (or -1), and the result is 0-dim either way, as in PyTorch.
  p.reduced.assign(std::max<int64_t>(nd, 1), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, nd, op);
    VIMOE_CHECK(!p.reduced[w], op, ": axis ", w, " listed twice for a tensor of shape ",
                shape_str(x.shape()));
    p.reduced[w] = true;
  }
  if (nd == 0) p.reduced.clear();
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
    p.keep_shape.push_back(p.reduced[d] ? 1 : x.size(d));
  }
  NoGradGuard no_grad;
  // Size-1 axes do not move memory, so only the others decide whether reduced axes lead.
  bool reduced_lead = true, kept_seen = false;
  for (int64_t d = 0; d < nd; ++d) {
    if (x.size(d) == 1) continue;
    if (!p.reduced[d]) kept_seen = true;
    else if (kept_seen) reduced_lead = false;
  }
  if (columns_ok && x.device().is_cpu() && x.is_contiguous() && reduced_lead && kept_seen &&
      p.cols > 1) {
    p.by_columns = true;
    p.rows2d = x.detach().view({p.cols, p.rows});
    return p;
  }
  p.rows2d = x.detach().permute(order).contiguous().view({p.rows, p.cols});
  return p;
}

Tensor run_rows(kernels::ReduceOp op, const RowPlan& p, DType out_dtype) {
  Tensor out = Tensor::empty({p.rows}, TensorOptions(out_dtype, p.rows2d.device()));
  if (p.by_columns) {
    cpu::reduce_cols(op, p.rows2d, out, p.cols, p.rows);
  } else if (out.device().is_cpu()) {
    cpu::reduce_rows(op, p.rows2d, out, p.rows, p.cols);
  } else {
#ifdef VIMOE_WITH_CUDA
    VIMOE_CUDA_CHECK(kernels::reduce_rows(op, p.rows2d.dtype(), p.rows2d.data_ptr(), out_dtype,
                                          out.data_ptr(), p.rows, p.cols, cuda::stream()));
#endif
  }
  return out.view(p.out_shape);
}

// Half-precision gradients are scaled in f32 and rounded once at the end.
DType compute_dtype(DType t) { return t == DType::BF16 || t == DType::F16 ? DType::F32 : t; }

// values and/or indices of the first maximal element along `dim`; both flat [rows].
void max_forward(const Tensor& x, int64_t dim, const char* op, const RowPlan& p, Tensor* values,
                 Tensor* indices) {
  VIMOE_CHECK(p.cols > 0, op, ": cannot reduce dimension ", wrap_dim(dim, x.dim(), op),
              " of size 0 in ", describe(x));
  const Device dev = x.device();
  if (values) *values = Tensor::empty({p.rows}, TensorOptions(x.dtype(), dev));
  if (indices) *indices = Tensor::empty({p.rows}, TensorOptions(DType::I64, dev));
  if (dev.is_cpu()) {
    cpu::max_rows(p.rows2d, values ? *values : Tensor(), indices ? *indices : Tensor(), p.rows,
                  p.cols);
  } else {
#ifdef VIMOE_WITH_CUDA
    VIMOE_CUDA_CHECK(kernels::max_rows(x.dtype(), p.rows2d.data_ptr(),
                                       values ? values->data_ptr() : nullptr,
                                       indices ? indices->data<int64_t>() : nullptr, p.rows,
                                       p.cols, cuda::stream()));
#endif
  }
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  VIMOE_PROFILE_SCOPE("sum");
  ops::check_defined(x, "sum", "x");
  const RowPlan p = plan_rows(x, dims, keepdim, "sum", true);
  const DType out_dtype = is_floating(x.dtype()) ? x.dtype() : DType::I64;
  Tensor out = run_rows(kernels::ReduceOp::Sum, p, out_dtype);
  // Backward: broadcast the gradient back over the reduced axes. The expanded view is the
  // gradient: consumers read stride-0 operands directly, or copy when they need a layout.
  autograd::record("sum", out, {x}, [keep = p.keep_shape, in_shape = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(keep).expand(in_shape)};
  });
  return out;
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  VIMOE_PROFILE_SCOPE("mean");
  ops::check_defined(x, "mean", "x");
  ops::check_floating(x, "mean", "x");
  const RowPlan p = plan_rows(x, dims, keepdim, "mean", true);
  Tensor out = run_rows(kernels::ReduceOp::Mean, p, x.dtype());
  autograd::record("mean", out, {x}, [keep = p.keep_shape, in_shape = x.shape(), n = p.cols,
                                      dt = x.dtype()](const Tensor& g) {
    const Tensor scaled = (g.to(compute_dtype(dt)).reshape(keep) / static_cast<double>(n)).to(dt);
    return std::vector<Tensor>{scaled.expand(in_shape)};
  });
  return out;
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  VIMOE_PROFILE_SCOPE("max");
  ops::check_defined(x, "max", "x");
  const RowPlan p = plan_rows(x, {dim}, keepdim, "max");
  const bool grad = autograd::needs_grad({x});
  Tensor values, index;
  max_forward(x, dim, "max", p, &values, grad ? &index : nullptr);
  values = values.view(p.out_shape);
  if (!grad) return values;
  // The input as [outer, n, inner] around the reduced axis; index is [outer, inner].
  const int64_t d = x.dim() == 0 ? 0 : wrap_dim(dim, x.dim(), "max");
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < x.dim(); ++k) {
    if (k < d) outer *= x.size(k);
    if (k > d) inner *= x.size(k);
  }
  autograd::record("max", values, {x}, [index, outer, n = p.cols, inner, in_shape = x.shape(),
                                        dt = x.dtype(), dev = x.device()](const Tensor& g_in) {
    const Tensor g = g_in.to(dt).contiguous();
    Tensor out = Tensor::empty(in_shape, TensorOptions(dt, dev));
    if (dev.is_cpu()) {
      cpu::max_backward(g, index, out, outer, n, inner);
    } else {
#ifdef VIMOE_WITH_CUDA
      VIMOE_CUDA_CHECK(kernels::max_backward(dt, g.data_ptr(), index.data<int64_t>(),
                                             out.data_ptr(), outer, n, inner, cuda::stream()));
#endif
    }
    return std::vector<Tensor>{out};
  });
  return values;
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  VIMOE_PROFILE_SCOPE("argmax");
  ops::check_defined(x, "argmax", "x");
  const RowPlan p = plan_rows(x, {dim}, keepdim, "argmax");
  Tensor index;
  max_forward(x, dim, "argmax", p, nullptr, &index);
  return index.view(p.out_shape);
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, int64_t correction) {
  VIMOE_PROFILE_SCOPE("var");
  ops::check_defined(x, "var", "x");
  ops::check_floating(x, "var", "x");
  const RowPlan p = plan_rows(x, dims, keepdim, "var");
  Tensor out = Tensor::empty({p.rows}, TensorOptions(x.dtype(), x.device()));
  if (out.device().is_cpu()) {
    cpu::var_rows(p.rows2d, out, p.rows, p.cols, correction);
  } else {
#ifdef VIMOE_WITH_CUDA
    VIMOE_CUDA_CHECK(kernels::var_rows(x.dtype(), p.rows2d.data_ptr(), out.data_ptr(), p.rows,
                                       p.cols, correction, cuda::stream()));
#endif
  }
  out = out.view(p.out_shape);
  // d var / d x = 2 (x - mean) / (N - correction). Computed in f32 for half inputs, since
  // x - mean cancels badly in bf16 when the mean is large against the spread.
  autograd::record("var", out, {x}, [x, dims, keep = p.keep_shape, n = p.cols,
                                     correction](const Tensor& g) {
    const DType cd = compute_dtype(x.dtype());
    const Tensor xc = x.detach().to(cd);
    const double scale = 2.0 / static_cast<double>(std::max<int64_t>(n - correction, 0));
    const Tensor centred = xc - mean(xc, dims, true);
    return std::vector<Tensor>{centred * (g.to(cd).reshape(keep) * scale)};
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
