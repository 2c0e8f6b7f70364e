#include <cstring>
#include <utility>

#include "kernels/copy.h"
#include "kernels/dispatch.cuh"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;

// ---- units: the bytes one load or store moves --------------------------------------------
//
// A copy without conversion moves bytes, so it can treat k consecutive elements of a run
// with stride 1 as one wider "unit" (up to 16 bytes, one vector instruction) wherever the
// layouts allow: the qkv split copies rows of 64 bf16 as 8 units of 16 bytes, with one index
// computation per unit instead of per element. Fill writes units of a repeated value.

template <int W> struct UnitOf;
template <> struct UnitOf<1> { using type = uint8_t; };
template <> struct UnitOf<2> { using type = uint16_t; };
template <> struct UnitOf<4> { using type = uint32_t; };
template <> struct UnitOf<8> { using type = uint2; };
template <> struct UnitOf<16> { using type = uint4; };

// Calls f(std::integral_constant<int, W>) for a width in {1, 2, 4, 8, 16}.
template <typename F>
cudaError_t with_width(int w, F&& f) {
  switch (w) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 16: return f(std::integral_constant<int, 16>{});
  }
  return cudaErrorInvalidValue;
}

// Calls f(Index{}) with the narrowest index type the layouts allow.
template <typename F>
cudaError_t with_index(const StridedLayout* ls, int count, int64_t n, F&& f) {
  if (fits_32bit_indexing(ls, count, n)) return f(uint32_t{});
  return f(uint64_t{});
}

bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// The widest unit of W bytes (a multiple of the element size es, at most 16) in which
// `count` collapsed layouts of elements of es bytes can be walked: every layout's innermost
// dimension has stride 1 and a multiple of W / es elements, every other stride is a multiple
// of W / es elements, and every start address is W-aligned. es when none is wider.
int unit_width(const StridedLayout* ls, char* const* starts, int count, int es) {
  for (int w = 16; w > es; w /= 2) {
    if (w % es != 0) continue;
    const int64_t k = w / es;
    bool ok = true;
    for (int j = 0; ok && j < count; ++j) {
      const StridedLayout& l = ls[j];
      const int in = l.ndim - 1;
      ok = l.strides[in] == 1 && l.sizes[in] % k == 0 && aligned(starts[j], w);
      for (int d = 0; ok && d < in; ++d) ok = l.strides[d] % k == 0;
    }
    if (ok) return w;
  }
  return es;
}

// Re-expresses layouts in units of k elements (see unit_width, which must have allowed k).
void to_units(StridedLayout* ls, int count, int64_t k) {
  for (int j = 0; j < count; ++j) {
    StridedLayout& l = ls[j];
    l.sizes[l.ndim - 1] /= k;
    for (int d = 0; d < l.ndim - 1; ++d) l.strides[d] /= k;
  }
}

bool is_unit_stride_1d(const StridedLayout& l) { return l.ndim == 1 && l.strides[0] == 1; }

// ---- kernels -----------------------------------------------------------------------------

// Both sides contiguous, same dtype: the first n / k elements as units U of k elements,
// the last n % k one by one. No index arithmetic beyond i.
template <typename U, typename E, typename Index>
__global__ void copy_dense_kernel(const E* __restrict__ src, E* __restrict__ dst, Index n) {
  constexpr Index k = sizeof(U) / sizeof(E);
  const Index units = n / k;
  const U* s = reinterpret_cast<const U*>(src);
  U* d = reinterpret_cast<U*>(dst);
  for (Index i = first_index<Index>(); i < units; i += grid_stride<Index>()) d[i] = s[i];
  for (Index i = units * k + first_index<Index>(); i < n; i += grid_stride<Index>()) dst[i] = src[i];
}

// Any layouts: operand 0 is the source, 1 the destination. S == D moves units unchanged.
template <typename S, typename D, typename Index>
__global__ void copy_strided_kernel(const S* __restrict__ src, D* __restrict__ dst,
                                    StridedIndexer<Index, 2> ix, Index n) {
  for (Index i = first_index<Index>(); i < n; i += grid_stride<Index>()) {
    const auto o = ix.offsets(i);
    dst[o.v[1]] = convert<D>(src[o.v[0]]);
  }
}

template <typename U, typename E, typename Index>
__global__ void fill_dense_kernel(E* __restrict__ dst, Index n, U unit, E value) {
  constexpr Index k = sizeof(U) / sizeof(E);
  const Index units = n / k;
  U* d = reinterpret_cast<U*>(dst);
  for (Index i = first_index<Index>(); i < units; i += grid_stride<Index>()) d[i] = unit;
  for (Index i = units * k + first_index<Index>(); i < n; i += grid_stride<Index>()) dst[i] = value;
}

template <typename U, typename Index>
__global__ void fill_strided_kernel(U* __restrict__ dst, StridedIndexer<Index, 1> ix, Index n,
                                    U value) {
  for (Index i = first_index<Index>(); i < n; i += grid_stride<Index>()) dst[ix.offsets(i).v[0]] = value;
}

int element_size(DType dt) {
  switch (dt) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32: return 4;
    case DType::BF16:
    case DType::F16: return 2;
    case DType::U8: return 1;
  }
  return 0;
}

// The widest unit (at most 16 bytes, a multiple of es) that every start is aligned to: the
// vector width of a contiguous copy or fill.
int dense_width(char* const* starts, int count, int es) {
  for (int w = 16; w > es; w /= 2) {
    bool ok = w % es == 0;
    for (int j = 0; ok && j < count; ++j) ok = aligned(starts[j], w);
    if (ok) return w;
  }
  return es;
}

// Same-dtype copy of n elements of es bytes over collapsed layouts whose starts already
// include the layouts' offsets.
cudaError_t copy_same_dtype(const char* src, char* dst, StridedLayout* ls, int64_t n, int es,
                            cudaStream_t stream) {
  char* const starts[2] = {const_cast<char*>(src), dst};
  return with_width(es, [&](auto esize) {
    using E = typename UnitOf<decltype(esize)::value>::type;
    if (is_unit_stride_1d(ls[0]) && is_unit_stride_1d(ls[1])) {
      return with_width(dense_width(starts, 2, es), [&](auto width) {
        using U = typename UnitOf<decltype(width)::value>::type;
        if constexpr (sizeof(U) < sizeof(E)) {
          return cudaErrorInvalidValue;  // never chosen: units hold whole elements
        } else {
          constexpr int64_t k = sizeof(U) / sizeof(E);
          return with_index(ls, 2, n, [&](auto index) {
            using Index = decltype(index);
            copy_dense_kernel<U><<<grid_for((n + k - 1) / k, kBlock), kBlock, 0, stream>>>(
                reinterpret_cast<const E*>(src), reinterpret_cast<E*>(dst), Index(n));
            return cudaGetLastError();
          });
        }
      });
    }
    const int w = unit_width(ls, starts, 2, es);
    const int64_t units = n / (w / es);
    to_units(ls, 2, w / es);
    return with_width(w, [&](auto width) {
      using U = typename UnitOf<decltype(width)::value>::type;
      return with_index(ls, 2, units, [&](auto index) {
        using Index = decltype(index);
        copy_strided_kernel<<<grid_for(units, kBlock), kBlock, 0, stream>>>(
            reinterpret_cast<const U*>(src), reinterpret_cast<U*>(dst), make_indexer<Index, 2>(ls),
            Index(units));
        return cudaGetLastError();
      });
    });
  });
}

}  // namespace

cudaError_t copy_strided(const void* src, DType src_dtype, const StridedLayout& src_layout,
                         void* dst, DType dst_dtype, const StridedLayout& dst_layout, int64_t n,
                         cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int ses = element_size(src_dtype), des = element_size(dst_dtype);
  StridedLayout ls[2] = {src_layout, dst_layout};
  if (ses == 0 || des == 0 || layout_numel(src_layout) != n || layout_numel(dst_layout) != n ||
      !collapse_dims(ls, 2))
    return cudaErrorInvalidValue;
  const char* s = static_cast<const char*>(src) + src_layout.offset * ses;
  char* d = static_cast<char*>(dst) + dst_layout.offset * des;
  if (src_dtype == dst_dtype) return copy_same_dtype(s, d, ls, n, ses, stream);
  VIMOE_KERNEL_DISPATCH(src_dtype, {
    using S = scalar_t;
    VIMOE_KERNEL_DISPATCH(dst_dtype, {
      return with_index(ls, 2, n, [&](auto index) {
        using Index = decltype(index);
        copy_strided_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(
            reinterpret_cast<const S*>(s), reinterpret_cast<scalar_t*>(d),
            make_indexer<Index, 2>(ls), Index(n));
        return cudaGetLastError();
      });
    });
  });
  return cudaErrorInvalidValue;
}

cudaError_t fill(void* dst, DType dtype, const StridedLayout& dst_layout, int64_t n, double value,
                 cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int es = element_size(dtype);
  StridedLayout l = dst_layout;
  if (es == 0 || layout_numel(l) != n || !collapse_dims(&l, 1)) return cudaErrorInvalidValue;
  char* d = static_cast<char*>(dst) + dst_layout.offset * es;
  // The value's bytes, converted as the CPU reference converts it (through double), repeated
  // to fill the widest unit.
  unsigned char bytes[16] = {};
  VIMOE_KERNEL_DISPATCH(dtype, {
    const scalar_t v = from_double<scalar_t>(value);
    std::memcpy(bytes, &v, sizeof(v));
  });
  for (int j = 1; j < 16 / es; ++j) std::memcpy(bytes + j * es, bytes, static_cast<size_t>(es));
  return with_width(es, [&](auto esize) {
    using E = typename UnitOf<decltype(esize)::value>::type;
    E element;
    std::memcpy(&element, bytes, sizeof(E));
    if (is_unit_stride_1d(l)) {
      return with_width(dense_width(&d, 1, es), [&](auto width) {
        using U = typename UnitOf<decltype(width)::value>::type;
        if constexpr (sizeof(U) < sizeof(E)) {
          return cudaErrorInvalidValue;  // never chosen: units hold whole elements
        } else {
          constexpr int64_t k = sizeof(U) / sizeof(E);
          U unit;
          std::memcpy(&unit, bytes, sizeof(U));
          return with_index(&l, 1, n, [&](auto index) {
            using Index = decltype(index);
            fill_dense_kernel<<<grid_for((n + k - 1) / k, kBlock), kBlock, 0, stream>>>(
                reinterpret_cast<E*>(d), Index(n), unit, element);
            return cudaGetLastError();
          });
        }
      });
    }
    const int w = unit_width(&l, &d, 1, es);
    const int64_t units = n / (w / es);
    to_units(&l, 1, w / es);
    return with_width(w, [&](auto width) {
      using U = typename UnitOf<decltype(width)::value>::type;
      U unit;
      std::memcpy(&unit, bytes, sizeof(U));
      return with_index(&l, 1, units, [&](auto index) {
        using Index = decltype(index);
        fill_strided_kernel<<<grid_for(units, kBlock), kBlock, 0, stream>>>(
            reinterpret_cast<U*>(d), make_indexer<Index, 1>(&l), Index(units), unit);
        return cudaGetLastError();
      });
    });
  });
}

}  // namespace vimoe::kernels
