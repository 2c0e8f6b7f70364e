// The element types the engine stores. This header is the lowest layer: kernels use the
// enum to select an instantiation, the engine builds its DType helpers on top of it.
#pragma once
#include <cstdint>

namespace vimoe {

enum class DType : uint8_t { F32 = 0, F64, BF16, F16, I32, I64, U8 };

}  // namespace vimoe
