#include <climits>

#include "kernels/gemm.h"

namespace vimoe::kernels {
namespace {

// Some cuBLAS releases fail strided-batched calls with more than 65535 entries on some
// architectures (PyTorch chunks for the same reason); a few extra calls cost nothing.
constexpr int64_t kMaxBatchPerCall = 63 * 1024;

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

}  // namespace

cublasStatus_t gemm_strided_batched(cublasHandle_t handle, DType dtype, bool trans_a,
                                    bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                                    const void* a, int64_t lda, int64_t stride_a, const void* b,
                                    int64_t ldb, int64_t stride_b, double beta, void* c,
                                    int64_t ldc, int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  if (k <= 0 || !fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) ||
      !fits_int(ldb) || !fits_int(ldc) || batch < 0)
    return CUBLAS_STATUS_INVALID_VALUE;

  cudaDataType_t type;
  cublasComputeType_t compute;
  int64_t elem;
  switch (dtype) {
    case DType::F32: type = CUDA_R_32F; compute = CUBLAS_COMPUTE_32F; elem = 4; break;
    case DType::F64: type = CUDA_R_64F; compute = CUBLAS_COMPUTE_64F; elem = 8; break;
    case DType::BF16: type = CUDA_R_16BF; compute = CUBLAS_COMPUTE_32F; elem = 2; break;
    case DType::F16: type = CUDA_R_16F; compute = CUBLAS_COMPUTE_32F; elem = 2; break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  // alpha and beta are host scalars of the compute type: double for COMPUTE_64F, float
  // otherwise (the handle keeps the default host pointer mode).
  const float alpha_f = static_cast<float>(alpha), beta_f = static_cast<float>(beta);
  const void* alpha_p = compute == CUBLAS_COMPUTE_64F ? static_cast<const void*>(&alpha) : &alpha_f;
  const void* beta_p = compute == CUBLAS_COMPUTE_64F ? static_cast<const void*>(&beta) : &beta_f;

  // cuBLAS is column-major, and a row-major [r, c] matrix is the column-major [c, r] one.
  // So row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: call cuBLAS with
  // the operands swapped (B first), m and n swapped, and each operand's own transpose flag
  // (the storage of B, read column-major, already is op(B)^T unless B is transposed).
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const char* pa = static_cast<const char*>(a);
  const char* pb = static_cast<const char*>(b);
  char* pc = static_cast<char*>(c);
  for (int64_t start = 0; start < batch; start += kMaxBatchPerCall) {
    const int64_t count = batch - start < kMaxBatchPerCall ? batch - start : kMaxBatchPerCall;
    const cublasStatus_t st = cublasGemmStridedBatchedEx(
        handle, op_b, op_a, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
        alpha_p, pb + start * stride_b * elem, type, static_cast<int>(ldb),
        static_cast<long long>(stride_b), pa + start * stride_a * elem, type,
        static_cast<int>(lda), static_cast<long long>(stride_a), beta_p,
        pc + start * stride_c * elem, type, static_cast<int>(ldc),
        static_cast<long long>(stride_c), static_cast<int>(count), compute, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace vimoe::kernels
