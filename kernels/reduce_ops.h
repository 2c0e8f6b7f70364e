// Row reductions shared by the CPU reference and the CUDA kernels: the input is viewed as
// [rows, cols] (the reduced axes moved last and made contiguous) and each row becomes one value.
#pragma once
#include <cstdint>

namespace vimoe::kernels {

enum class ReduceOp : uint8_t { Sum };

}  // namespace vimoe::kernels
