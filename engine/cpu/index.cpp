#include "engine/cpu/index.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>

#include "engine/cpu/copy.h"

namespace vimoe::cpu {

namespace {

// Visits every position of `shape` in row-major order as f(linear position, coordinates).
template <typename F>
void for_each_position(const Shape& shape, F&& f) {
  const int64_t total = shape_numel(shape);
  std::vector<int64_t> c(shape.size(), 0);
  for (int64_t i = 0; i < total; ++i) {
    f(i, static_cast<const std::vector<int64_t>&>(c));
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++c[d] < shape[d]) break;
      c[d] = 0;
    }
  }
}

// Element offset (from the storage base) of coordinates `c` in t, with the coordinate along
// `dim` replaced by `at` (dim = -1: no replacement).
int64_t offset_at(const Tensor& t, const std::vector<int64_t>& c, int64_t dim = -1,
                  int64_t at = 0) {
  int64_t off = t.offset();
  for (size_t d = 0; d < c.size(); ++d)
    off += (static_cast<int64_t>(d) == dim ? at : c[d]) * t.strides()[d];
  return off;
}

// Typed storage base; offsets from offset_at() already include the tensor's own offset.
template <typename T> T* base(const Tensor& t) { return static_cast<T*>(t.storage()->data()); }

// Sums for index_add / scatter_add: double for floating types, i64 for integers.
template <typename T> using sum_t = std::conditional_t<std::is_integral_v<T>, int64_t, double>;

// The shared body of index_add and scatter_add: out = x + the contributions that
// `visit(add)` hands to add(coordinates in x with the indexed axis already replaced, value).
template <typename T, typename Visit>
void accumulate_into(const Tensor& x, const Tensor& out, int64_t dim, Visit&& visit) {
  using A = sum_t<T>;
  std::vector<A> acc(out.numel());
  const T* px = base<T>(x);
  T* po = base<T>(out);
  // out is contiguous with x's shape, so its offsets (less its own) index acc.
  for_each_position(x.shape(), [&](int64_t i, const std::vector<int64_t>& c) {
    acc[i] = convert<A>(px[offset_at(x, c)]);
  });
  visit([&](const std::vector<int64_t>& c, int64_t at, T value) {
    acc[offset_at(out, c, dim, at) - out.offset()] += convert<A>(value);
  });
  for_each_position(out.shape(), [&](int64_t i, const std::vector<int64_t>& c) {
    po[offset_at(out, c)] = convert<T>(acc[i]);
  });
}

// The topk order; must match kernels/index.cu ranks_before exactly.
template <typename K>
bool ranks_before(K a, int64_t ia, K b, int64_t ib, bool largest) {
  bool na = false, nb = false;
  if constexpr (std::is_floating_point_v<K>) {
    na = std::isnan(a);
    nb = std::isnan(b);
  }
  if (na || nb) {
    if (na && nb) return ia < ib;
    return largest ? na : nb;  // NaN is above every number
  }
  if (a == b) return ia < ib;
  return largest ? a > b : a < b;
}

}  // namespace

int64_t first_bad_index(const Tensor& index, int64_t bound) {
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  for (size_t i = 0; i < ix.size(); ++i)
    if (ix[i] < 0 || ix[i] >= bound) return static_cast<int64_t>(i);
  return -1;
}

void concat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out) {
  int64_t start = 0;  // where the current input begins along dim
  for (const Tensor& in : inputs) {
    copy(in, out.narrow(dim, start, in.size(dim)));
    start += in.size(dim);
  }
}

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  VIMOE_DISPATCH(x.dtype(), "index_select", {
    const scalar_t* px = base<scalar_t>(x);
    scalar_t* po = base<scalar_t>(out);
    for_each_position(out.shape(), [&](int64_t, const std::vector<int64_t>& c) {
      po[offset_at(out, c)] = px[offset_at(x, c, dim, ix[c[dim]])];
    });
  });
}

void index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src,
               const Tensor& out) {
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  VIMOE_DISPATCH(x.dtype(), "index_add", {
    const scalar_t* ps = base<scalar_t>(src);
    accumulate_into<scalar_t>(x, out, dim, [&](auto&& add) {
      for_each_position(src.shape(), [&](int64_t, const std::vector<int64_t>& c) {
        add(c, ix[c[dim]], ps[offset_at(src, c)]);
      });
    });
  });
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  VIMOE_DISPATCH(x.dtype(), "gather", {
    const scalar_t* px = base<scalar_t>(x);
    scalar_t* po = base<scalar_t>(out);
    for_each_position(index.shape(), [&](int64_t i, const std::vector<int64_t>& c) {
      po[offset_at(out, c)] = px[offset_at(x, c, dim, ix[i])];
    });
  });
}

void scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src,
                 const Tensor& out) {
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  VIMOE_DISPATCH(x.dtype(), "scatter_add", {
    const scalar_t* ps = base<scalar_t>(src);
    accumulate_into<scalar_t>(x, out, dim, [&](auto&& add) {
      // Positions of index, which src covers (it may be larger).
      for_each_position(index.shape(), [&](int64_t i, const std::vector<int64_t>& c) {
        add(c, ix[i], ps[offset_at(src, c)]);
      });
    });
  });
}

void one_hot(const Tensor& index, int64_t num_classes, const Tensor& out) {
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  VIMOE_DISPATCH(out.dtype(), "one_hot", {
    scalar_t* po = out.data<scalar_t>();
    const scalar_t zero = from_double<scalar_t>(0.0), one = from_double<scalar_t>(1.0);
    for (size_t r = 0; r < ix.size(); ++r)
      for (int64_t c = 0; c < num_classes; ++c)
        po[static_cast<int64_t>(r) * num_classes + c] = ix[r] == c ? one : zero;
  });
}

void topk(const Tensor& in, int64_t rows, int64_t cols, int64_t k, bool largest,
          const Tensor& values, const Tensor& indices) {
  VIMOE_DISPATCH(in.dtype(), "topk", {
    // Compare integers exactly as i64, everything else as double (order-preserving).
    using K = std::conditional_t<std::is_integral_v<scalar_t>, int64_t, double>;
    const scalar_t* pi = in.data<scalar_t>();
    scalar_t* pv = values.data<scalar_t>();
    int64_t* px = indices.data<int64_t>();
    std::vector<int64_t> order(cols);
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* row = pi + r * cols;
      std::iota(order.begin(), order.end(), int64_t{0});
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
        return ranks_before(convert<K>(row[a]), a, convert<K>(row[b]), b, largest);
      });
      for (int64_t s = 0; s < k; ++s) {
        pv[r * k + s] = row[order[s]];
        px[r * k + s] = order[s];
      }
    }
  });
}

}  // namespace vimoe::cpu
