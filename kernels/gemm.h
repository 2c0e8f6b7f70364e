// Dense matrix products on the GPU: one cuBLAS strided-batched GEMM over row-major matrices.
// Plain C++ (raw pointers, sizes, a cuBLAS handle the caller has bound to its stream), so a
// test or a port can call it without the engine.
#pragma once
#include <cublas_v2.h>

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

}  // namespace vimoe::kernels
