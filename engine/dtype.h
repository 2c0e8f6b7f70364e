// Element types: sizes, names, promotion, and host-side bf16 / f16 value types.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "engine/error.h"
#include "kernels/dtype.h"

namespace vimoe {

// bfloat16 on the host: the upper half of an IEEE f32, rounded to nearest even.
struct bfloat16 {
  uint16_t bits = 0;
  bfloat16() = default;
  explicit bfloat16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it a quiet NaN
      bits = static_cast<uint16_t>((u >> 16) | 0x40u);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  explicit operator float() const {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// IEEE binary16 on the host, rounded to nearest even, with subnormals and infinities.
struct float16 {
  uint16_t bits = 0;
  float16() = default;
  explicit float16(float f);
  explicit operator float() const;
};

size_t dtype_size(DType t);
const char* dtype_name(DType t);
bool is_floating(DType t);  // f32, f64, bf16, f16
bool is_integral(DType t);  // i32, i64, u8
// The type both operands convert to in a binary op: floating beats integral, the wider
// float wins, bf16 with f16 gives f32; among integers the wider one wins.
DType promote_types(DType a, DType b);

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<bfloat16> { static constexpr DType value = DType::BF16; };
template <> struct dtype_of<float16> { static constexpr DType value = DType::F16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };

// v narrowed to f32 by rounding to odd: toward zero, with the last bit set when bits were
// lost. A second rounding of that f32 to nearest even at 8 or 11 bits (bf16, f16) then
// equals one rounding of v itself (f32 keeps at least two bits more than either, also among
// their subnormals), where going through a nearest-even f32 can round twice: v just above a
// bf16 tie would land on the tie and then go to even. CUDA's __double2bfloat16 works the
// same way, so both devices give the same bits.
inline float round_to_odd_f32(double v) {
  float f = static_cast<float>(v);
  if (v != v || static_cast<double>(f) == v) return f;  // NaN, or exact (infinities too)
  if ((v > 0 && static_cast<double>(f) > v) || (v < 0 && static_cast<double>(f) < v))
    f = std::nextafter(f, 0.0f);  // rounded away from zero (to infinity too): step back
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u |= 1u;
  std::memcpy(&f, &u, 4);
  return f;
}

// Conversions through double so every pair of element types is covered by one template;
// double to a half type rounds once (round_to_odd_f32).
template <typename T> inline double to_double(T v) { return static_cast<double>(v); }
template <> inline double to_double(bfloat16 v) { return static_cast<float>(v); }
template <> inline double to_double(float16 v) { return static_cast<float>(v); }
template <typename T> inline T from_double(double v) { return static_cast<T>(v); }
template <> inline bfloat16 from_double(double v) { return bfloat16(round_to_odd_f32(v)); }
template <> inline float16 from_double(double v) { return float16(round_to_odd_f32(v)); }

// Exact for identical types (int64 survives), through double otherwise.
template <typename D, typename S> inline D convert(S v) {
  if constexpr (std::is_same_v<D, S>) return v;
  else return from_double<D>(to_double(v));
}

}  // namespace vimoe

// VIMOE_DISPATCH(dtype, scalar_t, body): run body with scalar_t bound to the C++ type of dtype.
#define VIMOE_DISPATCH_CASE(enumval, type, ...) \
  case ::vimoe::DType::enumval: {               \
    using scalar_t = type;                      \
    __VA_ARGS__;                                \
    break;                                      \
  }
#define VIMOE_DISPATCH(dtype, name, ...)                                      \
  do {                                                                        \
    switch (dtype) {                                                          \
      VIMOE_DISPATCH_CASE(F32, float, __VA_ARGS__)                            \
      VIMOE_DISPATCH_CASE(F64, double, __VA_ARGS__)                           \
      VIMOE_DISPATCH_CASE(BF16, ::vimoe::bfloat16, __VA_ARGS__)               \
      VIMOE_DISPATCH_CASE(F16, ::vimoe::float16, __VA_ARGS__)                 \
      VIMOE_DISPATCH_CASE(I32, int32_t, __VA_ARGS__)                          \
      VIMOE_DISPATCH_CASE(I64, int64_t, __VA_ARGS__)                          \
      VIMOE_DISPATCH_CASE(U8, uint8_t, __VA_ARGS__)                           \
      default: VIMOE_FAIL(name, ": unsupported dtype ", ::vimoe::dtype_name(dtype)); \
    }                                                                         \
  } while (0)
#define VIMOE_DISPATCH_FLOATING(dtype, name, ...)                             \
  do {                                                                        \
    switch (dtype) {                                                          \
      VIMOE_DISPATCH_CASE(F32, float, __VA_ARGS__)                            \
      VIMOE_DISPATCH_CASE(F64, double, __VA_ARGS__)                           \
      VIMOE_DISPATCH_CASE(BF16, ::vimoe::bfloat16, __VA_ARGS__)               \
      VIMOE_DISPATCH_CASE(F16, ::vimoe::float16, __VA_ARGS__)                 \
      default: VIMOE_FAIL(name, ": expected a floating dtype, found ", ::vimoe::dtype_name(dtype)); \
    }                                                                         \
  } while (0)
