// CPU reference for matrix products: OpenBLAS sgemm / dgemm, one call per batch entry, or for
// a large product one call per block of C, the blocks spread over the engine's CPU threads
// (the BLAS itself is kept single-threaded; see linalg.cpp). The blocks depend only on the
// shape, so results do not depend on the number of threads.
// bf16 / f16 operands are widened to f32, multiplied with f32 accumulation and rounded back
// once, which is what the CUDA path (cuBLAS with an f32 compute type) does too.
#pragma once
#include <cstdint>

#include "engine/dtype.h"

namespace vimoe::cpu {

// Row-major strided-batched GEMM; for i in [0, batch):
//   C_i = alpha * op(A_i) @ op(B_i) + beta * C_i,
// where A_i starts stride_a elements after A_{i-1} (likewise B_i, C_i; a stride of 0 shares
// one matrix across the batch). op(A_i) is [m, k]: A_i is stored row-major [m, k]
// (trans_a false) or [k, m] (trans_a true) with leading dimension lda >= its stored column
// count; likewise op(B_i) is [k, n]; C_i is [m, n] with ldc >= n. With beta == 0, C is
// not read. Sizes must fit the BLAS integer; integer dtypes throw.
void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const void* a, int64_t lda, int64_t stride_a, const void* b, int64_t ldb,
          int64_t stride_b, double beta, void* c, int64_t ldc, int64_t stride_c, int64_t batch);

}  // namespace vimoe::cpu
