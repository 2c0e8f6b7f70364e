#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

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

// ---- cuBLASLt with epilogues ---------------------------------------------------------------
//
// The swap of gemm_strided_batched again: row-major C = op(A) op(B) [m, n] is column-major
// D = C^T [n, m] = op(B)^T op(A)^T, so cuBLASLt's "A" is our B (op from trans_b) and its "B"
// is our A (op from trans_a); D has n rows and m columns, leading dimension ldc.
// The epilogues, read in that column-major frame (cublasLt.h):
//   - CUBLASLT_EPILOGUE_BIAS adds a vector whose length is the number of rows of D, broadcast
//     over D's columns: n values, one per column of our row-major C. That is GemmEpilogue::Bias.
//   - CUBLASLT_EPILOGUE_BGRADA writes the sums of cuBLASLt's op(A) over k, one per row of D:
//     op_lt(A) = op(B)^T [n, k], so bgrad[j] = sum_p op(B)[p, j]: GemmEpilogue::BiasGradB.
//   - CUBLASLT_EPILOGUE_BGRADB writes the sums of cuBLASLt's op(B) over k, one per column of
//     D: op_lt(B) = op(A)^T [k, m], so bgrad[i] = sum_p op(A)[i, p]: GemmEpilogue::BiasGradA.
// linear's weight gradient is gw = g^T @ x (our A = g stored [rows, out] with trans_a, so
// op(A) = g^T [out, rows], k = rows): its bias gradient, the column sums of g, is BiasGradA,
// i.e. CUBLASLT_EPILOGUE_BGRADB -- the operand that holds g is cuBLASLt's B.
namespace {

// cuBLASLt's heuristic assumes 256-byte aligned buffers unless told otherwise; this is the
// alignment to tell it (the largest power of two dividing the address, at most 256).
uint32_t alignment_of(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  if (v == 0) return 256;
  const uintptr_t low = v & (~v + 1);
  return low >= 256 ? 256u : static_cast<uint32_t>(low);
}

struct LtKey {
  cublasLtHandle_t handle;
  int dtype;
  bool ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
  int epilogue;
  uint32_t align_a, align_b, align_c, align_v;
  size_t workspace;
  auto tie() const {
    return std::tie(handle, dtype, ta, tb, m, n, k, lda, ldb, ldc, epilogue, align_a, align_b,
                    align_c, align_v, workspace);
  }
  bool operator<(const LtKey& o) const { return tie() < o.tie(); }
};

// A problem's descriptors and chosen algorithm; `found` false records that cuBLASLt has none
// (so the refusal costs one map look-up next time).
struct LtPlan {
  bool found = false;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t layout_a = nullptr, layout_b = nullptr, layout_c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (layout_c) cublasLtMatrixLayoutDestroy(layout_c);
    if (layout_b) cublasLtMatrixLayoutDestroy(layout_b);
    if (layout_a) cublasLtMatrixLayoutDestroy(layout_a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

// Training touches a handful of shapes; a cap keeps a stream of odd shapes (a last partial
// batch per epoch, evaluation sizes) from growing the map without bound. Dropping everything
// at the cap is crude but rare, and only costs new heuristic queries.
constexpr size_t kMaxLtPlans = 1024;

struct LtCache {
  std::mutex mu;
  std::map<LtKey, std::unique_ptr<LtPlan>> plans;
};
LtCache& lt_cache() {
  static LtCache c;
  return c;
}

#define VIMOE_LT_TRY(expr)                            \
  do {                                                \
    const cublasStatus_t vimoe_lt_st_ = (expr);       \
    if (vimoe_lt_st_ != CUBLAS_STATUS_SUCCESS) return vimoe_lt_st_; \
  } while (0)

template <class T>
cublasStatus_t set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& v) {
  return cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof(v));
}
template <class T>
cublasStatus_t set_pref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr,
                        const T& v) {
  return cublasLtMatmulPreferenceSetAttribute(p, attr, &v, sizeof(v));
}

cublasLtEpilogue_t lt_epilogue(GemmEpilogue e) {
  switch (e) {
    case GemmEpilogue::Bias: return CUBLASLT_EPILOGUE_BIAS;
    case GemmEpilogue::BiasGradA: return CUBLASLT_EPILOGUE_BGRADB;  // see the swap above
    case GemmEpilogue::BiasGradB: return CUBLASLT_EPILOGUE_BGRADA;
    default: return CUBLASLT_EPILOGUE_DEFAULT;
  }
}

struct PreferenceGuard {
  cublasLtMatmulPreference_t p = nullptr;
  ~PreferenceGuard() {
    if (p) cublasLtMatmulPreferenceDestroy(p);
  }
};

// Fills `plan` for `key` (vec: the bias or bias-gradient pointer, whose value the heuristic
// reads for its alignment). Returns a failure status only for errors that are not "cuBLASLt
// cannot do this problem"; those leave plan.found false and return SUCCESS.
cublasStatus_t build_plan(const LtKey& key, cudaDataType_t type, const void* vec, LtPlan& plan) {
  VIMOE_LT_TRY(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_lt_a = key.tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // our B
  const cublasOperation_t op_lt_b = key.ta ? CUBLAS_OP_T : CUBLAS_OP_N;  // our A
  VIMOE_LT_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, op_lt_a));
  VIMOE_LT_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, op_lt_b));
  const GemmEpilogue epi = static_cast<GemmEpilogue>(key.epilogue);
  VIMOE_LT_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, lt_epilogue(epi)));
  if (epi != GemmEpilogue::None) {
    // The vector's type: the output type for every dtype offered here (bf16 bias for a bf16
    // D, f32 for f32). It is also the default; set so the plan does not rely on that.
    const int32_t vec_type = static_cast<int32_t>(type);
    VIMOE_LT_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, vec_type));
    VIMOE_LT_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, vec));
  }
  // Column-major layouts (rows, cols, ld) of what cuBLASLt reads: its A is our B as stored
  // ([k, n] row-major = [n, k] column-major; transposed: [k, n]), its B our A likewise.
  const uint64_t m = static_cast<uint64_t>(key.m), n = static_cast<uint64_t>(key.n),
                 k = static_cast<uint64_t>(key.k);
  VIMOE_LT_TRY(cublasLtMatrixLayoutCreate(&plan.layout_a, type, key.tb ? k : n, key.tb ? n : k,
                                          key.ldb));
  VIMOE_LT_TRY(cublasLtMatrixLayoutCreate(&plan.layout_b, type, key.ta ? m : k, key.ta ? k : m,
                                          key.lda));
  VIMOE_LT_TRY(cublasLtMatrixLayoutCreate(&plan.layout_c, type, n, m, key.ldc));

  PreferenceGuard pref;
  VIMOE_LT_TRY(cublasLtMatmulPreferenceCreate(&pref.p));
  VIMOE_LT_TRY(set_pref(pref.p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                        static_cast<uint64_t>(key.workspace)));
  VIMOE_LT_TRY(set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b));
  VIMOE_LT_TRY(set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a));
  VIMOE_LT_TRY(set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c));
  VIMOE_LT_TRY(set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c));

  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
      key.handle, plan.desc, plan.layout_a, plan.layout_b, plan.layout_c, plan.layout_c, pref.p,
      1, &result, &returned);
  // NOT_SUPPORTED is the documented "no algorithm"; INVALID_VALUE is what some releases give
  // for an epilogue / type combination they do not implement. Both mean: take another path.
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) return CUBLAS_STATUS_SUCCESS;
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (returned < 1 || result.state != CUBLAS_STATUS_SUCCESS ||
      result.workspaceSize > key.workspace)
    return CUBLAS_STATUS_SUCCESS;
  plan.algo = result.algo;
  plan.found = true;
  return CUBLAS_STATUS_SUCCESS;
}

#undef VIMOE_LT_TRY

}  // namespace

cublasStatus_t gemm_lt(cublasLtHandle_t handle, DType dtype, bool trans_a, bool trans_b,
                       int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, const void* b,
                       int64_t ldb, void* c, int64_t ldc, GemmEpilogue epilogue, const void* bias,
                       void* bias_grad, void* workspace, size_t workspace_bytes,
                       cudaStream_t stream) {
  if (m <= 0 || n <= 0 || k <= 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || ldc < n)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!a || !b || !c || (workspace_bytes > 0 && !workspace)) return CUBLAS_STATUS_INVALID_VALUE;
  const bool wants_bias = epilogue == GemmEpilogue::Bias;
  const bool wants_grad = epilogue == GemmEpilogue::BiasGradA || epilogue == GemmEpilogue::BiasGradB;
  if ((bias != nullptr) != wants_bias || (bias_grad != nullptr) != wants_grad)
    return CUBLAS_STATUS_INVALID_VALUE;

  cudaDataType_t type;
  switch (dtype) {
    case DType::F32: type = CUDA_R_32F; break;
    case DType::BF16: type = CUDA_R_16BF; break;
    case DType::F16: type = CUDA_R_16F; break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;  // f64 keeps cuBLAS; integers have no GEMM
  }
  // The vectorised kernels read 16 bytes at a time; below that, leave the problem to the
  // plain cuBLAS path rather than to whichever slow kernel the heuristic might still offer.
  const void* vec = wants_bias ? bias : bias_grad;
  const uint32_t al_a = alignment_of(a), al_b = alignment_of(b), al_c = alignment_of(c),
                 al_v = vec ? alignment_of(vec) : 256u;
  if (al_a < 16 || al_b < 16 || al_c < 16 || al_v < 16) return CUBLAS_STATUS_NOT_SUPPORTED;

  const LtKey key{handle, static_cast<int>(dtype), trans_a, trans_b, m, n, k, lda, ldb, ldc,
                  static_cast<int>(epilogue), al_a, al_b, al_c, al_v, workspace_bytes};
  LtCache& cache = lt_cache();
  // Held through the launch: the plan's descriptor gets this call's vector pointer.
  std::lock_guard<std::mutex> lock(cache.mu);
  auto it = cache.plans.find(key);
  if (it == cache.plans.end()) {
    auto plan = std::make_unique<LtPlan>();
    const cublasStatus_t st = build_plan(key, type, vec, *plan);
    if (st != CUBLAS_STATUS_SUCCESS) return st;  // not cached: may be transient
    if (cache.plans.size() >= kMaxLtPlans) cache.plans.clear();
    it = cache.plans.emplace(key, std::move(plan)).first;
  }
  LtPlan& plan = *it->second;
  if (!plan.found) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (vec) {
    const cublasStatus_t st =
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &vec, sizeof(vec));
    if (st != CUBLAS_STATUS_SUCCESS) return st;
  }
  const float alpha = 1.0f, beta = 0.0f;  // scale type f32 (CUBLAS_COMPUTE_32F)
  return cublasLtMatmul(handle, plan.desc, &alpha, b, plan.layout_a, a, plan.layout_b, &beta, c,
                        plan.layout_c, c, plan.layout_c, &plan.algo, workspace, workspace_bytes,
                        stream);
}

size_t gemm_lt_cached_plans() {
  LtCache& cache = lt_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  return cache.plans.size();
}

}  // namespace vimoe::kernels
