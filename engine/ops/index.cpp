#include "engine/ops/index.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/cpu/index.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/index.h"
#endif

namespace vimoe {

namespace {

int64_t product(const Shape& s, int64_t from, int64_t to) {
  int64_t p = 1;
  for (int64_t d = from; d < to; ++d) p *= s[d];
  return p;
}

std::string axis_of(int64_t dim, const Tensor& x) {
  return detail::concat("dimension ", dim, " of x ", shape_str(x.shape()));
}

void check_index_dtype(const Tensor& index, const char* op) {
  ops::check_defined(index, op, "index");
  VIMOE_CHECK(index.dtype() == DType::I64 || index.dtype() == DType::I32, op,
              ": index must be i64 or i32, found ", describe(index));
}

// x and src of index_add / scatter_add promote; the sum needs a floating or i32/i64 type.
DType accumulate_dtype(const Tensor& x, const Tensor& src, const char* op) {
  const DType dt = promote_types(x.dtype(), src.dtype());
  VIMOE_CHECK(dt != DType::U8, op, ": cannot accumulate u8 values (x ", describe(x), ", src ",
              describe(src), "); convert to i32 or a floating type first");
  return dt;
}

Shape unravel(int64_t position, const Shape& shape) {
  Shape c(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    c[d] = position % shape[d];
    position /= shape[d];
  }
  return c;
}

[[noreturn]] void fail_bad_index(const char* op, const Tensor& index, int64_t position,
                                 int64_t bound, const std::string& axis) {
  NoGradGuard no_grad;
  const int64_t value = index.reshape({-1}).narrow(0, position, 1).item<int64_t>();
  VIMOE_FAIL(op, ": index ", value, " at position ", shape_str(unravel(position, index.shape())),
             " of index ", shape_str(index.shape()), " is out of range [0, ", bound, ") for ",
             axis, value < 0 ? " (negative indices are not wrapped)" : "");
}

// Validates an index on the host: for CPU tensors, and for CUDA calls whose kernel would
// visit no index entry (nothing else to compute, so the copy costs nothing that matters).
void check_on_host(const char* op, const Tensor& index, int64_t bound, const std::string& axis) {
  const int64_t position = cpu::first_bad_index(index, bound);
  if (position >= 0) fail_bad_index(op, index, position, bound, axis);
}

#ifdef VIMOE_WITH_CUDA

// Runs launch(bad) for an indexing kernel that visits `work` elements, then reads back the
// device word where the kernel reported the first bad index position (kernels/index.h).
// The 8-byte device-to-host copy synchronises the engine's stream: the host waits for this
// kernel and everything queued before it (a few microseconds once the queue is drained, but
// it stops the host from running ahead of the GPU). That is the price of a vimoe::Error
// naming the bad value instead of a device assert that kills the context.
template <typename Launch>
void launch_checked(const char* op, const Tensor& index, int64_t bound, const std::string& axis,
                    int64_t work, Launch&& launch) {
  if (work == 0) {
    check_on_host(op, index, bound, axis);
    return;
  }
  const Tensor word = Tensor::empty({1}, TensorOptions(DType::I64, index.device()));
  auto* bad = static_cast<unsigned long long*>(word.data_ptr());
  launch(bad);
  unsigned long long position = kernels::kNoBadIndex;
  cuda::copy_bytes(&position, false, bad, true, sizeof position);
  if (position != kernels::kNoBadIndex)
    fail_bad_index(op, index, static_cast<int64_t>(position), bound, axis);
}

kernels::IndexShape index_shape(const Tensor& index) {
  VIMOE_CHECK(index.dim() <= kernels::kMaxDims, "index: at most ", kernels::kMaxDims,
              " dimensions supported, found ", describe(index));
  kernels::IndexShape s;
  s.ndim = static_cast<int>(index.dim());
  for (int d = 0; d < s.ndim; ++d) s.sizes[d] = index.size(d);
  return s;
}

// What CUDA index_add / scatter_add accumulate into, holding x: x's own dtype, except that
// bf16 / f16 accumulate in f32 and are rounded once at the end (see kernels/index.h).
Tensor accumulation_buffer(const Tensor& x) {
  const bool half = x.dtype() == DType::BF16 || x.dtype() == DType::F16;
  Tensor buf = Tensor::empty(x.shape(), TensorOptions(half ? DType::F32 : x.dtype(), x.device()));
  buf.copy_(x);
  return buf;
}

#endif

}  // namespace

// ---- concatenation -------------------------------------------------------------------

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  VIMOE_PROFILE_SCOPE("concat");
  constexpr const char* op = "concat";
  VIMOE_CHECK(!tensors.empty(), op, ": expected at least one tensor");
  for (const Tensor& t : tensors) ops::check_defined(t, op, "tensors");
  const Tensor& first = tensors[0];
  VIMOE_CHECK(first.dim() >= 1, op, ": cannot concatenate 0-dimensional tensors (",
              describe(first), "); use stack");
  const int64_t d = wrap_dim(dim, first.dim(), op);
  DType dt = first.dtype();
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  std::vector<int64_t> starts, sizes;
  std::vector<bool> wants_grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    ops::check_same_device(first, t, op);
    bool same = t.dim() == first.dim();
    for (int64_t e = 0; same && e < t.dim(); ++e) same = e == d || t.size(e) == first.size(e);
    VIMOE_CHECK(same, op, ": tensor ", i, " has shape ", shape_str(t.shape()), " but tensor 0 has ",
                shape_str(first.shape()), "; shapes must match except in dimension ", d);
    dt = promote_types(dt, t.dtype());
    starts.push_back(out_shape[d]);
    sizes.push_back(t.size(d));
    wants_grad.push_back(t.requires_grad());
    out_shape[d] += t.size(d);
  }
  Tensor out = Tensor::empty(out_shape, TensorOptions(dt, first.device()));
  {
    NoGradGuard no_grad;
    std::vector<Tensor> inputs;
    for (const Tensor& t : tensors) inputs.push_back(t.to(dt));
    if (out.device().is_cpu()) {
      cpu::concat(inputs, d, out);
    } else {
      VIMOE_CUDA_PATH(op, out,
        std::vector<kernels::ConcatSource> sources(inputs.size());
        for (size_t i = 0; i < inputs.size(); ++i) {
          sources[i].data = inputs[i].storage()->data();
          sources[i].layout = ops::kernel_layout(inputs[i]);
          sources[i].start = starts[i];
          sources[i].size = sizes[i];
        }
        VIMOE_CUDA_CHECK(kernels::concat(dt, sources.data(), static_cast<int>(sources.size()),
                                         out.data_ptr(), product(out_shape, 0, d), out_shape[d],
                                         product(out_shape, d + 1, out.dim()), cuda::stream()));
      );
    }
  }
  autograd::record(op, out, tensors, [d, starts, sizes, wants_grad](const Tensor& g) {
    std::vector<Tensor> grads(starts.size());
    for (size_t i = 0; i < grads.size(); ++i)
      if (wants_grad[i]) grads[i] = g.narrow(d, starts[i], sizes[i]);
    return grads;
  });
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  constexpr const char* op = "stack";
  VIMOE_CHECK(!tensors.empty(), op, ": expected at least one tensor");
  for (const Tensor& t : tensors) ops::check_defined(t, op, "tensors");
  for (size_t i = 1; i < tensors.size(); ++i)
    VIMOE_CHECK(tensors[i].shape() == tensors[0].shape(), op, ": tensor ", i, " has shape ",
                shape_str(tensors[i].shape()), " but tensor 0 has ",
                shape_str(tensors[0].shape()), "; stack needs equal shapes");
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, op);
  std::vector<Tensor> parts;
  for (const Tensor& t : tensors) parts.push_back(t.unsqueeze(d));
  return concat(parts, d);
}

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim) {
  constexpr const char* op = "split";
  ops::check_defined(x, op, "x");
  VIMOE_CHECK(x.dim() >= 1, op, ": cannot split a 0-dimensional tensor");
  const int64_t d = wrap_dim(dim, x.dim(), op);
  VIMOE_CHECK(size >= 1, op, ": chunk size must be positive, got ", size, " for x ", describe(x));
  const int64_t n = x.size(d);
  if (n == 0) return {x.narrow(d, 0, 0)};
  std::vector<Tensor> chunks;
  for (int64_t start = 0; start < n; start += size)
    chunks.push_back(x.narrow(d, start, std::min(size, n - start)));
  return chunks;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  constexpr const char* op = "split";
  ops::check_defined(x, op, "x");
  VIMOE_CHECK(x.dim() >= 1, op, ": cannot split a 0-dimensional tensor");
  const int64_t d = wrap_dim(dim, x.dim(), op);
  int64_t total = 0;
  for (int64_t s : sizes) {
    VIMOE_CHECK(s >= 0, op, ": negative size in ", shape_str(sizes));
    total += s;
  }
  VIMOE_CHECK(total == x.size(d), op, ": sizes ", shape_str(sizes), " sum to ", total,
              " but dimension ", d, " of x ", shape_str(x.shape()), " has ", x.size(d));
  std::vector<Tensor> chunks;
  int64_t start = 0;
  for (int64_t s : sizes) {
    chunks.push_back(x.narrow(d, start, s));
    start += s;
  }
  return chunks;
}

// ---- 1-D index along one axis --------------------------------------------------------

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  VIMOE_PROFILE_SCOPE("index_select");
  constexpr const char* op = "index_select";
  ops::check_defined(x, op, "x");
  check_index_dtype(index, op);
  ops::check_same_device(x, index, op);
  VIMOE_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, found ", describe(x));
  VIMOE_CHECK(index.dim() == 1, op, ": index must be 1-D, found ", describe(index));
  const int64_t d = wrap_dim(dim, x.dim(), op);
  const int64_t bound = x.size(d);
  Shape out_shape = x.shape();
  out_shape[d] = index.numel();
  Tensor out = Tensor::empty(out_shape, TensorOptions(x.dtype(), x.device()));
  {
    NoGradGuard no_grad;
    const Tensor idx = index.contiguous();
    if (x.device().is_cpu()) {
      check_on_host(op, idx, bound, axis_of(d, x));
      cpu::index_select(x, d, idx, out);
    } else {
      VIMOE_CUDA_PATH(op, x,
        launch_checked(op, idx, bound, axis_of(d, x), out.numel(), [&](unsigned long long* bad) {
          VIMOE_CUDA_CHECK(kernels::index_select(
              x.dtype(), x.storage()->data(), ops::kernel_layout(x), idx.dtype(), idx.data_ptr(),
              idx.numel(), out.data_ptr(), product(x.shape(), 0, d), bound,
              product(x.shape(), d + 1, x.dim()), bad, cuda::stream()));
        });
      );
    }
  }
  autograd::record(op, out, {x}, [d, index, shape = x.shape()](const Tensor& g) {
    const Tensor zeros = Tensor::zeros(shape, TensorOptions(g.dtype(), g.device()));
    return std::vector<Tensor>{index_add(zeros, d, index, g)};
  });
  return out;
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  VIMOE_PROFILE_SCOPE("index_add");
  constexpr const char* op = "index_add";
  ops::check_defined(x, op, "x");
  ops::check_defined(src, op, "src");
  check_index_dtype(index, op);
  ops::check_same_device(x, src, op);
  ops::check_same_device(x, index, op);
  VIMOE_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, found ", describe(x));
  VIMOE_CHECK(index.dim() == 1, op, ": index must be 1-D, found ", describe(index));
  const int64_t d = wrap_dim(dim, x.dim(), op);
  Shape want = x.shape();
  want[d] = index.numel();
  VIMOE_CHECK(src.shape() == want, op, ": src has shape ", shape_str(src.shape()), ", expected ",
              shape_str(want), " (x ", shape_str(x.shape()), " with dimension ", d,
              " of length index.numel() = ", index.numel(), ")");
  const DType dt = accumulate_dtype(x, src, op);
  const int64_t bound = x.size(d);
  Tensor out;
  {
    NoGradGuard no_grad;
    const Tensor xc = x.to(dt), sc = src.to(dt), idx = index.contiguous();
    if (x.device().is_cpu()) {
      check_on_host(op, idx, bound, axis_of(d, x));
      out = Tensor::empty(x.shape(), TensorOptions(dt, x.device()));
      cpu::index_add(xc, d, idx, sc, out);
    } else {
      VIMOE_CUDA_PATH(op, x,
        const Tensor buf = accumulation_buffer(xc);
        launch_checked(op, idx, bound, axis_of(d, x), sc.numel(), [&](unsigned long long* bad) {
          VIMOE_CUDA_CHECK(kernels::index_add(
              buf.dtype(), buf.data_ptr(), dt, sc.storage()->data(), ops::kernel_layout(sc),
              idx.dtype(), idx.data_ptr(), idx.numel(), product(x.shape(), 0, d), bound,
              product(x.shape(), d + 1, x.dim()), bad, cuda::stream()));
        });
        out = buf.to(dt);
      );
    }
  }
  autograd::record(op, out, {x, src},
                   [d, index, xg = x.requires_grad(), sg = src.requires_grad()](const Tensor& g) {
                     return std::vector<Tensor>{xg ? g : Tensor(),
                                                sg ? index_select(g, d, index) : Tensor()};
                   });
  return out;
}

// ---- element-wise index --------------------------------------------------------------

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  VIMOE_PROFILE_SCOPE("gather");
  constexpr const char* op = "gather";
  ops::check_defined(x, op, "x");
  check_index_dtype(index, op);
  ops::check_same_device(x, index, op);
  VIMOE_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, found ", describe(x));
  VIMOE_CHECK(index.dim() == x.dim(), op, ": index ", shape_str(index.shape()),
              " must have the rank of x ", shape_str(x.shape()));
  const int64_t d = wrap_dim(dim, x.dim(), op);
  for (int64_t e = 0; e < x.dim(); ++e)
    VIMOE_CHECK(e == d || index.size(e) <= x.size(e), op, ": index ", shape_str(index.shape()),
                " is larger than x ", shape_str(x.shape()), " in dimension ", e,
                " (only dimension ", d, " may be)");
  const int64_t bound = x.size(d);
  Tensor out = Tensor::empty(index.shape(), TensorOptions(x.dtype(), x.device()));
  {
    NoGradGuard no_grad;
    const Tensor idx = index.contiguous();
    if (x.device().is_cpu()) {
      check_on_host(op, idx, bound, axis_of(d, x));
      cpu::gather(x, d, idx, out);
    } else {
      VIMOE_CUDA_PATH(op, x,
        const kernels::StridedLayout x_layout = strided_layout(x);
        launch_checked(op, idx, bound, axis_of(d, x), out.numel(), [&](unsigned long long* bad) {
          VIMOE_CUDA_CHECK(kernels::gather(x.dtype(), x.storage()->data(), x_layout, idx.dtype(),
                                           idx.data_ptr(), index_shape(idx), static_cast<int>(d),
                                           out.data_ptr(), bad, cuda::stream()));
        });
      );
    }
  }
  autograd::record(op, out, {x}, [d, index, shape = x.shape()](const Tensor& g) {
    const Tensor zeros = Tensor::zeros(shape, TensorOptions(g.dtype(), g.device()));
    return std::vector<Tensor>{scatter_add(zeros, d, index, g)};
  });
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  VIMOE_PROFILE_SCOPE("scatter_add");
  constexpr const char* op = "scatter_add";
  ops::check_defined(x, op, "x");
  ops::check_defined(src, op, "src");
  check_index_dtype(index, op);
  ops::check_same_device(x, src, op);
  ops::check_same_device(x, index, op);
  VIMOE_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, found ", describe(x));
  VIMOE_CHECK(index.dim() == x.dim() && src.dim() == x.dim(), op, ": index ",
              shape_str(index.shape()), " and src ", shape_str(src.shape()),
              " must have the rank of x ", shape_str(x.shape()));
  const int64_t d = wrap_dim(dim, x.dim(), op);
  for (int64_t e = 0; e < x.dim(); ++e) {
    VIMOE_CHECK(index.size(e) <= src.size(e), op, ": index ", shape_str(index.shape()),
                " is larger than src ", shape_str(src.shape()), " in dimension ", e);
    VIMOE_CHECK(e == d || index.size(e) <= x.size(e), op, ": index ", shape_str(index.shape()),
                " is larger than x ", shape_str(x.shape()), " in dimension ", e,
                " (only dimension ", d, " may be)");
  }
  const DType dt = accumulate_dtype(x, src, op);
  const int64_t bound = x.size(d);
  Tensor out;
  {
    NoGradGuard no_grad;
    const Tensor xc = x.to(dt), sc = src.to(dt), idx = index.contiguous();
    if (x.device().is_cpu()) {
      check_on_host(op, idx, bound, axis_of(d, x));
      out = Tensor::empty(x.shape(), TensorOptions(dt, x.device()));
      cpu::scatter_add(xc, d, idx, sc, out);
    } else {
      VIMOE_CUDA_PATH(op, x,
        const Tensor buf = accumulation_buffer(xc);
        const kernels::StridedLayout buf_layout = strided_layout(buf), src_layout = strided_layout(sc);
        launch_checked(op, idx, bound, axis_of(d, x), idx.numel(), [&](unsigned long long* bad) {
          VIMOE_CUDA_CHECK(kernels::scatter_add(buf.dtype(), buf.storage()->data(), buf_layout, dt,
                                                sc.storage()->data(), src_layout, idx.dtype(),
                                                idx.data_ptr(), index_shape(idx),
                                                static_cast<int>(d), bad, cuda::stream()));
        });
        out = buf.to(dt);
      );
    }
  }
  autograd::record(op, out, {x, src},
                   [d, index, src_shape = src.shape(), xg = x.requires_grad(),
                    sg = src.requires_grad()](const Tensor& g) {
                     Tensor gs;
                     if (sg) {
                       gs = gather(g, d, index);
                       if (gs.shape() != src_shape) {
                         // src was larger than index: the unused part gets zero gradient.
                         Tensor full = Tensor::zeros(src_shape, TensorOptions(g.dtype(), g.device()));
                         Tensor region = full;
                         for (int64_t e = 0; e < region.dim(); ++e)
                           region = region.narrow(e, 0, index.size(e));
                         region.copy_(gs);
                         gs = full;
                       }
                     }
                     return std::vector<Tensor>{xg ? g : Tensor(), gs};
                   });
  return out;
}

// ---- one_hot, topk -------------------------------------------------------------------

Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype) {
  VIMOE_PROFILE_SCOPE("one_hot");
  constexpr const char* op = "one_hot";
  check_index_dtype(index, op);
  VIMOE_CHECK(num_classes >= 1, op, ": num_classes must be positive, got ", num_classes);
  Shape shape = index.shape();
  shape.push_back(num_classes);
  Tensor out = Tensor::empty(shape, TensorOptions(dtype, index.device()));
  const std::string axis = detail::concat("num_classes = ", num_classes);
  NoGradGuard no_grad;
  const Tensor idx = index.contiguous();
  if (index.device().is_cpu()) {
    check_on_host(op, idx, num_classes, axis);
    cpu::one_hot(idx, num_classes, out);
  } else {
    VIMOE_CUDA_PATH(op, idx,
      launch_checked(op, idx, num_classes, axis, out.numel(), [&](unsigned long long* bad) {
        VIMOE_CUDA_CHECK(kernels::one_hot(idx.dtype(), idx.data_ptr(), idx.numel(), num_classes,
                                          dtype, out.data_ptr(), bad, cuda::stream()));
      });
    );
  }
  return out;
}

TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  VIMOE_PROFILE_SCOPE("topk");
  constexpr const char* op = "topk";
  ops::check_defined(x, op, "x");
  VIMOE_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, found ", describe(x));
  const int64_t d = wrap_dim(dim, x.dim(), op);
  const int64_t n = x.size(d);
  VIMOE_CHECK(k >= 0 && k <= n, op, ": k = ", k, " is out of range for dimension ", d, " of x ",
              describe(x), " (expected 0 <= k <= ", n, ")");
  // Rows are the positions of every other axis; move `dim` last so each row is contiguous.
  std::vector<int64_t> perm, inverse(x.dim());
  for (int64_t e = 0; e < x.dim(); ++e)
    if (e != d) perm.push_back(e);
  perm.push_back(d);
  for (int64_t e = 0; e < x.dim(); ++e) inverse[perm[e]] = e;
  Shape row_shape;  // x's shape in `perm` order, with k entries along the last axis
  for (int64_t e : perm) row_shape.push_back(e == d ? k : x.size(e));
  const int64_t rows = product(row_shape, 0, x.dim() - 1);
  TopK result;
  {
    NoGradGuard no_grad;
    const Tensor in = x.permute(perm).contiguous();
    Tensor values = Tensor::empty({rows, k}, TensorOptions(x.dtype(), x.device()));
    Tensor indices = Tensor::empty({rows, k}, TensorOptions(DType::I64, x.device()));
    if (rows > 0 && k > 0) {
      if (x.device().is_cpu()) {
        cpu::topk(in, rows, n, k, largest, values, indices);
      } else {
        VIMOE_CUDA_PATH(op, x,
          VIMOE_CUDA_CHECK(kernels::topk(x.dtype(), in.data_ptr(), rows, n, k, largest,
                                         values.data_ptr(), indices.data<int64_t>(),
                                         cuda::stream()));
        );
      }
    }
    result.values = values.view(row_shape).permute(inverse).contiguous();
    result.indices = indices.view(row_shape).permute(inverse).contiguous();
  }
  autograd::record(op, result.values, {x},
                   [d, indices = result.indices, shape = x.shape()](const Tensor& g) {
                     const Tensor zeros =
                         Tensor::zeros(shape, TensorOptions(g.dtype(), g.device()));
                     return std::vector<Tensor>{scatter_add(zeros, d, indices, g)};
                   });
  return result;
}

}  // namespace vimoe
