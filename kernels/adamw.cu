#include "kernels/adamw.h"
#include "kernels/dispatch.cuh"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void adamw_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                             T* __restrict__ v, int64_t n, AdamWParams s) {
  const T decay = T(1) - T(s.lr) * T(s.weight_decay);
  const T step_size = T(s.lr) / T(s.bias_correction1);
  const T root_bc2 = sqrt(T(s.bias_correction2));
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T gi = g[i];
    const T mi = T(s.beta1) * m[i] + (T(1) - T(s.beta1)) * gi;
    const T vi = T(s.beta2) * v[i] + (T(1) - T(s.beta2)) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (sqrt(vi) / root_bc2 + T(s.eps));
  }
}

}  // namespace

cudaError_t adamw_update(DType dtype, void* param, const void* grad, void* exp_avg,
                         void* exp_avg_sq, int64_t n, const AdamWParams& s, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const unsigned grid = grid_for(n, kBlock);
  if (dtype == DType::F32) {
    adamw_kernel<float><<<grid, kBlock, 0, stream>>>(
        static_cast<float*>(param), static_cast<const float*>(grad), static_cast<float*>(exp_avg),
        static_cast<float*>(exp_avg_sq), n, s);
  } else if (dtype == DType::F64) {
    adamw_kernel<double><<<grid, kBlock, 0, stream>>>(
        static_cast<double*>(param), static_cast<const double*>(grad),
        static_cast<double*>(exp_avg), static_cast<double*>(exp_avg_sq), n, s);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
