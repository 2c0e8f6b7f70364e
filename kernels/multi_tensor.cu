#include "kernels/multi_tensor.h"

#include <algorithm>

#include "kernels/dispatch.cuh"

namespace vimoe::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int kFinishBlock = 1024;

// Everything one launch needs, passed by value as the kernel's parameter (about 14 KB;
// kernel parameters may take up to 32 KB since CUDA 12.1 on Volta and newer).
struct Launch {
  MultiTensorRef tensors[kMultiTensorPerLaunch];
  int first_chunk[kMultiTensorPerLaunch + 1];  // prefix sums of the tensors' chunk counts
  int count;
  int64_t chunk_base;  // chunks of earlier launches: where this launch's partials start
};
static_assert(sizeof(Launch) < 32000, "multi-tensor launch parameters exceed the kernel parameter limit");

// The tensor that owns `chunk` and the chunk's element range in it.
struct ChunkOf {
  int tensor;
  int64_t begin, end;
};
__device__ ChunkOf find_chunk(const Launch& launch, int chunk) {
  int lo = 0, hi = launch.count;  // first_chunk[lo] <= chunk < first_chunk[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (launch.first_chunk[mid] <= chunk) lo = mid;
    else hi = mid;
  }
  const int64_t n = launch.tensors[lo].n;
  const int64_t begin = int64_t(chunk - launch.first_chunk[lo]) * kMultiTensorChunk;
  return {lo, begin, begin + kMultiTensorChunk < n ? begin + kMultiTensorChunk : n};
}

// Sum of v over a block of B threads in a tree of fixed shape; thread 0 gets the total.
template <int B>
__device__ double block_sum(double v, double* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int h = B / 2; h > 0; h >>= 1) {
    if (static_cast<int>(threadIdx.x) < h) scratch[threadIdx.x] += scratch[threadIdx.x + h];
    __syncthreads();
  }
  return scratch[0];
}

// Squares in f64. The reference (engine/cpu, optim::grad_norm) converts every gradient to
// f64 and sums there; an f32 value's square is exact in f64 (48 significant bits), so the
// only difference left is the order of the additions (~1e-16 relative each). The kernel is
// bound by memory bandwidth, one f64 multiply-add per element loaded stays well inside even
// a consumer GPU's f64 rate, and the clip factor then agrees with the CPU's to ~1e-15
// instead of the ~1e-6 an f32 accumulation would give.
template <typename T>
__device__ double chunk_squares(const T* __restrict__ x, int64_t begin, int64_t end) {
  double s = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kBlock) {
    const double v = to_double(x[i]);
    s += v * v;
  }
  return s;
}

__global__ void __launch_bounds__(kBlock)
    squares_kernel(const __grid_constant__ Launch launch, double* __restrict__ partial) {
  __shared__ double scratch[kBlock];
  const ChunkOf c = find_chunk(launch, static_cast<int>(blockIdx.x));
  const MultiTensorRef& t = launch.tensors[c.tensor];
  double s = 0;
  // The dtype is uniform across the block: no divergence.
  switch (t.dtype) {
    case DType::F32: s = chunk_squares(static_cast<const float*>(t.data), c.begin, c.end); break;
    case DType::F64: s = chunk_squares(static_cast<const double*>(t.data), c.begin, c.end); break;
    case DType::BF16: s = chunk_squares(static_cast<const __nv_bfloat16*>(t.data), c.begin, c.end); break;
    case DType::F16: s = chunk_squares(static_cast<const __half*>(t.data), c.begin, c.end); break;
    default: break;  // rejected on the host
  }
  s = block_sum<kBlock>(s, scratch);
  if (threadIdx.x == 0) partial[launch.chunk_base + blockIdx.x] = s;
}

// One block: the chunks' sums in a fixed order (thread i takes i, i + B, ... then the tree).
__global__ void __launch_bounds__(kFinishBlock)
    norm_finish_kernel(const double* __restrict__ partial, int64_t chunks, double* norm,
                       double* clip_scale, double max_norm, double eps) {
  __shared__ double scratch[kFinishBlock];
  double s = 0;
  for (int64_t i = threadIdx.x; i < chunks; i += kFinishBlock) s += partial[i];
  s = block_sum<kFinishBlock>(s, scratch);
  if (threadIdx.x == 0) {
    const double r = sqrt(s);
    *norm = r;
    if (clip_scale) {
      // min(1, f) with NaN passed through, like the engine's minimum (and torch.minimum).
      const double f = max_norm / (r + eps);
      *clip_scale = f != f ? f : (f < 1.0 ? f : 1.0);
    }
  }
}

template <typename T>
__device__ void chunk_scale(T* __restrict__ x, int64_t begin, int64_t end, double scale) {
  // Round the factor to T first, as scale.to(T) does, then multiply in T's compute type.
  const acc_t<T> s = static_cast<acc_t<T>>(to_double(from_double<T>(scale)));
  for (int64_t i = begin + threadIdx.x; i < end; i += kBlock)
    store_acc(x + i, load_acc(x + i) * s);
}

__global__ void __launch_bounds__(kBlock)
    scale_kernel(const __grid_constant__ Launch launch, const double* __restrict__ scale) {
  const double f = *scale;
  if (f == 1.0) return;  // x * 1 == x: skip the writes when nothing is clipped
  const ChunkOf c = find_chunk(launch, static_cast<int>(blockIdx.x));
  const MultiTensorRef& t = launch.tensors[c.tensor];
  switch (t.dtype) {
    case DType::F32: chunk_scale(static_cast<float*>(t.data), c.begin, c.end, f); break;
    case DType::F64: chunk_scale(static_cast<double*>(t.data), c.begin, c.end, f); break;
    case DType::BF16: chunk_scale(static_cast<__nv_bfloat16*>(t.data), c.begin, c.end, f); break;
    case DType::F16: chunk_scale(static_cast<__half*>(t.data), c.begin, c.end, f); break;
    default: break;
  }
}

bool floating(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::BF16 || t == DType::F16;
}

// Calls launch_one(launch, blocks) for each group of up to kMultiTensorPerLaunch tensors,
// skipping empty ones; Launch::chunk_base counts the chunks of earlier groups.
template <typename F>
cudaError_t for_each_launch(const MultiTensorRef* tensors, int count, F&& launch_one) {
  if (count < 0) return cudaErrorInvalidValue;
  for (int i = 0; i < count; ++i)
    if (tensors[i].n < 0 || (tensors[i].n > 0 && (!floating(tensors[i].dtype) || !tensors[i].data)))
      return cudaErrorInvalidValue;
  Launch launch;
  int64_t base = 0;
  for (int first = 0; first < count; first += kMultiTensorPerLaunch) {
    launch.count = 0;
    launch.first_chunk[0] = 0;
    launch.chunk_base = base;
    for (int i = first; i < std::min(count, first + kMultiTensorPerLaunch); ++i) {
      if (tensors[i].n == 0) continue;
      const int64_t chunks = (tensors[i].n + kMultiTensorChunk - 1) / kMultiTensorChunk;
      if (launch.first_chunk[launch.count] + chunks > INT32_MAX) return cudaErrorInvalidValue;
      launch.tensors[launch.count] = tensors[i];
      launch.first_chunk[launch.count + 1] = launch.first_chunk[launch.count] + static_cast<int>(chunks);
      ++launch.count;
    }
    const int blocks = launch.first_chunk[launch.count];
    base += blocks;
    if (blocks == 0) continue;
    launch_one(launch, blocks);
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace

int64_t multi_tensor_l2_norm_workspace(const MultiTensorRef* tensors, int count) {
  int64_t chunks = 0;
  for (int i = 0; i < count; ++i)
    if (tensors[i].n > 0) chunks += (tensors[i].n + kMultiTensorChunk - 1) / kMultiTensorChunk;
  return chunks;
}

cudaError_t multi_tensor_l2_norm(const MultiTensorRef* tensors, int count, double* workspace,
                                 double* norm, double* clip_scale, double max_norm, double eps,
                                 cudaStream_t stream) {
  if (norm == nullptr) return cudaErrorInvalidValue;
  const int64_t chunks = multi_tensor_l2_norm_workspace(tensors, count);
  if (chunks > 0 && workspace == nullptr) return cudaErrorInvalidValue;
  const cudaError_t e = for_each_launch(tensors, count, [&](const Launch& launch, int blocks) {
    squares_kernel<<<blocks, kBlock, 0, stream>>>(launch, workspace);
  });
  if (e != cudaSuccess) return e;
  // Also with no chunks at all: the norm is then 0 and the scale 1.
  norm_finish_kernel<<<1, kFinishBlock, 0, stream>>>(workspace, chunks, norm, clip_scale,
                                                      max_norm, eps);
  return cudaGetLastError();
}

cudaError_t multi_tensor_scale(const MultiTensorRef* tensors, int count, const double* scale,
                               cudaStream_t stream) {
  if (scale == nullptr) return cudaErrorInvalidValue;
  return for_each_launch(tensors, count, [&](const Launch& launch, int blocks) {
    scale_kernel<<<blocks, kBlock, 0, stream>>>(launch, scale);
  });
}

}  // namespace vimoe::kernels
