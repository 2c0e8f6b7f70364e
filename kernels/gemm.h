// Dense matrix products on the GPU over row-major matrices: a cuBLAS strided-batched GEMM,
// and a single cuBLASLt GEMM with a fused epilogue (bias add, bias gradient). Plain C++ (raw
// pointers, sizes, a handle, a stream), so a test or a port can call them without the engine.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// Row-major strided-batched GEMM; for i in [0, batch):
//   C_i = alpha * op(A_i) @ op(B_i) + beta * C_i,
// where A_i starts stride_a elements after A_{i-1} (likewise B_i, C_i; a stride of 0 shares
// one matrix across the batch; the C_i must not overlap). op(A_i) is [m, k]: A_i is stored
// row-major [m, k] (trans_a false) or [k, m] (trans_a true) with leading dimension lda >= its
// stored column count; likewise op(B_i) is [k, n]; C_i is [m, n] with ldc >= n.
// All three share `dtype`. f32 accumulates in f32 without TF32 (the handle must keep the
// default math mode), bf16 / f16 accumulate in f32, f64 in f64.
// m, n or batch == 0 does nothing. k == 0 (C = beta * C, no product), sizes or leading
// dimensions beyond int, and integer dtypes return CUBLAS_STATUS_INVALID_VALUE /
// CUBLAS_STATUS_NOT_SUPPORTED without launching anything.
cublasStatus_t gemm_strided_batched(cublasHandle_t handle, DType dtype, bool trans_a,
                                    bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                                    const void* a, int64_t lda, int64_t stride_a, const void* b,
                                    int64_t ldb, int64_t stride_b, double beta, void* c,
                                    int64_t ldc, int64_t stride_c, int64_t batch);

// What gemm_lt does besides the product C = op(A) @ op(B) ([m, n], row-major), stated in the
// row-major terms of its arguments (gemm.cu maps them onto cuBLASLt's column-major epilogues).
enum class GemmEpilogue {
  None,       // C = op(A) @ op(B)
  Bias,       // C[i, j] = (op(A) @ op(B))[i, j] + bias[j]: `bias` holds n elements, one per
              // column of C (nn.Linear's bias over the rows of x @ w^T)
  BiasGradA,  // C = op(A) @ op(B), and bias_grad[i] = sum_p op(A)[i, p]: m elements, the sums
              // of op(A) over the shared dimension k (linear's bias gradient when
              // op(A) = g^T, i.e. the weight gradient g^T @ x)
  BiasGradB,  // C = op(A) @ op(B), and bias_grad[j] = sum_p op(B)[p, j]: n elements
};

// One row-major GEMM through cuBLASLt with a fused epilogue:
//   C = op(A) @ op(B) (+ bias, or also writing bias_grad; see GemmEpilogue),
// with op(A) [m, k], op(B) [k, n] and C [m, n] laid out as for gemm_strided_batched (A stored
// [m, k] or, with trans_a, [k, m], leading dimension lda >= its stored column count; likewise
// B; ldc >= n). C is overwritten (beta = 0) and must not overlap A, B or the vectors. A, B,
// C, bias and bias_grad all have `dtype`; bias / bias_grad are dense vectors.
//   f32: CUBLAS_COMPUTE_32F, strict f32 (no TF32); bf16 / f16: f32 accumulation, the bias
//   added in f32 before the one rounding of each output, the bias gradient summed in f32
//   and rounded once. f64 and integer dtypes are not offered here (NOT_SUPPORTED).
// `bias` must be non-null exactly for Bias and `bias_grad` exactly for BiasGradA / B.
// The work is enqueued on `stream` (asynchronous); `workspace` (workspace_bytes, may be 0
// with a null pointer) must stay reserved for that stream until the GEMM has run.
// Thread-safe: the per-problem plans (descriptors, layouts, the chosen algorithm) are cached
// inside, keyed on every value that can change the choice (handle, dtype, transposes, sizes,
// leading dimensions, epilogue, pointer alignments, workspace size), so one problem always
// runs the same algorithm (and gives the same bits).
// Returns
//   CUBLAS_STATUS_SUCCESS        the GEMM (and epilogue) is enqueued;
//   CUBLAS_STATUS_NOT_SUPPORTED  nothing was launched and the caller should take another
//                                path: a dtype other than f32 / bf16 / f16, a pointer (A, B,
//                                C, bias, bias_grad) not 16-byte aligned, or no cuBLASLt
//                                algorithm for this problem and epilogue;
//   CUBLAS_STATUS_INVALID_VALUE  nothing was launched: m, n or k <= 0, a leading dimension
//                                below its minimum, or the bias / bias_grad pointers do not
//                                match the epilogue;
//   anything else                cublasLtMatmul's own failure.
cublasStatus_t gemm_lt(cublasLtHandle_t handle, DType dtype, bool trans_a, bool trans_b,
                       int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, const void* b,
                       int64_t ldb, void* c, int64_t ldc, GemmEpilogue epilogue, const void* bias,
                       void* bias_grad, void* workspace, size_t workspace_bytes,
                       cudaStream_t stream);

// The number of problems gemm_lt holds a plan for (for tests of the cache).
size_t gemm_lt_cached_plans();

}  // namespace vimoe::kernels
