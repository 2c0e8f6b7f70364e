// Device-side element types and conversions shared by every kernel family.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// Conversions through double cover every pair of element types with one template, and
// match the CPU reference (which also converts through double).
template <typename T> __host__ __device__ __forceinline__ double to_double(T v) { return static_cast<double>(v); }
template <> __host__ __device__ __forceinline__ double to_double(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __host__ __device__ __forceinline__ double to_double(__half v) { return __half2float(v); }
template <typename T> __host__ __device__ __forceinline__ T from_double(double v) { return static_cast<T>(v); }
// One rounding from double (not through a nearest-even f32, which can round twice), as the
// host's from_double in engine/dtype.h.
template <> __host__ __device__ __forceinline__ __nv_bfloat16 from_double(double v) {
  return __double2bfloat16(v);
}
template <> __host__ __device__ __forceinline__ __half from_double(double v) {
  return __double2half(v);
}

// Arithmetic type for a storage type: half types compute in f32.
template <typename T> struct AccType { using type = T; };
template <> struct AccType<__nv_bfloat16> { using type = float; };
template <> struct AccType<__half> { using type = float; };
template <typename T> using acc_t = typename AccType<T>::type;

template <typename T> __host__ __device__ __forceinline__ acc_t<T> load_acc(const T* p) { return static_cast<acc_t<T>>(*p); }
template <> __host__ __device__ __forceinline__ float load_acc(const __nv_bfloat16* p) { return __bfloat162float(*p); }
template <> __host__ __device__ __forceinline__ float load_acc(const __half* p) { return __half2float(*p); }
template <typename T> __host__ __device__ __forceinline__ void store_acc(T* p, acc_t<T> v) { *p = static_cast<T>(v); }
template <> __host__ __device__ __forceinline__ void store_acc(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
template <> __host__ __device__ __forceinline__ void store_acc(__half* p, float v) { *p = __float2half_rn(v); }

// Exact for identical types (int64 survives), through double otherwise.
template <typename D, typename S> __host__ __device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<D, S>) return v;
  else return from_double<D>(to_double(v));
}

inline unsigned int grid_for(int64_t n, int block) {
  const int64_t blocks = (n + block - 1) / block;
  return static_cast<unsigned int>(blocks < 65535 * 32 ? blocks : 65535 * 32);
}

// A grid-stride loop's first element and step, in the index type the launcher chose (32-bit
// where every offset fits, which keeps the per-element arithmetic in 32-bit registers).
template <typename Index>
__device__ __forceinline__ Index first_index() {
  return static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x;
}
template <typename Index>
__device__ __forceinline__ Index grid_stride() {
  return static_cast<Index>(gridDim.x) * blockDim.x;
}

}  // namespace vimoe::kernels

#define VIMOE_KERNEL_CASE(enumval, type, ...) \
  case ::vimoe::DType::enumval: {             \
    using scalar_t = type;                    \
    __VA_ARGS__;                              \
    break;                                    \
  }
// Binds scalar_t to the device type of `dtype`; an unknown code returns cudaErrorInvalidValue.
#define VIMOE_KERNEL_DISPATCH(dtype, ...)                             \
  switch (dtype) {                                                    \
    VIMOE_KERNEL_CASE(F32, float, __VA_ARGS__)                        \
    VIMOE_KERNEL_CASE(F64, double, __VA_ARGS__)                       \
    VIMOE_KERNEL_CASE(BF16, __nv_bfloat16, __VA_ARGS__)               \
    VIMOE_KERNEL_CASE(F16, __half, __VA_ARGS__)                       \
    VIMOE_KERNEL_CASE(I32, int32_t, __VA_ARGS__)                      \
    VIMOE_KERNEL_CASE(I64, int64_t, __VA_ARGS__)                      \
    VIMOE_KERNEL_CASE(U8, uint8_t, __VA_ARGS__)                       \
    default: return cudaErrorInvalidValue;                            \
  }
#define VIMOE_KERNEL_DISPATCH_FLOATING(dtype, ...)                    \
  switch (dtype) {                                                    \
    VIMOE_KERNEL_CASE(F32, float, __VA_ARGS__)                        \
    VIMOE_KERNEL_CASE(F64, double, __VA_ARGS__)                       \
    VIMOE_KERNEL_CASE(BF16, __nv_bfloat16, __VA_ARGS__)               \
    VIMOE_KERNEL_CASE(F16, __half, __VA_ARGS__)                       \
    default: return cudaErrorInvalidValue;                            \
  }
