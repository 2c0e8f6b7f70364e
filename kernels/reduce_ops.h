// Row reductions shared by the CPU reference and the CUDA kernels: the input is viewed as
// [rows, cols] (the reduced axes moved last and made contiguous) and each row becomes one value.
#pragma once
#include <math.h>

#include <cstdint>
#include <type_traits>

#include "kernels/strided.h"  // VIMOE_HOST_DEVICE

namespace vimoe::kernels {

// Sum and Mean share one kernel: Mean divides the row sum by the row length at the end.
enum class ReduceOp : uint8_t { Sum, Mean };

// The order max/argmax use on both backends, in the compute type (float for half types,
// int64 for integers). NaN ranks above every number, as in PyTorch, where max propagates
// NaN and argmax points at it. A running best is replaced only when `cand` strictly beats
// it, which keeps the FIRST maximal element (first NaN, first of equal values).
template <typename T>
VIMOE_HOST_DEVICE inline bool max_beats(T cand, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    if (cand != cand) return best == best;  // NaN beats any number, but not an earlier NaN
  }
  return cand > best;  // false when best is NaN
}

// Combining two partial results (value, index) of one row in any order: the better value
// wins, a tie goes to the smaller index, and index -1 marks "no element seen". This is a
// total order, so a parallel tree gives the same answer as the sequential scan.
template <typename T>
VIMOE_HOST_DEVICE inline bool max_pair_beats(T cand, int64_t cand_index, T best,
                                             int64_t best_index) {
  if (cand_index < 0) return false;
  if (best_index < 0) return true;
  if (max_beats(cand, best)) return true;
  return !max_beats(best, cand) && cand_index < best_index;
}

// ---- softmax statistics (softmax, log_softmax, cross_entropy) ---------------------------
// Global C functions: the engine's vimoe::exp(Tensor) would hide unqualified names.
template <typename A>
VIMOE_HOST_DEVICE inline A exp_of(A v) {
  if constexpr (std::is_same_v<A, float>) return ::expf(v);
  else return ::exp(v);
}
template <typename A>
VIMOE_HOST_DEVICE inline A log_of(A v) {
  if constexpr (std::is_same_v<A, float>) return ::logf(v);
  else return ::log(v);
}

// Running statistics of a row in one pass ("online softmax"): m is the largest value seen
// and s the sum of exp(value - m); start from m = -inf, s = 0. A -inf element adds nothing
// (and must be skipped: -inf - -inf is NaN); a NaN element makes s NaN, so the whole row
// comes out NaN, as in PyTorch. A row of only -inf ends with s = 0 and gives NaN too.
template <typename A>
VIMOE_HOST_DEVICE inline void softmax_stats_add(A& m, A& s, A x) {
  if (x > m) {
    s = s * exp_of(m - x) + A(1);  // exp(-inf) = 0 for the first element
    m = x;
  } else if (x != -A(INFINITY)) {
    s += exp_of(x - m);
  }
}

// Merges the statistics (m2, s2) of other elements of the same row into (m, s). Symmetric
// in its two operands bit for bit, so a butterfly leaves every lane with the same result.
template <typename A>
VIMOE_HOST_DEVICE inline void softmax_stats_merge(A& m, A& s, A m2, A s2) {
  const A mm = m > m2 ? m : m2;
  // s == 0: that part saw only -inf (or nothing) and contributes nothing.
  const A a = s == A(0) ? A(0) : (m == mm ? s : s * exp_of(m - mm));
  const A b = s2 == A(0) ? A(0) : (m2 == mm ? s2 : s2 * exp_of(m2 - mm));
  m = mm;
  s = a + b;
}

}  // namespace vimoe::kernels
