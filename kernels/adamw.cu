#include "kernels/adamw.h"

#include <algorithm>

#include "kernels/dispatch.cuh"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kChunk = 16384;  // elements per block: small tensors get one block each

// Everything one launch needs, passed by value as the kernel's parameter (about 13 KB; kernel
// parameters may take up to 32 KB since CUDA 12.1 on Volta and newer).
struct Launch {
  AdamWTensor tensors[kAdamWTensorsPerLaunch];
  int first_chunk[kAdamWTensorsPerLaunch + 1];  // prefix sums of the tensors' chunk counts
  int count;
};
static_assert(sizeof(Launch) < 32000, "AdamW launch parameters exceed the kernel parameter limit");

template <typename T>
__global__ void __launch_bounds__(kBlock) adamw_kernel(const __grid_constant__ Launch launch, AdamWHyper h) {
  const int chunk = static_cast<int>(blockIdx.x);
  int lo = 0, hi = launch.count;  // first_chunk[lo] <= chunk < first_chunk[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (launch.first_chunk[mid] <= chunk) lo = mid;
    else hi = mid;
  }
  const AdamWTensor& t = launch.tensors[lo];
  T* __restrict__ p = static_cast<T*>(t.param);
  const T* __restrict__ g = static_cast<const T*>(t.grad);
  T* __restrict__ m = static_cast<T*>(t.exp_avg);
  T* __restrict__ v = static_cast<T*>(t.exp_avg_sq);
  const T decay = T(1) - T(t.lr) * T(t.weight_decay);
  const T step_size = T(t.lr) / T(h.bias_correction1);
  const T root_bc2 = sqrt(T(h.bias_correction2));
  const int64_t begin = int64_t(chunk - launch.first_chunk[lo]) * kChunk;
  const int64_t end = begin + kChunk < t.n ? begin + kChunk : t.n;
  for (int64_t i = begin + threadIdx.x; i < end; i += kBlock) {
    const T gi = g[i];
    const T mi = T(h.beta1) * m[i] + (T(1) - T(h.beta1)) * gi;
    const T vi = T(h.beta2) * v[i] + (T(1) - T(h.beta2)) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (sqrt(vi) / root_bc2 + T(h.eps));
  }
}

}  // namespace

cudaError_t adamw_update(DType dtype, const AdamWTensor* tensors, int count, const AdamWHyper& h,
                         cudaStream_t stream) {
  if (dtype != DType::F32 && dtype != DType::F64) return cudaErrorInvalidValue;
  Launch launch;
  for (int first = 0; first < count; first += kAdamWTensorsPerLaunch) {
    launch.count = 0;
    launch.first_chunk[0] = 0;
    for (int i = first; i < std::min(count, first + kAdamWTensorsPerLaunch); ++i) {
      if (tensors[i].n == 0) continue;
      const int64_t chunks = (tensors[i].n + kChunk - 1) / kChunk;
      if (launch.first_chunk[launch.count] + chunks > INT32_MAX) return cudaErrorInvalidValue;
      launch.tensors[launch.count] = tensors[i];
      launch.first_chunk[launch.count + 1] = launch.first_chunk[launch.count] + static_cast<int>(chunks);
      ++launch.count;
    }
    const int blocks = launch.first_chunk[launch.count];
    if (blocks == 0) continue;
    if (dtype == DType::F32) adamw_kernel<float><<<blocks, kBlock, 0, stream>>>(launch, h);
    else adamw_kernel<double><<<blocks, kBlock, 0, stream>>>(launch, h);
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace vimoe::kernels
