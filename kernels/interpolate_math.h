// Bilinear resampling along one axis, PyTorch's align_corners=False convention, written once
// for the CPU reference and the CUDA kernels (host + device functions):
//   scale = in / out;  src(o) = max(0, (o + 0.5) * scale - 0.5);
//   i0 = floor(src), i1 = min(i0 + 1, in - 1), l1 = src - i0, l0 = 1 - l1;
//   y[o] = l0 * x[i0] + l1 * x[i1]
// (at the last input index i1 == i0 and the two weights land on the same element). The
// source position is computed in the compute type A as PyTorch's kernels do (float for
// f32 / bf16 / f16 storage, double for f64), so both backends pick the same neighbours.
#pragma once
#include <stdint.h>

#include "kernels/strided.h"  // VIMOE_HOST_DEVICE

namespace vimoe::kernels {

template <typename A>
struct LinearTap {
  int64_t i0 = 0, i1 = 0;
  A l0 = A(1), l1 = A(0);
};

template <typename A>
VIMOE_HOST_DEVICE inline LinearTap<A> linear_tap(int64_t o, int64_t in, int64_t out) {
  const A scale = static_cast<A>(in) / static_cast<A>(out);
  A src = (static_cast<A>(o) + A(0.5)) * scale - A(0.5);
  if (src < A(0)) src = A(0);
  LinearTap<A> t;
  t.i0 = static_cast<int64_t>(src);
  if (t.i0 > in - 1) t.i0 = in - 1;
  t.i1 = t.i0 < in - 1 ? t.i0 + 1 : t.i0;
  t.l1 = src - static_cast<A>(t.i0);
  t.l0 = A(1) - t.l1;
  return t;
}

// The weight output o gives input i (0 when o does not read i).
template <typename A>
VIMOE_HOST_DEVICE inline A linear_weight(const LinearTap<A>& t, int64_t i) {
  return (t.i0 == i ? t.l0 : A(0)) + (t.i1 == i ? t.l1 : A(0));
}

// The outputs [first, last] that read input i: i0(o) is non-decreasing in o, and o reads i
// only when i0(o) is i - 1 or i. For the backward's gather (each input element sums its
// outputs in order: no atomics, reproducible). Empty when first > last.
template <typename A>
VIMOE_HOST_DEVICE inline void linear_readers(int64_t i, int64_t in, int64_t out, int64_t* first, int64_t* last) {
  // first: the smallest o with i0(o) >= i - 1; last: the largest o with i0(o) <= i.
  int64_t lo = 0, hi = out;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (linear_tap<A>(mid, in, out).i0 >= i - 1) hi = mid;
    else lo = mid + 1;
  }
  *first = lo;
  lo = 0;
  hi = out;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (linear_tap<A>(mid, in, out).i0 <= i) lo = mid + 1;
    else hi = mid;
  }
  *last = lo - 1;
}

}  // namespace vimoe::kernels
