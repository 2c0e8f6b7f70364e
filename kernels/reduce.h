// CUDA reductions: row reductions over a contiguous [rows, cols] input, column reductions of
// the middle axis of a contiguous [outer, n, inner] input (which with outer = inner = 1 is
// the grid-wide full reduction), and the scatter behind max's backward. Floating inputs
// compute in f32 (f64 for f64), integers in i64. Every result is deterministic: no atomics,
// and every sum is formed in an order fixed by the shape alone (not by the GPU it runs on).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/reduce_ops.h"

namespace vimoe::kernels {

// out[r] = sum (or mean) of in[r, 0..cols). `out_dtype` is the input dtype for floating
// inputs and I64 for integer sums; Mean takes floating inputs only (a row of length 0
// gives 0/0 = NaN, as in PyTorch).
cudaError_t reduce_rows(ReduceOp op, DType in_dtype, const void* in, DType out_dtype, void* out,
                        int64_t rows, int64_t cols, cudaStream_t stream);

// ---- column reductions: the middle axis of a contiguous [outer, n, inner] tensor ----------
// out[o, i] = sum (or mean) over c of in[o, c, i], for any outer, n, inner >= 0, written
// contiguous [outer, inner]. This reduces leading axes (outer = 1), a middle block of axes,
// or everything (outer = inner = 1) where the input lies, without a transposed copy.
//
// How: blocks of 256 threads own a tile of up to 32 consecutive inner columns (all `inner`
// of them when inner < 32, several rows at once) and one part of the n axis; threads of a
// warp read consecutive elements. When the shape leaves too few (outer, tile) blocks to fill
// a GPU, n is split into parts of a fixed length, each block writes its partial sums into
// `workspace`, and a second pass adds the parts in order. The split depends on the shape
// only, so results are bitwise reproducible run after run and across GPUs.
//
// `workspace` holds reduce_cols_workspace(...) bytes (0: may be null); its alignment must be
// that of the accumulation type (8 bytes suffices). Dtypes as for reduce_rows: out_dtype is
// in_dtype for floating inputs and I64 for integer sums; Mean takes floating inputs only
// (n = 0 gives 0/0 = NaN). Returns cudaErrorInvalidValue for a bad dtype pairing or a
// missing workspace.
size_t reduce_cols_workspace(DType in_dtype, int64_t outer, int64_t n, int64_t inner);
cudaError_t reduce_cols(ReduceOp op, DType in_dtype, const void* in, DType out_dtype, void* out,
                        int64_t outer, int64_t n, int64_t inner, void* workspace,
                        cudaStream_t stream);

// out[o, i] = sum_c (in[o, c, i] - mean[o, i])^2 / max(n - correction, 0), the mean taken
// first in a separate pass (as var_rows does), with the layout and split of reduce_cols.
// Floating dtypes only; out has the input dtype.
size_t var_cols_workspace(DType dtype, int64_t outer, int64_t n, int64_t inner);
cudaError_t var_cols(DType dtype, const void* in, void* out, int64_t outer, int64_t n,
                     int64_t inner, int64_t correction, void* workspace, cudaStream_t stream);

// The first maximal element of each row (NaN counts as maximal, see max_beats): its value
// into `values` (dtype, may be null) and its column into `indices` (may be null). cols >= 1.
cudaError_t max_rows(DType dtype, const void* in, void* values, int64_t* indices, int64_t rows,
                     int64_t cols, cudaStream_t stream);

// out[r] = sum_c (in[r, c] - mean_r)^2 / max(cols - correction, 0) by two passes over the
// row (the mean first), which stays accurate when the mean is large against the spread.
// Floating dtypes only.
cudaError_t var_rows(DType dtype, const void* in, void* out, int64_t rows, int64_t cols,
                     int64_t correction, cudaStream_t stream);

// The gradient of a max over the middle axis of a contiguous [outer, n, inner] tensor:
// out[o, c, i] = c == index[o * inner + i] ? grad[o * inner + i] : 0. `grad` and `index`
// are contiguous [outer, inner]; out is contiguous [outer, n, inner]. Floating dtypes only.
cudaError_t max_backward(DType dtype, const void* grad, const int64_t* index, void* out,
                         int64_t outer, int64_t n, int64_t inner, cudaStream_t stream);

}  // namespace vimoe::kernels
