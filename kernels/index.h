// CUDA concatenation and indexing kernels: concat, index_select / index_add (1-D index
// along one axis), gather / scatter_add (element-wise index), one_hot and topk.
//
// Bad indices. The indexing kernels never touch memory through an index outside
// [0, bound) (negative ones included: they are not wrapped). Instead they lower `*bad`, a
// device word that the launcher first sets to kNoBadIndex, to the row-major position of the
// offending entry of the index tensor (atomicMin, so the first bad position wins, as in the
// CPU reference). The caller reads the word back after the launch and raises the error.
//
// Accumulation. index_add and scatter_add add with atomics, so the order in which repeated
// indices accumulate (and so the last bits of an f32/f64 result) varies from run to run.
// They accumulate into an `acc_dtype` buffer that already holds x: f32, f64, i32 or i64
// add into their own type; bf16 and f16 sources add into an f32 buffer that the caller
// rounds once at the end (fewer rounding steps than bf16 atomics, and no sm_80+ atomic).
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/dtype.h"
#include "kernels/strided.h"

namespace vimoe::kernels {

constexpr unsigned long long kNoBadIndex = ~0ull;

// The iteration shape of gather / scatter_add (the index tensor's shape).
struct IndexShape {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
};

// ---- concat --------------------------------------------------------------------------

// One input of a concatenation. `layout` is the input's own (possibly strided) layout over
// its storage base `data`; logically the input is [outer, size, inner] and lands at
// positions [start, start + size) of the output's concatenation axis.
struct ConcatSource {
  const void* data = nullptr;
  StridedLayout layout;
  int64_t start = 0;
  int64_t size = 0;
};
// Sources per launch (they travel in the kernel's parameter block); more are batched.
constexpr int kConcatMaxSources = 8;

// out: contiguous [outer, out_size, inner] of `dtype`; every source already has `dtype`.
cudaError_t concat(DType dtype, const ConcatSource* sources, int n_sources, void* out,
                   int64_t outer, int64_t out_size, int64_t inner, cudaStream_t stream);

// ---- 1-D index along one axis --------------------------------------------------------

// out (contiguous [outer, n, inner]) [o, j, k] = x[o, index[j], k], where x is logically
// [outer, bound, inner] with layout x_layout over storage base x. index: n contiguous i32/i64.
cudaError_t index_select(DType dtype, const void* x, const StridedLayout& x_layout,
                         DType index_dtype, const void* index, int64_t n, void* out,
                         int64_t outer, int64_t bound, int64_t inner, unsigned long long* bad,
                         cudaStream_t stream);

// out (contiguous [outer, bound, inner] of acc_dtype, holding x) [o, index[j], k] +=
// src[o, j, k], where src is logically [outer, n, inner] of src_dtype with layout src_layout.
cudaError_t index_add(DType acc_dtype, void* out, DType src_dtype, const void* src,
                      const StridedLayout& src_layout, DType index_dtype, const void* index,
                      int64_t n, int64_t outer, int64_t bound, int64_t inner,
                      unsigned long long* bad, cudaStream_t stream);

// ---- element-wise index (gather / scatter_add) ---------------------------------------

// For every position p of `shape` (row-major, position i): out[i] = x[p with p[dim] =
// index[i]]. out and index are contiguous with `shape`; x_layout is x's full-rank layout
// (same rank as shape; its sizes[dim] is the bound).
cudaError_t gather(DType dtype, const void* x, const StridedLayout& x_layout, DType index_dtype,
                   const void* index, const IndexShape& shape, int dim, void* out,
                   unsigned long long* bad, cudaStream_t stream);

// For every position p of `shape` (position i): out[p with p[dim] = index[i]] += src[p].
// out is the acc_dtype buffer holding x (full-rank out_layout; sizes[dim] is the bound);
// src (src_dtype, full-rank src_layout) is at least `shape` in every axis.
cudaError_t scatter_add(DType acc_dtype, void* out, const StridedLayout& out_layout,
                        DType src_dtype, const void* src, const StridedLayout& src_layout,
                        DType index_dtype, const void* index, const IndexShape& shape, int dim,
                        unsigned long long* bad, cudaStream_t stream);

// ---- one_hot, topk -------------------------------------------------------------------

// out (contiguous [n, num_classes] of out_dtype) = 1 where the column equals index[row].
cudaError_t one_hot(DType index_dtype, const void* index, int64_t n, int64_t num_classes,
                    DType out_dtype, void* out, unsigned long long* bad, cudaStream_t stream);

// For each row of a contiguous [rows, cols] input: the k best entries, best first (largest
// or smallest; NaN above every number; ties to the lower column), into contiguous
// [rows, k] values (dtype) and i64 indices. Requires 0 <= k <= cols.
cudaError_t topk(DType dtype, const void* in, int64_t rows, int64_t cols, int64_t k,
                 bool largest, void* values, int64_t* indices, cudaStream_t stream);

}  // namespace vimoe::kernels
