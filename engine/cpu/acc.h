// Compute types for the CPU reference: half types compute in f32, integers in i64, and
// f32/f64 in themselves, matching the CUDA kernels (which use f32 for half types).
#pragma once
#include <cstdint>
#include <type_traits>

#include "engine/dtype.h"

namespace vimoe::cpu {

template <typename T> struct Acc { using type = T; };
template <> struct Acc<bfloat16> { using type = float; };
template <> struct Acc<float16> { using type = float; };
template <> struct Acc<int32_t> { using type = int64_t; };
template <> struct Acc<uint8_t> { using type = int64_t; };
template <typename T> using acc_t = typename Acc<T>::type;

template <typename T> inline acc_t<T> load(T v) { return static_cast<acc_t<T>>(v); }
template <typename T> inline T store(acc_t<T> v) {
  if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) return T(v);
  else return static_cast<T>(v);
}

}  // namespace vimoe::cpu
