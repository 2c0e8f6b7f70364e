// Tensor: a cheap handle to shared storage plus dtype, device, shape, strides and offset.
// Views (reshape, permute, transpose, narrow, expand) share storage; contiguous() copies
// only when the layout requires it. A default-constructed Tensor is "undefined".
#pragma once
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/shape.h"
#include "engine/storage.h"
#include "kernels/strided.h"

namespace vimoe {

class Node;

struct TensorOptions {
  DType dtype = DType::F32;
  Device device = Device::cpu();
  bool requires_grad = false;

  TensorOptions() = default;
  TensorOptions(DType d) : dtype(d) {}  // NOLINT: allow `zeros(shape, DType::F64)`
  TensorOptions(Device d) : device(d) {}  // NOLINT
  TensorOptions(DType t, Device d, bool rg = false) : dtype(t), device(d), requires_grad(rg) {}
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  DType dtype = DType::F32;
  Shape shape, strides;
  int64_t offset = 0;  // in elements
  bool requires_grad = false;          // set on leaves by the user
  std::shared_ptr<TensorImpl> grad;    // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;       // the op that produced a non-leaf
  int output_nr = 0;                   // which of grad_fn's outputs this is
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories -------------------------------------------------------------------
  static Tensor empty(const Shape& shape, TensorOptions opts = {});
  static Tensor zeros(const Shape& shape, TensorOptions opts = {});
  static Tensor ones(const Shape& shape, TensorOptions opts = {});
  static Tensor full(const Shape& shape, double value, TensorOptions opts = {});
  static Tensor scalar(double value, TensorOptions opts = {});  // 0-dimensional
  // [start, end) in steps of `step`, like numpy.arange.
  static Tensor arange(double start, double end, double step = 1, TensorOptions opts = {});
  // Copies host values; the dtype is that of T unless opts names another.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = {});
  // A view of existing storage (no copy).
  static Tensor from_storage(std::shared_ptr<Storage> storage, DType dtype, const Shape& shape,
                             const Shape& strides, int64_t offset);

  // ---- metadata --------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  bool is_contiguous() const;
  bool is_cuda() const { return device().is_cuda(); }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  // Address of the first element (storage base + offset).
  void* data_ptr() const;
  // Typed pointer; throws if T does not match the dtype.
  template <typename T> T* data() const;
  // The single value of a one-element tensor, converted to T (copies from the GPU).
  template <typename T> T item() const;
  // All values in row-major order, converted to T (copies from the GPU).
  template <typename T> std::vector<T> to_vector() const;

  // ---- autograd --------------------------------------------------------------------
  bool requires_grad() const;
  // Only leaves (tensors not produced by a recorded op) may change it.
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  Tensor grad() const;  // undefined until backward reaches this leaf
  void set_grad(const Tensor& g);
  void zero_grad() { impl().grad.reset(); }
  // Back-propagates from this tensor: a scalar needs no `grad`; otherwise pass d(loss)/d(this).
  // The graph's saved tensors are freed afterwards unless retain_graph is set.
  void backward(const Tensor& grad = {}, bool retain_graph = false) const;
  // Same storage, no history, requires_grad false.
  Tensor detach() const;

  // ---- views (share storage; recorded for autograd) --------------------------------
  Tensor reshape(const Shape& shape) const;  // one entry may be -1; copies if it must
  Tensor view(const Shape& shape) const;     // like reshape but never copies
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }  // 2-D transpose
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes `dim`
  Tensor expand(const Shape& shape) const;         // size-1 dims to any size, stride 0
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // ---- copies (recorded for autograd) ----------------------------------------------
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor cuda(int index = 0) const { return to(Device::cuda(index)); }

  // ---- in-place (not recorded: for initialisation and optimisers) -------------------
  // Refused on a tensor that requires grad while grad mode is on.
  Tensor& copy_(const Tensor& src);  // broadcasts src to this shape, converts dtype/device
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  std::string str() const;  // header line + values (summarised beyond 1000 elements)
  TensorImpl* impl_ptr() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_shared() const { return impl_; }

 private:
  TensorImpl& impl() const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// The kernel-side description of a tensor's layout; throws beyond kernels::kMaxDims dims.
kernels::StridedLayout strided_layout(const Tensor& t);
// "name [2, 3] f32 cuda:0" for error messages.
std::string describe(const Tensor& t);

// ---- template definitions ----------------------------------------------------------

template <typename T>
T* Tensor::data() const {
  VIMOE_CHECK(dtype() == dtype_of<T>::value, "Tensor::data: requested ",
              dtype_name(dtype_of<T>::value), " from a ", dtype_name(dtype()), " tensor");
  return static_cast<T*>(data_ptr());
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  VIMOE_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "Tensor::from_vector: ",
              values.size(), " values given for shape ", shape_str(shape), " (",
              shape_numel(shape), " elements)");
  Tensor t = empty(shape, TensorOptions(dtype_of<T>::value, Device::cpu()));
  std::copy(values.begin(), values.end(), t.data<T>());
  return device.is_cpu() ? t : t.to(device);
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = detach().to(Device::cpu()).to(dtype_of<T>::value).contiguous();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}

template <typename T>
T Tensor::item() const {
  VIMOE_CHECK(numel() == 1, "Tensor::item: expected one element, found shape ", shape_str(shape()));
  return to_vector<T>()[0];
}

}  // namespace vimoe
