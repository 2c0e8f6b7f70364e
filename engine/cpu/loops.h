// The strided element loop under every CPU reference op: visits each element of `shape`
// in row-major order and hands the callback every operand's element offset, so views
// (broadcast, permuted, sliced) need no copy.
#pragma once
#include <array>
#include <vector>

#include "engine/shape.h"

namespace vimoe::cpu {

template <size_t N, typename F>
void for_each_offset(const Shape& shape, const std::array<const Shape*, N>& strides,
                     std::array<int64_t, N> offsets, F&& f) {
  const int64_t total = shape_numel(shape);
  if (total == 0) return;
  const int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<int64_t> idx(nd, 0);
  for (int64_t i = 0; i < total; ++i) {
    f(offsets);
    // Odometer step: advance the last dimension, carry into earlier ones.
    for (int64_t d = nd - 1; d >= 0; --d) {
      for (size_t k = 0; k < N; ++k) offsets[k] += (*strides[k])[d];
      if (++idx[d] < shape[d]) break;
      for (size_t k = 0; k < N; ++k) offsets[k] -= (*strides[k])[d] * shape[d];
      idx[d] = 0;
    }
  }
}

}  // namespace vimoe::cpu
