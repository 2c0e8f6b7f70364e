#include "engine/tensor.h"

#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "engine/autograd.h"
#include "engine/cpu/copy.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/reduce.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/copy.h"
#endif

namespace vimoe {

namespace {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->dtype = base.dtype();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Tensor(std::move(impl));
}

void check_same_cuda_device(Device a, Device b, const char* op) {
  VIMOE_CHECK(!(a.is_cuda() && b.is_cuda() && a.index != b.index), op,
              ": tensors on two GPUs (", a.str(), ", ", b.str(), "); move one first");
}

// Elementwise copy between two tensors of the same shape on the same device.
void copy_same_device(const Tensor& src, const Tensor& dst) {
  if (dst.numel() == 0) return;
  if (dst.device().is_cpu()) {
    cpu::copy(src, dst);
    return;
  }
  VIMOE_CUDA_PATH("copy_", dst,
    VIMOE_CUDA_CHECK(kernels::copy_strided(src.storage()->data(), src.dtype(), strided_layout(src),
                                           dst.storage()->data(), dst.dtype(), strided_layout(dst),
                                           dst.numel(), cuda::stream()));
  );
}

// Fills view strides for `shape` over a tensor laid out as (old_shape, old_strides), merging
// and splitting dimensions only where memory is contiguous between them. False if impossible.
bool view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& shape,
                  Shape& strides) {
  strides.assign(shape.size(), 0);
  if (shape_numel(old_shape) == 0 || old_shape.empty()) {
    strides = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    // A chunk ends where the next-outer dimension is not laid out right after this one.
    const bool chunk_ends =
        d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
      strides[view_d] = view_numel * chunk_stride;
      view_numel *= shape[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return false;
    if (d > 0) {
      chunk_stride = old_strides[d - 1];
      tensor_numel = view_numel = 1;
    }
  }
  return view_d == -1;
}

Shape infer_shape(Shape shape, int64_t numel, const char* op, const Shape& from) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      VIMOE_CHECK(infer < 0, op, ": only one dimension may be -1, got ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      VIMOE_CHECK(shape[i] >= 0, op, ": invalid size ", shape[i], " in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    VIMOE_CHECK(known != 0 && numel % known == 0, op, ": cannot reshape ", shape_str(from),
                " (", numel, " elements) into ", shape_str(shape));
    shape[infer] = numel / known;
  }
  VIMOE_CHECK(shape_numel(shape) == numel, op, ": cannot reshape ", shape_str(from), " (", numel,
              " elements) into ", shape_str(shape), " (", shape_numel(shape), " elements)");
  return shape;
}

}  // namespace

// ---- factories ----------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, TensorOptions opts) {
  for (int64_t d : shape)
    VIMOE_CHECK(d >= 0, "Tensor::empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(shape_numel(shape) * dtype_size(opts.dtype), opts.device);
  impl->dtype = opts.dtype;
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  Tensor t(std::move(impl));
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, TensorOptions opts) {
  const bool rg = opts.requires_grad;
  opts.requires_grad = false;
  Tensor t = empty(shape, opts);
  t.fill_(value);
  if (rg) t.set_requires_grad(true);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, TensorOptions opts) { return full(shape, 0.0, opts); }
Tensor Tensor::ones(const Shape& shape, TensorOptions opts) { return full(shape, 1.0, opts); }
Tensor Tensor::scalar(double value, TensorOptions opts) { return full({}, value, opts); }

Tensor Tensor::arange(double start, double end, double step, TensorOptions opts) {
  VIMOE_CHECK(step != 0, "Tensor::arange: step must be non-zero");
  const double span = (end - start) / step;
  const int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  Tensor host = empty({n}, TensorOptions(DType::F64, Device::cpu()));
  double* p = host.data<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = start + static_cast<double>(i) * step;
  Tensor t = host.to(opts.dtype).to(opts.device);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, DType dtype, const Shape& shape,
                            const Shape& strides, int64_t offset) {
  VIMOE_CHECK(shape.size() == strides.size(), "Tensor::from_storage: shape ", shape_str(shape),
              " and strides ", shape_str(strides), " differ in rank");
  int64_t last = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    VIMOE_CHECK(shape[i] >= 0 && strides[i] >= 0, "Tensor::from_storage: invalid shape ",
                shape_str(shape), " / strides ", shape_str(strides));
    if (shape[i] > 0) last += (shape[i] - 1) * strides[i];
  }
  const size_t needed = shape_numel(shape) == 0 ? 0 : (last + 1) * dtype_size(dtype);
  VIMOE_CHECK(offset >= 0 && needed <= storage->nbytes(), "Tensor::from_storage: a ",
              dtype_name(dtype), " view ", shape_str(shape), " at offset ", offset, " needs ",
              needed, " bytes, the storage has ", storage->nbytes());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->dtype = dtype;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  return Tensor(std::move(impl));
}

// ---- metadata -----------------------------------------------------------------------

TensorImpl& Tensor::impl() const {
  VIMOE_CHECK(impl_ != nullptr, "use of an undefined Tensor (default-constructed or moved from)");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "Tensor::size")]; }

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] != 1 && strides()[d] != expect) return false;
    expect *= shape()[d];
  }
  return true;
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(storage()->data()) + offset() * static_cast<int64_t>(dtype_size(dtype()));
}

kernels::StridedLayout strided_layout(const Tensor& t) {
  VIMOE_CHECK(t.dim() <= kernels::kMaxDims, "kernel layout: at most ", kernels::kMaxDims,
              " dimensions supported, found ", t.dim(), " in ", shape_str(t.shape()));
  kernels::StridedLayout l;
  l.ndim = static_cast<int>(t.dim());
  for (int i = 0; i < l.ndim; ++i) {
    l.sizes[i] = t.shape()[i];
    l.strides[i] = t.strides()[i];
  }
  l.offset = t.offset();
  return l;
}

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  return shape_str(t.shape()) + " " + dtype_name(t.dtype()) + " " + t.device().str();
}

// ---- autograd -----------------------------------------------------------------------

bool Tensor::requires_grad() const { return impl().requires_grad || impl().grad_fn != nullptr; }

Tensor& Tensor::set_requires_grad(bool on) {
  VIMOE_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can change requires_grad; "
              "use detach() to make a new leaf");
  VIMOE_CHECK(!on || is_floating(dtype()), "set_requires_grad: gradients need a floating dtype, "
              "found ", dtype_name(dtype()));
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  if (!g.defined()) {
    impl().grad.reset();
    return;
  }
  VIMOE_CHECK(g.shape() == shape() && g.dtype() == dtype() && g.device() == device(),
              "set_grad: expected a gradient ", describe(*this), ", found ", describe(g));
  impl().grad = g.impl_shared();
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  autograd::backward(*this, grad, retain_graph);
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

// ---- views --------------------------------------------------------------------------

Tensor Tensor::view(const Shape& shape_in) const {
  const Shape shape = infer_shape(shape_in, numel(), "view", this->shape());
  Shape st;
  VIMOE_CHECK(view_strides(this->shape(), strides(), shape, st), "view: a tensor of shape ",
              shape_str(this->shape()), " and strides ", shape_str(strides()),
              " cannot be viewed as ", shape_str(shape), " without a copy; use reshape()");
  Tensor out = make_view(*this, shape, st, offset());
  const Shape in_shape = this->shape();
  autograd::record("view", out, {*this},
                   [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
  return out;
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  const Shape shape = infer_shape(shape_in, numel(), "reshape", this->shape());
  Shape st;
  if (view_strides(this->shape(), strides(), shape, st)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  VIMOE_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: ", dims.size(),
              " dimensions given for a tensor of shape ", shape_str(shape()));
  Shape sh(dims.size()), st(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], dim(), "permute");
    VIMOE_CHECK(inverse[d] < 0, "permute: dimension ", d, " repeated in ", shape_str(dims));
    inverse[d] = static_cast<int64_t>(i);
    sh[i] = shape()[d];
    st[i] = strides()[d];
  }
  Tensor out = make_view(*this, sh, st, offset());
  autograd::record("permute", out, {*this}, [inverse](const Tensor& g) {
    return std::vector<Tensor>{g.permute(inverse)};
  });
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  d0 = wrap_dim(d0, dim(), "transpose");
  d1 = wrap_dim(d1, dim(), "transpose");
  std::vector<int64_t> dims(dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[d0], dims[d1]);
  return permute(dims);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  VIMOE_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = shape()[d];
  // Python semantics: negative bounds count from the end, then clamp to [0, n].
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sh = shape(), st = strides();
  sh[d] = (end - start + step - 1) / step;
  st[d] *= step;
  Tensor out = make_view(*this, sh, st, offset() + start * strides()[d]);
  const Shape in_shape = shape();
  const TensorOptions opts(dtype(), device());
  autograd::record("slice", out, {*this}, [=](const Tensor& g) {
    Tensor gi = Tensor::zeros(in_shape, opts);
    gi.slice(d, start, end, step).copy_(g);
    return std::vector<Tensor>{gi};
  });
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  VIMOE_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: range [",
              start, ", ", start + length, ") out of bounds for dimension ", d, " of shape ",
              shape_str(shape()));
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  const int64_t n = shape()[d];
  VIMOE_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dimension ",
              d, " of shape ", shape_str(shape()));
  if (index < 0) index += n;
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& shape_in) const {
  VIMOE_CHECK(shape_in.size() >= shape().size(), "expand: cannot expand ", shape_str(shape()),
              " to fewer dimensions ", shape_str(shape_in));
  const size_t lead = shape_in.size() - shape().size();
  Shape sh(shape_in.size()), st(shape_in.size(), 0);
  for (size_t i = 0; i < shape_in.size(); ++i) {
    if (i < lead) {
      VIMOE_CHECK(shape_in[i] >= 0, "expand: new leading size ", shape_in[i], " in ",
                  shape_str(shape_in));
      sh[i] = shape_in[i];
      continue;
    }
    const int64_t cur = shape()[i - lead];
    const int64_t want = shape_in[i] == -1 ? cur : shape_in[i];
    VIMOE_CHECK(want == cur || cur == 1, "expand: cannot expand ", shape_str(shape()), " to ",
                shape_str(shape_in), " (dimension ", i, ": ", cur, " -> ", want, ")");
    sh[i] = want;
    st[i] = want == cur ? strides()[i - lead] : 0;
  }
  Tensor out = make_view(*this, sh, st, offset());
  const Shape in_shape = shape();
  autograd::record("expand", out, {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, in_shape)};
  });
  return out;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape sh = shape();
  sh.insert(sh.begin() + d, 1);
  return view(sh);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (shape()[d] != 1) return *this;
  Shape sh = shape();
  sh.erase(sh.begin() + d);
  return view(sh);
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  VIMOE_CHECK(start <= end, "flatten: start_dim ", start, " after end_dim ", end);
  Shape sh(shape().begin(), shape().begin() + start);
  int64_t merged = 1;
  for (int64_t i = start; i <= end; ++i) merged *= shape()[i];
  sh.push_back(merged);
  sh.insert(sh.end(), shape().begin() + end + 1, shape().end());
  return reshape(sh);
}

// ---- copies -------------------------------------------------------------------------

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), TensorOptions(dtype(), device()));
  copy_same_device(*this, out);
  autograd::record("clone", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = empty(shape(), TensorOptions(target, device()));
  copy_same_device(*this, out);
  if (is_floating(target)) {
    const DType src = dtype();
    autograd::record("to_dtype", out, {*this},
                     [src](const Tensor& g) { return std::vector<Tensor>{g.to(src)}; });
  }
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  check_same_cuda_device(device(), target, "Tensor::to");
  const Tensor src = contiguous();
  Tensor out = empty(shape(), TensorOptions(dtype(), target));
  cuda::copy_bytes(out.data_ptr(), target.is_cuda(), src.data_ptr(), src.device().is_cuda(),
                   nbytes());
  const Device from = device();
  autograd::record("to_device", out, {*this},
                   [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
  return out;
}

// ---- in-place -----------------------------------------------------------------------

Tensor& Tensor::copy_(const Tensor& src) {
  VIMOE_CHECK(!(grad_enabled() && requires_grad()), "copy_: in-place write into a tensor that "
              "requires grad; wrap it in NoGradGuard (optimiser and initialiser updates)");
  check_same_cuda_device(device(), src.device(), "copy_");
  Tensor s = src.detach();
  if (s.shape() != shape()) {
    VIMOE_CHECK(broadcast_shapes(s.shape(), shape(), "copy_") == shape(), "copy_: source ",
                shape_str(s.shape()), " does not broadcast to destination ", shape_str(shape()));
    s = s.expand(shape());
  }
  if (s.device() != device()) s = s.to(dtype()).contiguous().to(device());
  copy_same_device(s, *this);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  VIMOE_CHECK(!(grad_enabled() && requires_grad()), "fill_: in-place write into a tensor that "
              "requires grad; wrap it in NoGradGuard");
  if (numel() == 0) return *this;
  if (device().is_cpu()) {
    cpu::fill(*this, value);
  } else {
    VIMOE_CUDA_PATH("fill_", *this,
      VIMOE_CUDA_CHECK(kernels::fill(storage()->data(), dtype(), strided_layout(*this), numel(),
                                     value, cuda::stream()));
    );
  }
  return *this;
}

// ---- printing -----------------------------------------------------------------------

namespace {

void print_values(std::ostringstream& os, const std::vector<double>& v, const Shape& shape,
                  size_t dim, int64_t base, bool floating, bool summarise, int indent) {
  const int64_t n = shape[dim];
  int64_t inner = 1;
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= shape[d];
  constexpr int64_t kEdge = 3;
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarise && n > 2 * kEdge && i == kEdge) {
      os << (dim + 1 == shape.size() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - kEdge;
    }
    if (dim + 1 == shape.size()) {
      char buf[32];
      const double x = v[base + i];
      if (floating) std::snprintf(buf, sizeof buf, "%.4g", x);
      else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(x));
      os << buf;
    } else {
      print_values(os, v, shape, dim + 1, base + i * inner, floating, summarise, indent + 1);
    }
    if (i + 1 < n) os << (dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(" << shape_str(shape()) << ", " << dtype_name(dtype()) << ", " << device().str();
  if (requires_grad()) os << ", requires_grad";
  if (grad_fn()) os << ", grad_fn=" << grad_fn()->name();
  os << ")\n";
  const std::vector<double> v = to_vector<double>();  // (to_vector detaches)
  if (dim() == 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, is_floating(dtype()) ? "%.4g" : "%.0f", v[0]);
    os << buf;
  } else {
    print_values(os, v, shape(), 0, 0, is_floating(dtype()), numel() > 1000, 0);
  }
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace vimoe
