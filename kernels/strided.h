// A plain description of a strided tensor, small enough to pass to a kernel by value, and
// the host-side preparation that makes walking one cheap.
//
// Offsets are in elements. Kernels that accept arbitrary views (broadcast inputs, permuted
// operands) map a linear index in the row-major order of the sizes to an element offset.
// strided_offset() is the plain statement of that map: a 64-bit division and remainder per
// dimension per element. The launchers that walk views in bulk (copy, fill, elementwise)
// first shrink the problem on the host:
//   - collapse_dims() rewrites the layouts of one launch into the fewest dimensions that
//     give every element the same offsets (a contiguous tensor becomes one dimension, a
//     [B, T, D] -> [B, D, T] transpose two);
//   - StridedIndexer then maps a linear index to every operand's offset at once, with one
//     division per collapsed dimension (shared by all operands, since they share sizes)
//     done as a multiply-high by a precomputed magic number (IntDivider), in 32-bit
//     arithmetic whenever fits_32bit_indexing() says every index and offset fits.
// Everything here is plain C++ (host and device), so the CPU tests check it directly.
#pragma once
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__CUDACC__)
#define VIMOE_HOST_DEVICE __host__ __device__
#else
#define VIMOE_HOST_DEVICE
#endif
// Loop unrolling for the device pass only (the host compiler would warn about the pragma).
#if defined(__CUDA_ARCH__)
#define VIMOE_UNROLL _Pragma("unroll")
#else
#define VIMOE_UNROLL
#endif

namespace vimoe::kernels {

constexpr int kMaxDims = 8;

struct StridedLayout {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  int64_t offset = 0;
};

// Element offset of the `linear`-th element in row-major order of `sizes`.
VIMOE_HOST_DEVICE inline int64_t strided_offset(const StridedLayout& l, int64_t linear) {
  int64_t off = l.offset;
  for (int d = l.ndim - 1; d >= 0; --d) {
    const int64_t size = l.sizes[d];
    off += (linear % size) * l.strides[d];
    linear /= size;
  }
  return off;
}

// ---- layout predicates and dimension collapsing (host) ---------------------------------

inline int64_t layout_numel(const StridedLayout& l) {
  int64_t n = 1;
  for (int d = 0; d < l.ndim; ++d) n *= l.sizes[d];
  return n;
}

// Row-major contiguous (size-1 dimensions may carry any stride).
inline bool is_dense(const StridedLayout& l) {
  int64_t expect = 1;
  for (int d = l.ndim - 1; d >= 0; --d) {
    if (l.sizes[d] != 1 && l.strides[d] != expect) return false;
    expect *= l.sizes[d];
  }
  return true;
}

// Every element is the one at `offset` (all strides of dimensions longer than 1 are 0).
inline bool is_broadcast_scalar(const StridedLayout& l) {
  for (int d = 0; d < l.ndim; ++d)
    if (l.sizes[d] != 1 && l.strides[d] != 0) return false;
  return true;
}

// `l` without its size-1 dimensions: the same offset for every linear index.
inline StridedLayout squeeze_layout(const StridedLayout& l) {
  StridedLayout r;
  r.offset = l.offset;
  for (int d = 0; d < l.ndim; ++d) {
    if (l.sizes[d] == 1) continue;
    r.sizes[r.ndim] = l.sizes[d];
    r.strides[r.ndim] = l.strides[d];
    ++r.ndim;
  }
  return r;
}

inline bool same_sizes(const StridedLayout& a, const StridedLayout& b) {
  if (a.ndim != b.ndim) return false;
  for (int d = 0; d < a.ndim; ++d)
    if (a.sizes[d] != b.sizes[d]) return false;
  return true;
}

// Rewrites the `count` layouts of one launch -- operands visited in the same row-major
// order of the same sizes -- into the fewest dimensions that give every element of every
// layout the same offset: size-1 dimensions are dropped, and dimensions i and i+1 merge
// into one of size sizes[i] * sizes[i+1] and stride strides[i+1] wherever EVERY layout has
// strides[i] == strides[i+1] * sizes[i+1]. So a contiguous operand set becomes one
// dimension, stride-0 (broadcast) dimensions merge with each other but never with a
// dimension of non-zero stride, and a single element becomes [1] with stride 0. Offsets
// and the row-major order are unchanged, so a kernel may index the results exactly as the
// originals. Returns false, changing nothing, when the layouts' sizes differ (size-1
// dimensions aside).
inline bool collapse_dims(StridedLayout* ls, int count) {
  if (count <= 0) return true;
  StridedLayout sq[kMaxDims];  // launches have at most a handful of operands
  if (count > kMaxDims) return false;
  for (int k = 0; k < count; ++k) {
    sq[k] = squeeze_layout(ls[k]);
    if (!same_sizes(sq[k], sq[0])) return false;
  }
  const int nd = sq[0].ndim;
  StridedLayout out[kMaxDims];
  for (int k = 0; k < count; ++k) out[k].offset = ls[k].offset;
  // Walk from the innermost dimension outwards, growing the current (outermost so far)
  // collapsed dimension while every operand continues its stride pattern.
  int m = 0;  // collapsed dimensions so far, stored innermost first
  int64_t sizes[kMaxDims];
  int64_t strides[kMaxDims][kMaxDims];  // [collapsed dim][operand]
  for (int d = nd - 1; d >= 0; --d) {
    bool merge = m > 0;
    for (int k = 0; merge && k < count; ++k)
      merge = sq[k].strides[d] == strides[m - 1][k] * sizes[m - 1];
    if (merge) {
      sizes[m - 1] *= sq[0].sizes[d];
    } else {
      sizes[m] = sq[0].sizes[d];
      for (int k = 0; k < count; ++k) strides[m][k] = sq[k].strides[d];
      ++m;
    }
  }
  if (m == 0) {  // one element: no dimension longer than 1
    sizes[0] = 1;
    for (int k = 0; k < count; ++k) strides[0][k] = 0;
    m = 1;
  }
  for (int k = 0; k < count; ++k) {
    out[k].ndim = m;
    for (int j = 0; j < m; ++j) {
      out[k].sizes[m - 1 - j] = sizes[j];
      out[k].strides[m - 1 - j] = strides[j][k];
    }
    ls[k] = out[k];
  }
  return true;
}

// Gives the `count` input layouts of one elementwise launch of `n` elements a common
// shape, so that collapse_dims() can treat them together. Each layout must either have the
// launch shape (the same sizes once size-1 dimensions are dropped), or be dense with n
// elements in any shape (ops::kernel_layout hands contiguous tensors over as [n]), or be a
// broadcast scalar; the last two are re-expressed over the launch shape. The launch shape
// is that of the first layout that is neither dense nor a broadcast scalar, [n] if there is
// none. Offsets are kept. Returns false, changing nothing, when a layout fits none of these
// or the launch shape does not hold n elements.
inline bool conform_layouts(StridedLayout* ls, int count, int64_t n) {
  if (count > kMaxDims) return false;
  StridedLayout shape;  // sizes only
  shape.ndim = 1;
  shape.sizes[0] = n;
  for (int k = 0; k < count; ++k)
    if (!is_dense(ls[k]) && !is_broadcast_scalar(ls[k])) {
      shape = squeeze_layout(ls[k]);
      break;
    }
  shape = squeeze_layout(shape);
  if (layout_numel(shape) != n) return false;
  StridedLayout out[kMaxDims];
  for (int k = 0; k < count; ++k) {
    const StridedLayout sq = squeeze_layout(ls[k]);
    if (same_sizes(sq, shape)) {
      out[k] = sq;
      continue;
    }
    const bool scalar = is_broadcast_scalar(ls[k]);
    if (!scalar && !(is_dense(ls[k]) && layout_numel(ls[k]) == n)) return false;
    out[k] = shape;
    out[k].offset = ls[k].offset;
    int64_t stride = 1;
    for (int d = shape.ndim - 1; d >= 0; --d) {
      out[k].strides[d] = scalar ? 0 : stride;
      stride *= shape.sizes[d];
    }
  }
  for (int k = 0; k < count; ++k) ls[k] = out[k];
  return true;
}

// True when a launch of n elements over these layouts can run in 32-bit index arithmetic:
// n and every element offset relative to each layout's own `offset` fit in int32 (so that
// index + grid stride cannot wrap an unsigned 32-bit counter either), and no stride is
// negative (the 32-bit offsets are unsigned).
inline bool fits_32bit_indexing(const StridedLayout* ls, int count, int64_t n) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  if (n < 0 || n > kMax) return false;
  if (n == 0) return true;  // nothing is indexed
  for (int k = 0; k < count; ++k) {
    int64_t extent = 0;  // the largest offset: every index at its last value
    for (int d = 0; d < ls[k].ndim; ++d) {
      const int64_t size = ls[k].sizes[d], stride = ls[k].strides[d];
      if (size > kMax || stride < 0 || stride > kMax) return false;
      extent += (size - 1) * stride;  // < 2^62 per term, checked before it can grow past
      if (extent > kMax) return false;
    }
  }
  return true;
}

// ---- fast division by invariant integers ------------------------------------------------
//
// A divisor fixed for a whole launch (a dimension's size) is turned, on the host, into a
// magic number m and a shift l such that n / d == (mulhi(n, m) + n) >> l for every dividend
// the kernel can see, where mulhi is the high half of the double-width product. This is
// the round-up method of Granlund and Montgomery ("Division by invariant integers using
// multiplication", PLDI 1994): with W-bit words, l = ceil(log2 d) and the (W+1)-bit
// multiplier M = floor(2^(W+l) / d) + 1 satisfy 2^(W+l) < M d <= 2^(W+l) + 2^l, which makes
// floor(n M / 2^(W+l)) == floor(n / d) for all 0 <= n < 2^W. M's top bit is 2^W, so the
// stored magic is m = M - 2^W = floor(2^W (2^l - d) / d) + 1 (< 2^W for d < 2^W), and
// n M / 2^W = n + n m / 2^W, whose integer part is n + mulhi(n, m). One multiply-high,
// an add and a shift replace a division (the GPU has no integer divider: a 64-bit `/` is a
// long software routine), and the remainder is one multiply-subtract more.

VIMOE_HOST_DEVICE inline uint32_t mulhi(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
#endif
}

VIMOE_HOST_DEVICE inline uint64_t mulhi(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  __extension__ typedef unsigned __int128 u128;
  return static_cast<uint64_t>((static_cast<u128>(a) * b) >> 64);
#endif
}

template <typename U>
struct DivMod {
  U quotient, remainder;
};

template <typename U>
struct IntDivider;

// Exact for every 32-bit dividend and divisors 1 <= d < 2^32. The sum n + mulhi(n, m) can
// need 33 bits, so it is formed in 64 bits (an add with carry and a funnel shift on the GPU).
template <>
struct IntDivider<uint32_t> {
  uint32_t divisor = 1;
  uint32_t magic = 1;
  uint32_t shift = 0;

  IntDivider() = default;
  // d >= 1.
  explicit IntDivider(uint32_t d) : divisor(d) {
    while ((uint64_t{1} << shift) < d) ++shift;
    // 2^l - d < 2^31 (d > 2^(l-1)), so the product fits in 63 bits.
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  VIMOE_HOST_DEVICE uint32_t div(uint32_t n) const {
    return static_cast<uint32_t>((static_cast<uint64_t>(mulhi(n, magic)) + n) >> shift);
  }
  VIMOE_HOST_DEVICE DivMod<uint32_t> divmod(uint32_t n) const {
    const uint32_t q = div(n);
    return {q, n - q * divisor};
  }
};

// Exact for dividends 0 <= n < 2^63 (every non-negative int64) and divisors 1 <= d <= 2^63.
// Since m < 2^64, mulhi(n, m) < n and the sum n + mulhi(n, m) < 2^64 needs no 65th bit.
template <>
struct IntDivider<uint64_t> {
  uint64_t divisor = 1;
  uint64_t magic = 1;
  uint32_t shift = 0;

  IntDivider() = default;
  // 1 <= d <= 2^63.
  explicit IntDivider(uint64_t d) : divisor(d) {
    __extension__ typedef unsigned __int128 u128;
    while ((u128{1} << shift) < d) ++shift;
    // 2^l - d < 2^62, so the shifted value fits in 126 bits.
    magic = static_cast<uint64_t>((static_cast<u128>((uint64_t{1} << shift) - d) << 64) / d + 1);
  }
  VIMOE_HOST_DEVICE uint64_t div(uint64_t n) const { return (mulhi(n, magic) + n) >> shift; }
  VIMOE_HOST_DEVICE DivMod<uint64_t> divmod(uint64_t n) const {
    const uint64_t q = div(n);
    return {q, n - q * divisor};
  }
};

// ---- offsets of N operands walked together ----------------------------------------------

// Maps a linear index in the row-major order of N layouts collapsed together (same sizes)
// to each operand's element offset relative to that layout's own `offset`. Index is the
// linear index type: uint32_t (offsets uint32_t, strides non-negative: only where
// fits_32bit_indexing() holds) or uint64_t (offsets int64_t, any strides). Dimensions are
// stored innermost first; the outermost needs no division (what is left of the index after
// the inner dimensions is its coordinate), so a layout of D dimensions costs D - 1 divisions
// per element, whatever N.
template <typename Index, int N>
struct StridedIndexer {
  static_assert(std::is_same_v<Index, uint32_t> || std::is_same_v<Index, uint64_t>,
                "StridedIndexer indexes with uint32_t or uint64_t");
  using Offset = std::conditional_t<std::is_same_v<Index, uint32_t>, uint32_t, int64_t>;
  struct Offsets {
    Offset v[N];
  };

  int ndim = 1;
  IntDivider<Index> sizes[kMaxDims];  // sizes[0] is the innermost dimension
  Offset strides[kMaxDims][N] = {};   // strides[d][k]: operand k along dimension d

  VIMOE_HOST_DEVICE Offsets offsets(Index linear) const {
    Offsets o;
    VIMOE_UNROLL
    for (int k = 0; k < N; ++k) o.v[k] = 0;
    // A fixed trip count, so that the loop unrolls and the arrays stay in registers.
    VIMOE_UNROLL
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == ndim - 1) {
        VIMOE_UNROLL
        for (int k = 0; k < N; ++k) o.v[k] += static_cast<Offset>(linear) * strides[d][k];
        break;
      }
      const DivMod<Index> qr = sizes[d].divmod(linear);
      VIMOE_UNROLL
      for (int k = 0; k < N; ++k) o.v[k] += static_cast<Offset>(qr.remainder) * strides[d][k];
      linear = qr.quotient;
    }
    return o;
  }
};

// The indexer of N layouts that collapse_dims() (or conform_layouts() then collapse_dims())
// has prepared: the same sizes, at least one dimension, no size 0. With Index = uint32_t,
// fits_32bit_indexing() must hold for them.
template <typename Index, int N>
StridedIndexer<Index, N> make_indexer(const StridedLayout* ls) {
  using Offset = typename StridedIndexer<Index, N>::Offset;
  StridedIndexer<Index, N> ix;
  const int nd = ls[0].ndim > 0 ? ls[0].ndim : 1;
  ix.ndim = nd;
  for (int d = 0; d < nd; ++d) {
    const int src = nd - 1 - d;  // innermost first
    const int64_t size = ls[0].ndim > 0 ? ls[0].sizes[src] : 1;
    ix.sizes[d] = IntDivider<Index>(static_cast<Index>(size));
    for (int k = 0; k < N; ++k)
      ix.strides[d][k] = ls[k].ndim > 0 ? static_cast<Offset>(ls[k].strides[src]) : 0;
  }
  return ix;
}

}  // namespace vimoe::kernels
