#include <cstdint>
#include <utility>

#include "kernels/dispatch.cuh"
#include "kernels/elementwise.h"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int kVecBytes = 16;  // one 128-bit load or store per operand per vector step

// The type the scalar math runs in, matching the CPU reference (engine/cpu/acc.h): half
// types in f32, f32 and f64 in themselves, every integer type in i64, so that integer
// results wrap identically on both backends.
template <typename T> struct Compute { using type = acc_t<T>; };
template <> struct Compute<int32_t> { using type = int64_t; };
template <> struct Compute<uint8_t> { using type = int64_t; };
template <typename T> using compute_t = typename Compute<T>::type;

template <typename T>
__device__ __forceinline__ compute_t<T> to_compute(T v) {
  return static_cast<compute_t<T>>(load_acc(&v));
}
template <typename T>
__device__ __forceinline__ T from_compute(compute_t<T> v) {
  T r;
  store_acc(&r, static_cast<acc_t<T>>(v));
  return r;
}

// ---- per-element functors: storage values in, storage value out ----------------------

template <BinaryOp op, typename T>
struct BinaryFn {
  __device__ __forceinline__ T operator()(T a, T b) const {
    return from_compute<T>(binary_apply<op>(to_compute(a), to_compute(b)));
  }
};

template <UnaryOp op, typename T>
struct UnaryFn {
  __device__ __forceinline__ T operator()(T x) const {
    return from_compute<T>(unary_apply<op>(to_compute(x)));
  }
};

template <CompareOp op, typename T>
struct CompareFn {
  __device__ __forceinline__ uint8_t operator()(T a, T b) const {
    return compare_apply<op>(to_compute(a), to_compute(b)) ? 1 : 0;
  }
};

template <typename T>
struct WhereFn {
  __device__ __forceinline__ T operator()(uint8_t c, T a, T b) const { return c != 0 ? a : b; }
};

// ---- the map kernels behind every op ---------------------------------------------------
//
// The launcher collapses the inputs' layouts together (kernels/strided.h) and picks one of
// three kernels:
//   - dense: every input contiguous or a broadcast scalar after collapsing (one dimension),
//     all 16-byte aligned: N elements per load and store, no index arithmetic beyond i;
//   - vector rows: every input's innermost collapsed dimension contiguous or broadcast
//     (a bias over rows, a narrowed or sliced tensor, a row-broadcast operand), rows a whole
//     number of aligned N-element vectors: one index computation per N elements;
//   - strided: anything else, one index computation per element.
// Index computations run through StridedIndexer: one multiply-high division per collapsed
// dimension, shared by all inputs, in 32-bit arithmetic when everything fits.

// An input as the launcher receives it: storage base pointer plus layout.
template <typename T>
struct Operand {
  const T* base;
  StridedLayout layout;
  const T* start() const { return base + layout.offset; }
};

// f(in_k[o_k]...): the inputs at their offsets (a __global__ template may have one pack
// only, so the index sequence lives here).
template <typename F, typename Offsets, size_t... I, typename... T>
__device__ __forceinline__ auto apply_at(const F& f, const Offsets& o, std::index_sequence<I...>,
                                         const T*... in) {
  return f(in[o.v[I]]...);
}

// Any views: out[i] = f(in_k[offset_k(i)]...) with the inputs' collapsed offsets.
template <typename Index, typename F, typename Out, typename... T>
__global__ void map_strided_kernel(F f, Out* __restrict__ out, Index n,
                                   StridedIndexer<Index, sizeof...(T)> ix, const T*... in) {
  for (Index i = first_index<Index>(); i < n; i += grid_stride<Index>())
    out[i] = apply_at(f, ix.offsets(i), std::index_sequence_for<T...>{}, in...);
}

// An input of the dense path: a pointer to its first element, and whether it is a
// broadcast scalar (every element reads p[0]) rather than contiguous.
template <typename T>
struct DenseOperand {
  const T* p;
  bool scalar;
};

// N consecutive elements, aligned so that one instruction moves them all.
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

template <int N, typename T>
__device__ __forceinline__ Vec<T, N> splat(T s) {
  Vec<T, N> r;
#pragma unroll
  for (int k = 0; k < N; ++k) r.v[k] = s;
  return r;
}

template <int N, typename T>
__device__ __forceinline__ Vec<T, N> load_vec(const DenseOperand<T>& in, int64_t v) {
  if (in.scalar) return splat<N>(*in.p);
  return reinterpret_cast<const Vec<T, N>*>(in.p)[v];
}

template <int N, typename F, typename Out, typename Index, typename... T>
__device__ __forceinline__ void apply_vec(const F& f, Out* __restrict__ out, Index v,
                                          const Vec<T, N>&... x) {
  Vec<Out, N> r;
#pragma unroll
  for (int k = 0; k < N; ++k) r.v[k] = f(x.v[k]...);
  reinterpret_cast<Vec<Out, N>*>(out)[v] = r;
}

// Contiguous or scalar inputs: no index arithmetic beyond i, and N elements per load and
// store. The launcher guarantees every contiguous pointer (and out) is aligned to Vec<., N>.
template <int N, typename F, typename Out, typename... T>
__global__ void map_dense_kernel(F f, Out* __restrict__ out, int64_t n, DenseOperand<T>... in) {
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t nvec = n / N;
  for (int64_t v = tid; v < nvec; v += stride) apply_vec<N>(f, out, v, load_vec<N>(in, v)...);
  // The last n % N (< N) elements, one per thread.
  for (int64_t i = nvec * N + tid; i < n; i += stride) out[i] = f(in.p[in.scalar ? 0 : i]...);
}

// N elements of one row at p: a vector load where the row is contiguous, one element
// repeated where the input is broadcast along the row.
template <int N, typename T>
__device__ __forceinline__ Vec<T, N> load_run(const T* p, bool broadcast) {
  if (broadcast) return splat<N>(*p);
  return *reinterpret_cast<const Vec<T, N>*>(p);
}

// One unit of the row path: out's vector v from each input's N elements at its offset.
template <int N, typename F, typename Out, typename Index, typename Indexer, size_t... I,
          typename... T>
__device__ __forceinline__ void apply_rows(const F& f, Out* __restrict__ out, Index v,
                                           const Indexer& ix, std::index_sequence<I...>,
                                           const T*... in) {
  const auto o = ix.offsets(v);
  apply_vec<N>(f, out, v, load_run<N>(in + o.v[I], ix.strides[0][I] == 0)...);
}

// Inputs whose innermost dimension is contiguous or broadcast: unit v is the N elements
// [v N, v N + N) of the output, within one row. The indexer walks units: its innermost
// stride is N for a contiguous input and 0 for a broadcast one.
template <int N, typename Index, typename F, typename Out, typename... T>
__global__ void map_rows_kernel(F f, Out* __restrict__ out, Index units,
                                StridedIndexer<Index, sizeof...(T)> ix, const T*... in) {
  for (Index v = first_index<Index>(); v < units; v += grid_stride<Index>())
    apply_rows<N>(f, out, v, ix, std::index_sequence_for<T...>{}, in...);
}

bool is_aligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <typename T>
constexpr size_t max_size() {
  return sizeof(T);
}
template <typename T, typename U, typename... R>
constexpr size_t max_size() {
  return sizeof(T) > max_size<U, R...>() ? sizeof(T) : max_size<U, R...>();
}

// A collapsed one-dimensional input the dense path can read.
template <int N, typename T>
bool dense_ok(const T* start, const StridedLayout& l) {
  return l.strides[0] == 0 || (l.strides[0] == 1 && is_aligned(start, sizeof(Vec<T, N>)));
}

// A collapsed input the row path can read: broadcast along its rows, or contiguous along
// them with every row start a whole, aligned vector.
template <int N, typename T>
bool rows_ok(const T* start, const StridedLayout& l) {
  const int in = l.ndim - 1;
  if (l.strides[in] == 0) return true;
  if (l.strides[in] != 1 || !is_aligned(start, sizeof(Vec<T, N>))) return false;
  for (int d = 0; d < in; ++d)
    if (l.strides[d] % N != 0) return false;
  return true;
}

// out[i] = f(in[i]...) for i in [0, n) over inputs already expanded to out's shape.
template <typename F, typename Out, size_t... I, typename... T>
cudaError_t launch_map_impl(std::index_sequence<I...>, F f, Out* out, int64_t n,
                            cudaStream_t stream, const Operand<T>&... in) {
  constexpr int K = sizeof...(T);
  StridedLayout ls[K] = {in.layout...};
  if (!conform_layouts(ls, K, n) || !collapse_dims(ls, K)) return cudaErrorInvalidValue;
  // The widest element type sets the vector length, so every operand moves at most 16 bytes.
  constexpr int N = static_cast<int>(kVecBytes / max_size<Out, T...>());
  const int nd = ls[0].ndim;
  if (nd == 1 && is_aligned(out, sizeof(Vec<Out, N>)) && (dense_ok<N>(in.start(), ls[I]) && ...)) {
    map_dense_kernel<N><<<grid_for((n + N - 1) / N, kBlock), kBlock, 0, stream>>>(
        f, out, n, DenseOperand<T>{in.start(), ls[I].strides[0] == 0}...);
    return cudaGetLastError();
  }
  const bool small = fits_32bit_indexing(ls, K, n);
  if (small && nd > 1 && ls[0].sizes[nd - 1] % N == 0 && is_aligned(out, sizeof(Vec<Out, N>)) &&
      (rows_ok<N>(in.start(), ls[I]) && ...)) {
    for (StridedLayout& l : ls) {
      l.sizes[nd - 1] /= N;
      l.strides[nd - 1] *= N;  // elements per unit: N, or 0 for a broadcast row
    }
    const int64_t units = n / N;
    map_rows_kernel<N><<<grid_for(units, kBlock), kBlock, 0, stream>>>(
        f, out, static_cast<uint32_t>(units), make_indexer<uint32_t, K>(ls), in.start()...);
    return cudaGetLastError();
  }
  if (small) {
    map_strided_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(
        f, out, static_cast<uint32_t>(n), make_indexer<uint32_t, K>(ls), in.start()...);
  } else {
    map_strided_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(
        f, out, static_cast<uint64_t>(n), make_indexer<uint64_t, K>(ls), in.start()...);
  }
  return cudaGetLastError();
}

template <typename F, typename Out, typename... T>
cudaError_t launch_map(F f, Out* out, int64_t n, cudaStream_t stream, const Operand<T>&... in) {
  if (n == 0) return cudaSuccess;
  return launch_map_impl(std::index_sequence_for<T...>{}, f, out, n, stream, in...);
}

// ---- per-op launchers ------------------------------------------------------------------

template <BinaryOp op>
cudaError_t launch_binary(DType dtype, const void* a, const StridedLayout& la, const void* b,
                          const StridedLayout& lb, void* out, int64_t n, cudaStream_t stream) {
  VIMOE_KERNEL_DISPATCH(dtype, {
    return launch_map(BinaryFn<op, scalar_t>{}, static_cast<scalar_t*>(out), n, stream,
                      Operand<scalar_t>{static_cast<const scalar_t*>(a), la},
                      Operand<scalar_t>{static_cast<const scalar_t*>(b), lb});
  });
  return cudaErrorInvalidValue;
}

template <UnaryOp op>
cudaError_t launch_unary(DType dtype, const void* x, const StridedLayout& lx, void* out,
                         int64_t n, cudaStream_t stream) {
  if constexpr (unary_needs_floating(op)) {
    VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
      return launch_map(UnaryFn<op, scalar_t>{}, static_cast<scalar_t*>(out), n, stream,
                        Operand<scalar_t>{static_cast<const scalar_t*>(x), lx});
    });
  } else {
    VIMOE_KERNEL_DISPATCH(dtype, {
      return launch_map(UnaryFn<op, scalar_t>{}, static_cast<scalar_t*>(out), n, stream,
                        Operand<scalar_t>{static_cast<const scalar_t*>(x), lx});
    });
  }
  return cudaErrorInvalidValue;
}

template <CompareOp op>
cudaError_t launch_compare(DType dtype, const void* a, const StridedLayout& la, const void* b,
                           const StridedLayout& lb, uint8_t* out, int64_t n,
                           cudaStream_t stream) {
  VIMOE_KERNEL_DISPATCH(dtype, {
    return launch_map(CompareFn<op, scalar_t>{}, out, n, stream,
                      Operand<scalar_t>{static_cast<const scalar_t*>(a), la},
                      Operand<scalar_t>{static_cast<const scalar_t*>(b), lb});
  });
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t binary(BinaryOp op, DType dtype, const void* a, const StridedLayout& la,
                   const void* b, const StridedLayout& lb, void* out, int64_t n,
                   cudaStream_t stream) {
  switch (op) {
    case BinaryOp::Add: return launch_binary<BinaryOp::Add>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Sub: return launch_binary<BinaryOp::Sub>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Mul: return launch_binary<BinaryOp::Mul>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Div: return launch_binary<BinaryOp::Div>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Pow: return launch_binary<BinaryOp::Pow>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Maximum:
      return launch_binary<BinaryOp::Maximum>(dtype, a, la, b, lb, out, n, stream);
    case BinaryOp::Minimum:
      return launch_binary<BinaryOp::Minimum>(dtype, a, la, b, lb, out, n, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t unary(UnaryOp op, DType dtype, const void* x, const StridedLayout& lx, void* out,
                  int64_t n, cudaStream_t stream) {
  switch (op) {
    case UnaryOp::Neg: return launch_unary<UnaryOp::Neg>(dtype, x, lx, out, n, stream);
    case UnaryOp::Exp: return launch_unary<UnaryOp::Exp>(dtype, x, lx, out, n, stream);
    case UnaryOp::Log: return launch_unary<UnaryOp::Log>(dtype, x, lx, out, n, stream);
    case UnaryOp::Sqrt: return launch_unary<UnaryOp::Sqrt>(dtype, x, lx, out, n, stream);
    case UnaryOp::Rsqrt: return launch_unary<UnaryOp::Rsqrt>(dtype, x, lx, out, n, stream);
    case UnaryOp::Tanh: return launch_unary<UnaryOp::Tanh>(dtype, x, lx, out, n, stream);
    case UnaryOp::Relu: return launch_unary<UnaryOp::Relu>(dtype, x, lx, out, n, stream);
    case UnaryOp::Abs: return launch_unary<UnaryOp::Abs>(dtype, x, lx, out, n, stream);
    case UnaryOp::Erf: return launch_unary<UnaryOp::Erf>(dtype, x, lx, out, n, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t compare(CompareOp op, DType dtype, const void* a, const StridedLayout& la,
                    const void* b, const StridedLayout& lb, uint8_t* out, int64_t n,
                    cudaStream_t stream) {
  switch (op) {
    case CompareOp::Eq: return launch_compare<CompareOp::Eq>(dtype, a, la, b, lb, out, n, stream);
    case CompareOp::Ne: return launch_compare<CompareOp::Ne>(dtype, a, la, b, lb, out, n, stream);
    case CompareOp::Lt: return launch_compare<CompareOp::Lt>(dtype, a, la, b, lb, out, n, stream);
    case CompareOp::Le: return launch_compare<CompareOp::Le>(dtype, a, la, b, lb, out, n, stream);
    case CompareOp::Gt: return launch_compare<CompareOp::Gt>(dtype, a, la, b, lb, out, n, stream);
    case CompareOp::Ge: return launch_compare<CompareOp::Ge>(dtype, a, la, b, lb, out, n, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t where(const uint8_t* cond, const StridedLayout& lc, DType dtype, const void* a,
                  const StridedLayout& la, const void* b, const StridedLayout& lb, void* out,
                  int64_t n, cudaStream_t stream) {
  VIMOE_KERNEL_DISPATCH(dtype, {
    return launch_map(WhereFn<scalar_t>{}, static_cast<scalar_t*>(out), n, stream,
                      Operand<uint8_t>{cond, lc},
                      Operand<scalar_t>{static_cast<const scalar_t*>(a), la},
                      Operand<scalar_t>{static_cast<const scalar_t*>(b), lb});
  });
  return cudaErrorInvalidValue;
}

}  // namespace vimoe::kernels
