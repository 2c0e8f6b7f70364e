// The strided element loops under the CPU reference ops.
//
// for_each_offset visits each element of `shape` in row-major order and hands the callback
// every operand's element offset, so views (broadcast, permuted, sliced) need no copy. It is
// the plainest statement of what an elementwise op does, at the price of an odometer step
// per element.
//
// The hot ops use the same walk a row at a time: collapse_layout() merges the dimensions
// that every operand walks with one stride (a contiguous tensor becomes one long row; a
// bias broadcast over [rows, cols] becomes rows x cols with the bias's row stride 0), and
// for_each_segment() hands the callback runs of elements along the innermost dimension,
// with each operand's offset and stride, so the callback's inner loop is a plain indexed
// loop the compiler can vectorise. parallel_segments() splits the elements over the CPU
// thread pool (engine/cpu/parallel.h); every element is written by exactly one thread with
// the same arithmetic, so results do not depend on the number of threads.
#pragma once
#include <algorithm>
#include <array>
#include <vector>

#include "engine/cpu/parallel.h"
#include "engine/shape.h"

namespace vimoe::cpu {

// One element offset (or stride) per operand.
template <size_t N> using Offsets = std::array<int64_t, N>;

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

// A shape and N operands' strides with size-1 dimensions dropped and neighbouring
// dimensions merged wherever every operand steps through them with a single stride.
// The last dimension is the innermost run; `sizes` is never empty.
template <size_t N>
struct CollapsedLayout {
  Shape sizes;
  std::array<Shape, N> strides;
  int64_t numel = 0;
  int64_t inner() const { return sizes.back(); }
  int64_t inner_stride(size_t k) const { return strides[k].back(); }
};

template <size_t N>
CollapsedLayout<N> collapse_layout(const Shape& shape, const std::array<const Shape*, N>& strides) {
  CollapsedLayout<N> l;
  l.numel = shape_numel(shape);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    const size_t last = l.sizes.size();
    bool merge = last > 0;
    for (size_t k = 0; merge && k < N; ++k)
      merge = l.strides[k][last - 1] == (*strides[k])[d] * shape[d];
    if (merge) {
      l.sizes[last - 1] *= shape[d];
      for (size_t k = 0; k < N; ++k) l.strides[k][last - 1] = (*strides[k])[d];
    } else {
      l.sizes.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) l.strides[k].push_back((*strides[k])[d]);
    }
  }
  if (l.sizes.empty()) {  // a single element
    l.sizes.push_back(1);
    for (size_t k = 0; k < N; ++k) l.strides[k].push_back(0);
  }
  return l;
}

// Calls f(offsets, n, inner_strides) for the elements [first, last) of the row-major order,
// in runs of n elements along the innermost dimension; offsets are each operand's element
// offset at the start of the run (from `base`), and the run steps by inner_strides.
template <size_t N, typename F>
void for_each_segment(const CollapsedLayout<N>& l, const std::array<int64_t, N>& base,
                      int64_t first, int64_t last, F&& f) {
  if (first >= last) return;
  const int64_t nd = static_cast<int64_t>(l.sizes.size());
  const int64_t inner = l.inner();
  std::array<int64_t, N> step;
  for (size_t k = 0; k < N; ++k) step[k] = l.strides[k][nd - 1];
  // Coordinates of `first` in the outer dimensions, and the offsets they give.
  std::vector<int64_t> idx(nd, 0);
  int64_t rest = first / inner;
  int64_t col = first % inner;
  std::array<int64_t, N> row = base;
  for (int64_t d = nd - 2; d >= 0; --d) {
    idx[d] = rest % l.sizes[d];
    rest /= l.sizes[d];
    for (size_t k = 0; k < N; ++k) row[k] += idx[d] * l.strides[k][d];
  }
  int64_t pos = first;
  while (pos < last) {
    const int64_t n = std::min(inner - col, last - pos);
    std::array<int64_t, N> at;
    for (size_t k = 0; k < N; ++k) at[k] = row[k] + col * step[k];
    f(at, n, step);
    pos += n;
    col = 0;
    // Odometer step over the outer dimensions: one per run, not per element.
    for (int64_t d = nd - 2; d >= 0; --d) {
      for (size_t k = 0; k < N; ++k) row[k] += l.strides[k][d];
      if (++idx[d] < l.sizes[d]) break;
      for (size_t k = 0; k < N; ++k) row[k] -= l.strides[k][d] * l.sizes[d];
      idx[d] = 0;
    }
  }
}

// for_each_segment over all elements, split across the thread pool in contiguous ranges of
// the row-major order. `written` names the operand the callback stores into: if its layout
// writes one location from several elements (a stride-0, expanded destination), the loop
// runs on one thread so that the last write wins as in a serial loop.
template <size_t N, typename F>
void parallel_segments(const CollapsedLayout<N>& l, const std::array<int64_t, N>& base,
                       size_t written, F&& f) {
  bool overlapping = false;
  for (size_t d = 0; d < l.sizes.size(); ++d)
    overlapping |= l.strides[written][d] == 0 && l.sizes[d] > 1;
  if (overlapping) {
    for_each_segment(l, base, 0, l.numel, f);
    return;
  }
  parallel_for(0, l.numel, grain_for(1), [&](int64_t first, int64_t last) {
    for_each_segment(l, base, first, last, f);
  });
}

// One run of a segment: f(i_0, ..., i_{N-1}) for i in [0, n), with operand k's index
// i * s[k]. The common stride patterns (every operand contiguous; one operand a broadcast
// scalar) are spelled out so that the compiler sees plain indexed loops it can vectorise.
template <typename F>
inline void run_segment(int64_t n, const std::array<int64_t, 1>& s, F&& f) {
  if (s[0] == 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
  } else {
    for (int64_t i = 0; i < n; ++i) f(i * s[0]);
  }
}

template <typename F>
inline void run_segment(int64_t n, const std::array<int64_t, 2>& s, F&& f) {
  if (s[0] == 1 && s[1] == 1) {
    for (int64_t i = 0; i < n; ++i) f(i, i);
  } else if (s[0] == 0 && s[1] == 1) {
    for (int64_t i = 0; i < n; ++i) f(0, i);
  } else {
    for (int64_t i = 0; i < n; ++i) f(i * s[0], i * s[1]);
  }
}

template <typename F>
inline void run_segment(int64_t n, const std::array<int64_t, 3>& s, F&& f) {
  if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
    for (int64_t i = 0; i < n; ++i) f(i, i, i);
  } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {
    for (int64_t i = 0; i < n; ++i) f(i, 0, i);
  } else if (s[0] == 0 && s[1] == 1 && s[2] == 1) {
    for (int64_t i = 0; i < n; ++i) f(0, i, i);
  } else {
    for (int64_t i = 0; i < n; ++i) f(i * s[0], i * s[1], i * s[2]);
  }
}

template <typename F>
inline void run_segment(int64_t n, const std::array<int64_t, 4>& s, F&& f) {
  if (s[0] == 1 && s[1] == 1 && s[2] == 1 && s[3] == 1) {
    for (int64_t i = 0; i < n; ++i) f(i, i, i, i);
  } else {
    for (int64_t i = 0; i < n; ++i) f(i * s[0], i * s[1], i * s[2], i * s[3]);
  }
}

}  // namespace vimoe::cpu
