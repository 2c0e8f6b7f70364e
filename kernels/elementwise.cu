#include <cstdint>

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

// ---- the two map kernels behind every op ----------------------------------------------

// An input as the launcher receives it: storage base pointer plus layout.
template <typename T>
struct Operand {
  const T* base;
  StridedLayout layout;
};

// Any views: each input element is located through its layout (divisions per dimension).
template <typename F, typename Out, typename... T>
__global__ void map_strided_kernel(F f, Out* __restrict__ out, int64_t n, Operand<T>... in) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = f(in.base[strided_offset(in.layout, i)]...);
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
__device__ __forceinline__ Vec<T, N> load_vec(const DenseOperand<T>& in, int64_t v) {
  if (in.scalar) {
    Vec<T, N> r;
    const T s = *in.p;
#pragma unroll
    for (int k = 0; k < N; ++k) r.v[k] = s;
    return r;
  }
  return reinterpret_cast<const Vec<T, N>*>(in.p)[v];
}

template <int N, typename F, typename Out, typename... T>
__device__ __forceinline__ void apply_vec(const F& f, Out* __restrict__ out, int64_t v,
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

bool is_dense(const StridedLayout& l) {
  int64_t expect = 1;
  for (int d = l.ndim - 1; d >= 0; --d) {
    if (l.sizes[d] != 1 && l.strides[d] != expect) return false;
    expect *= l.sizes[d];
  }
  return true;
}

bool is_broadcast_scalar(const StridedLayout& l) {
  for (int d = 0; d < l.ndim; ++d)
    if (l.sizes[d] != 1 && l.strides[d] != 0) return false;
  return true;
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

template <int N, typename T>
bool dense_ok(const Operand<T>& in) {
  if (is_broadcast_scalar(in.layout)) return true;
  return is_dense(in.layout) && is_aligned(in.base + in.layout.offset, sizeof(Vec<T, N>));
}

template <typename T>
DenseOperand<T> dense(const Operand<T>& in) {
  return DenseOperand<T>{in.base + in.layout.offset, is_broadcast_scalar(in.layout)};
}

// out[i] = f(in[i]...) for i in [0, n) over inputs already expanded to out's shape.
template <typename F, typename Out, typename... T>
cudaError_t launch_map(F f, Out* out, int64_t n, cudaStream_t stream, const Operand<T>&... in) {
  if (n == 0) return cudaSuccess;
  // The widest element type sets the vector length, so every operand moves at most 16 bytes.
  constexpr int N = static_cast<int>(kVecBytes / max_size<Out, T...>());
  if (is_aligned(out, sizeof(Vec<Out, N>)) && (dense_ok<N>(in) && ...)) {
    map_dense_kernel<N><<<grid_for((n + N - 1) / N, kBlock), kBlock, 0, stream>>>(
        f, out, n, dense(in)...);
  } else {
    map_strided_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(f, out, n, in...);
  }
  return cudaGetLastError();
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
