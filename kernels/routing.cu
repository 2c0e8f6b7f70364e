#include <cfloat>

#include "kernels/dispatch.cuh"
#include "kernels/routing.h"

namespace vimoe::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr unsigned kFull = 0xffffffffu;

template <typename T> __device__ T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
template <typename T> __device__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Row r is handled by one warp; lane l owns experts l and l + 32.
template <typename T>
__global__ void routing_forward_kernel(const T* __restrict__ logits, int64_t rows, int n, int k,
                                       bool renormalize, T* __restrict__ probs,
                                       int32_t* __restrict__ ids, T* __restrict__ gates,
                                       int32_t* __restrict__ counts) {
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (r >= rows) return;  // whole warps leave together
  const T neg_inf = -INFINITY;
  const T* x = logits + r * n;
  const T v0 = lane < n ? x[lane] : neg_inf;
  const T v1 = lane + 32 < n ? x[lane + 32] : neg_inf;
  const T m = warp_max(max(v0, v1));
  const T e0 = lane < n ? exp(v0 - m) : T(0);
  const T e1 = lane + 32 < n ? exp(v1 - m) : T(0);
  const T z = warp_sum(e0 + e1);
  const T p0 = e0 / z, p1 = e1 / z;
  if (lane < n) probs[r * n + lane] = p0;
  if (lane + 32 < n) probs[r * n + lane + 32] = p1;

  // k rounds of a warp-wide argmax; ties go to the lower expert index, as on the CPU.
  bool taken0 = lane >= n, taken1 = lane + 32 >= n;
  T chosen_sum = 0;
  for (int j = 0; j < k; ++j) {
    T best = -1;
    int best_i = n;
    if (!taken0) { best = p0; best_i = lane; }
    if (!taken1 && p1 > best) { best = p1; best_i = lane + 32; }
    for (int o = 16; o > 0; o >>= 1) {
      const T ov = __shfl_xor_sync(kFull, best, o);
      const int oi = __shfl_xor_sync(kFull, best_i, o);
      if (ov > best || (ov == best && oi < best_i)) { best = ov; best_i = oi; }
    }
    if (best_i == lane) taken0 = true;
    if (best_i == lane + 32) taken1 = true;
    chosen_sum += best;
    if (lane == 0) {
      ids[r * k + j] = best_i;
      gates[r * k + j] = best;
      if (j == 0) atomicAdd(counts + best_i, 1);
    }
  }
  if (renormalize) {
    // The top probability of a max-shifted softmax is 1 / z >= 1 / n, so chosen_sum > 0 for
    // every finite row; the guard keeps a row whose chosen probabilities are all zero (which
    // only a change upstream could produce) at zero gates instead of 0 / 0 = NaN. The CPU
    // reference guards the same way.
    const T denom = chosen_sum > T(0) ? chosen_sum : T(1);
    __syncwarp();  // lane 0's gate writes are visible to the lanes that rescale them
    for (int j = lane; j < k; j += 32) gates[r * k + j] /= denom;
  }
}

template <typename T>
__global__ void routing_backward_kernel(const T* __restrict__ probs, const int32_t* __restrict__ ids,
                                        const T* __restrict__ load, const T* __restrict__ dgates,
                                        const T* __restrict__ daux, int64_t rows, int n, int k,
                                        bool renormalize, T alpha, T* __restrict__ dlogits) {
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (r >= rows) return;
  const T* p = probs + r * n;
  const T aux_scale = alpha * T(n) / T(rows) * daux[0];
  const T p0 = lane < n ? p[lane] : T(0), p1 = lane + 32 < n ? p[lane + 32] : T(0);
  T dp0 = lane < n ? aux_scale * load[lane] : T(0);
  T dp1 = lane + 32 < n ? aux_scale * load[lane + 32] : T(0);
  // Renormalised gates g_j = p_j / S: dL/dp_m = dg_m / S - sum_j dg_j p_j / S^2.
  T S = 1, dot = 0;
  if (renormalize) {
    T s_part = 0, dot_part = 0;
    for (int j = lane; j < k; j += 32) {
      const T pj = p[ids[r * k + j]];
      s_part += pj;
      dot_part += dgates[r * k + j] * pj;
    }
    S = warp_sum(s_part);
    dot = warp_sum(dot_part);
    if (!(S > T(0))) S = 1;  // as in the forward: zero chosen probabilities, zero gates
  }
  for (int j = 0; j < k; ++j) {
    const int e = ids[r * k + j];
    const T c = renormalize ? dgates[r * k + j] / S - dot / (S * S) : dgates[r * k + j];
    if (e == lane) dp0 += c;
    if (e == lane + 32) dp1 += c;
  }
  const T s = warp_sum(dp0 * p0 + dp1 * p1);
  if (lane < n) dlogits[r * n + lane] = p0 * (dp0 - s);
  if (lane + 32 < n) dlogits[r * n + lane + 32] = p1 * (dp1 - s);
}

unsigned blocks_for(int64_t rows) {
  return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

cudaError_t routing_forward(DType dtype, const void* logits, int64_t rows, int experts, int k,
                            bool renormalize, void* probs, int32_t* ids, void* gates,
                            int32_t* top1_counts, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (experts < 1 || experts > 64 || k < 1 || k > experts) return cudaErrorInvalidValue;
  const unsigned grid = blocks_for(rows);
  if (dtype == DType::F32) {
    routing_forward_kernel<float><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(
        static_cast<const float*>(logits), rows, experts, k, renormalize,
        static_cast<float*>(probs), ids, static_cast<float*>(gates), top1_counts);
  } else if (dtype == DType::F64) {
    routing_forward_kernel<double><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(
        static_cast<const double*>(logits), rows, experts, k, renormalize,
        static_cast<double*>(probs), ids, static_cast<double*>(gates), top1_counts);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t routing_backward(DType dtype, const void* probs, const int32_t* ids, const void* load,
                             const void* dgates, const void* daux, int64_t rows, int experts,
                             int k, bool renormalize, double alpha, void* dlogits,
                             cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (experts < 1 || experts > 64 || k < 1 || k > experts) return cudaErrorInvalidValue;
  const unsigned grid = blocks_for(rows);
  if (dtype == DType::F32) {
    routing_backward_kernel<float><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(
        static_cast<const float*>(probs), ids, static_cast<const float*>(load),
        static_cast<const float*>(dgates), static_cast<const float*>(daux), rows, experts, k,
        renormalize, static_cast<float>(alpha), static_cast<float*>(dlogits));
  } else if (dtype == DType::F64) {
    routing_backward_kernel<double><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(
        static_cast<const double*>(probs), ids, static_cast<const double*>(load),
        static_cast<const double*>(dgates), static_cast<const double*>(daux), rows, experts, k,
        renormalize, alpha, static_cast<double*>(dlogits));
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
