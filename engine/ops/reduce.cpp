#include "engine/ops/reduce.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/cpu/reduce.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/elementwise.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/reduce.h"
#endif

namespace vimoe {

namespace {

// Which axes a reduction removes, and the shapes around it.
struct Axes {
  std::vector<bool> reduced;   // per input axis
  std::vector<int64_t> order;  // the kept axes, then the reduced ones (each in input order)
  int64_t rows = 1, cols = 1;  // elements kept, elements reduced into each
  Shape out_shape;             // with or without the reduced axes, per keepdim
  Shape keep_shape;            // the input shape with reduced axes set to 1 (for backward)
};

Axes parse_axes(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  Axes a;
  const int64_t nd = x.dim();
  // A 0-dim tensor reduces like a one-element vector whose axis is never shown: dims may
  // name axis 0 (or -1), and the result is 0-dim either way, as in PyTorch.
  a.reduced.assign(std::max<int64_t>(nd, 1), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, nd, op);
    VIMOE_CHECK(!a.reduced[w], op, ": axis ", w, " listed twice for a tensor of shape ",
                shape_str(x.shape()));
    a.reduced[w] = true;
  }
  if (nd == 0) a.reduced.clear();
  for (int64_t d = 0; d < nd; ++d)
    if (!a.reduced[d]) {
      a.order.push_back(d);
      a.rows *= x.size(d);
    }
  for (int64_t d = 0; d < nd; ++d)
    if (a.reduced[d]) {
      a.order.push_back(d);
      a.cols *= x.size(d);
    }
  for (int64_t d = 0; d < nd; ++d) {
    if (!a.reduced[d]) a.out_shape.push_back(x.size(d));
    else if (keepdim) a.out_shape.push_back(1);
    a.keep_shape.push_back(a.reduced[d] ? 1 : x.size(d));
  }
  return a;
}

// ---- the CPU reference's layout, and max / argmax on both devices -----------------------
// The input permuted so kept axes come first and reduced axes last, made contiguous, and
// viewed as [rows, cols]. On the CPU a contiguous input whose reduced axes all come before
// its kept ones (a bias gradient: [N, D] -> [D]) is instead reduced by columns where it
// lies, as [cols, rows], rather than transposed first.
struct RowPlan {
  Tensor rows2d;  // contiguous [rows, cols], or [cols, rows] when by_columns
  bool by_columns = false;
  int64_t rows = 1, cols = 1;
};

// `columns_ok`: the caller can run a by-columns plan (sum and mean can).
RowPlan plan_rows(const Tensor& x, const Axes& a, bool columns_ok = false) {
  RowPlan p;
  p.rows = a.rows;
  p.cols = a.cols;
  NoGradGuard no_grad;
  // Size-1 axes do not move memory, so only the others decide whether reduced axes lead.
  bool reduced_lead = true, kept_seen = false;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.size(d) == 1) continue;
    if (!a.reduced[d]) kept_seen = true;
    else if (kept_seen) reduced_lead = false;
  }
  if (columns_ok && x.device().is_cpu() && x.is_contiguous() && reduced_lead && kept_seen &&
      p.cols > 1) {
    p.by_columns = true;
    p.rows2d = x.detach().view({p.cols, p.rows});
    return p;
  }
  p.rows2d = x.detach().permute(a.order).contiguous().view({p.rows, p.cols});
  return p;
}

Tensor run_rows_cpu(kernels::ReduceOp op, const RowPlan& p, DType out_dtype, const Shape& out_shape) {
  Tensor out = Tensor::empty({p.rows}, TensorOptions(out_dtype, p.rows2d.device()));
  if (p.by_columns) cpu::reduce_cols(op, p.rows2d, out, p.cols, p.rows);
  else cpu::reduce_rows(op, p.rows2d, out, p.rows, p.cols);
  return out.view(out_shape);
}

// ---- CUDA: reduce where the input lies --------------------------------------------------
// The input as a contiguous [outer, n, inner] block with the reduced elements on the middle
// axis, read in place when its memory allows and copied into that form only when it must.
struct CudaPlan {
  Tensor src;  // its data_ptr() is element [0, 0, 0]
  int64_t outer = 1, n = 1, inner = 1;
  // The kept axes of size > 1 in the order the result is written ([outer, inner] follows
  // memory), and the permutation that puts them in the output's (input) order; empty when
  // they are in that order already.
  Shape kept_sizes;
  std::vector<int64_t> to_output;
};

// A tensor whose elements tile its memory exactly (any permutation of a contiguous one) is
// read as it lies: its axes sorted by stride are contiguous. If, in that order, the reduced
// axes form one run (leading: a bias or LayerNorm weight gradient; trailing: rows; in the
// middle; or everything), the reduction runs on it without a copy. Any other layout (gaps,
// broadcast strides, reduced axes in several runs) is permuted and copied to [rows, cols]
// first, as the CPU reference does.
CudaPlan plan_cuda(const Tensor& x, const Axes& a) {
  NoGradGuard no_grad;
  CudaPlan p;
  const Tensor d = x.detach();
  std::vector<int64_t> axes;  // the axes of size > 1, outermost in memory first
  for (int64_t k = 0; k < d.dim(); ++k)
    if (d.size(k) != 1) axes.push_back(k);
  std::stable_sort(axes.begin(), axes.end(),
                   [&](int64_t i, int64_t j) { return d.strides()[i] > d.strides()[j]; });
  bool dense = d.numel() > 0;
  int64_t expect = 1;
  for (size_t i = axes.size(); i-- > 0;) {
    if (d.strides()[axes[i]] != expect) dense = false;
    expect *= d.size(axes[i]);
  }
  if (dense) {
    std::vector<int64_t> kept;  // memory order
    size_t i = 0;
    for (; i < axes.size() && !a.reduced[axes[i]]; ++i) {
      p.outer *= d.size(axes[i]);
      kept.push_back(axes[i]);
    }
    for (; i < axes.size() && a.reduced[axes[i]]; ++i) p.n *= d.size(axes[i]);
    for (; i < axes.size() && !a.reduced[axes[i]]; ++i) {
      p.inner *= d.size(axes[i]);
      kept.push_back(axes[i]);
    }
    if (i == axes.size()) {
      p.src = d;
      for (int64_t k : kept) p.kept_sizes.push_back(d.size(k));
      if (!std::is_sorted(kept.begin(), kept.end())) {
        std::vector<int64_t> by_axis(kept.size());
        for (size_t j = 0; j < kept.size(); ++j) by_axis[j] = static_cast<int64_t>(j);
        std::sort(by_axis.begin(), by_axis.end(),
                  [&](int64_t u, int64_t v) { return kept[u] < kept[v]; });
        p.to_output = by_axis;
      }
      return p;
    }
  }
  p.outer = a.rows;
  p.n = a.cols;
  p.inner = 1;
  p.src = d.permute(a.order).contiguous();
  p.kept_sizes = {a.rows};
  return p;
}

// The kernels' [outer * inner] result in the output's shape: permuted only when the input's
// memory order put kept axes out of order (a small copy of the result, never of the input).
Tensor to_output(const CudaPlan& p, const Tensor& flat, const Shape& out_shape) {
  if (p.to_output.empty()) return flat.view(out_shape);
  NoGradGuard no_grad;
  return flat.view(p.kept_sizes).permute(p.to_output).contiguous().view(out_shape);
}

#ifdef VIMOE_WITH_CUDA
// One block per row (kernels' reduce_rows / var_rows) when the reduced elements are
// contiguous runs and there are enough of them to fill the GPU, or the runs are short;
// otherwise the column kernels, which also split n across blocks: a few long rows (the full
// reduction is one) are then spread over the whole GPU instead of one block each.
bool use_row_kernel(const CudaPlan& p) {
  constexpr int64_t kRowsToFill = 256, kShortRow = 8192;
  return p.inner == 1 && (p.outer >= kRowsToFill || p.n < kShortRow);
}

Tensor workspace(size_t bytes, Device dev) {
  if (bytes == 0) return Tensor();
  return Tensor::empty({static_cast<int64_t>(bytes)}, TensorOptions(DType::U8, dev));
}
#endif

Tensor run_sum_cuda([[maybe_unused]] kernels::ReduceOp op, const Tensor& x, const Axes& a, DType out_dtype) {
  const CudaPlan p = plan_cuda(x, a);
  Tensor out = Tensor::empty({p.outer * p.inner}, TensorOptions(out_dtype, x.device()));
  VIMOE_CUDA_PATH("sum", x,
    const DType dt = p.src.dtype();
    if (use_row_kernel(p)) {
      VIMOE_CUDA_CHECK(kernels::reduce_rows(op, dt, p.src.data_ptr(), out_dtype, out.data_ptr(),
                                            p.outer, p.n, cuda::stream()));
    } else {
      const Tensor work =
          workspace(kernels::reduce_cols_workspace(dt, p.outer, p.n, p.inner), x.device());
      VIMOE_CUDA_CHECK(kernels::reduce_cols(op, dt, p.src.data_ptr(), out_dtype, out.data_ptr(),
                                            p.outer, p.n, p.inner, ops::ptr_or_null(work),
                                            cuda::stream()));
    }
  );
  return to_output(p, out, a.out_shape);
}

Tensor run_var_cuda(const Tensor& x, const Axes& a, [[maybe_unused]] int64_t correction) {
  const CudaPlan p = plan_cuda(x, a);
  Tensor out = Tensor::empty({p.outer * p.inner}, TensorOptions(x.dtype(), x.device()));
  VIMOE_CUDA_PATH("var", x,
    const DType dt = p.src.dtype();
    if (use_row_kernel(p)) {
      VIMOE_CUDA_CHECK(kernels::var_rows(dt, p.src.data_ptr(), out.data_ptr(), p.outer, p.n,
                                         correction, cuda::stream()));
    } else {
      const Tensor work =
          workspace(kernels::var_cols_workspace(dt, p.outer, p.n, p.inner), x.device());
      VIMOE_CUDA_CHECK(kernels::var_cols(dt, p.src.data_ptr(), out.data_ptr(), p.outer, p.n,
                                         p.inner, correction, ops::ptr_or_null(work), cuda::stream()));
    }
  );
  return to_output(p, out, a.out_shape);
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
    VIMOE_CUDA_PATH(op, x,
      VIMOE_CUDA_CHECK(kernels::max_rows(x.dtype(), p.rows2d.data_ptr(),
                                         values ? values->data_ptr() : nullptr,
                                         indices ? indices->data<int64_t>() : nullptr, p.rows,
                                         p.cols, cuda::stream()));
    );
  }
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  VIMOE_PROFILE_SCOPE("sum");
  ops::check_defined(x, "sum", "x");
  const Axes a = parse_axes(x, dims, keepdim, "sum");
  const DType out_dtype = is_floating(x.dtype()) ? x.dtype() : DType::I64;
  const kernels::ReduceOp op = kernels::ReduceOp::Sum;
  Tensor out = x.device().is_cpu() ? run_rows_cpu(op, plan_rows(x, a, true), out_dtype, a.out_shape)
                                   : run_sum_cuda(op, x, a, out_dtype);
  // Backward: broadcast the gradient back over the reduced axes. The expanded view is the
  // gradient: consumers read stride-0 operands directly, or copy when they need a layout.
  autograd::record("sum", out, {x}, [keep = a.keep_shape, in_shape = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(keep).expand(in_shape)};
  });
  return out;
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  VIMOE_PROFILE_SCOPE("mean");
  ops::check_defined(x, "mean", "x");
  ops::check_floating(x, "mean", "x");
  const Axes a = parse_axes(x, dims, keepdim, "mean");
  const kernels::ReduceOp op = kernels::ReduceOp::Mean;
  Tensor out = x.device().is_cpu() ? run_rows_cpu(op, plan_rows(x, a, true), x.dtype(), a.out_shape)
                                   : run_sum_cuda(op, x, a, x.dtype());
  autograd::record("mean", out, {x}, [keep = a.keep_shape, in_shape = x.shape(), n = a.cols,
                                      dt = x.dtype()](const Tensor& g) {
    const Tensor scaled = (g.to(compute_dtype(dt)).reshape(keep) / static_cast<double>(n)).to(dt);
    return std::vector<Tensor>{scaled.expand(in_shape)};
  });
  return out;
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  VIMOE_PROFILE_SCOPE("max");
  ops::check_defined(x, "max", "x");
  // Both devices take the row layout (a copy when the reduced axis is not last).
  const Axes a = parse_axes(x, {dim}, keepdim, "max");
  const RowPlan p = plan_rows(x, a);
  const bool grad = autograd::needs_grad({x});
  Tensor values, index;
  max_forward(x, dim, "max", p, &values, grad ? &index : nullptr);
  values = values.view(a.out_shape);
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
      VIMOE_CUDA_PATH("max (backward)", g,
        VIMOE_CUDA_CHECK(kernels::max_backward(dt, g.data_ptr(), index.data<int64_t>(),
                                               out.data_ptr(), outer, n, inner, cuda::stream()));
      );
    }
    return std::vector<Tensor>{out};
  });
  return values;
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  VIMOE_PROFILE_SCOPE("argmax");
  ops::check_defined(x, "argmax", "x");
  const Axes a = parse_axes(x, {dim}, keepdim, "argmax");
  const RowPlan p = plan_rows(x, a);
  Tensor index;
  max_forward(x, dim, "argmax", p, nullptr, &index);
  return index.view(a.out_shape);
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, int64_t correction) {
  VIMOE_PROFILE_SCOPE("var");
  ops::check_defined(x, "var", "x");
  ops::check_floating(x, "var", "x");
  const Axes a = parse_axes(x, dims, keepdim, "var");
  Tensor out;
  if (x.device().is_cpu()) {
    const RowPlan p = plan_rows(x, a);
    out = Tensor::empty({p.rows}, TensorOptions(x.dtype(), x.device()));
    cpu::var_rows(p.rows2d, out, p.rows, p.cols, correction);
    out = out.view(a.out_shape);
  } else {
    out = run_var_cuda(x, a, correction);
  }
  // d var / d x = 2 (x - mean) / (N - correction). Computed in f32 for half inputs, since
  // x - mean cancels badly in bf16 when the mean is large against the spread.
  autograd::record("var", out, {x}, [x, dims, keep = a.keep_shape, n = a.cols,
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
