#include "kernels/dispatch.cuh"
#include "kernels/loss.h"
#include "kernels/reduce_ops.h"

namespace vimoe::kernels {
namespace {

// The forward runs one block per row (32, 128 or 256 threads, by the class count) for the
// row's statistics, then a single block adds the row losses in a fixed order, so the loss
// is deterministic. The backward is elementwise: each element needs only its row's lse.
constexpr int kMaxBlock = 256;
constexpr int kMaxWarps = kMaxBlock / 32;
constexpr unsigned kFullMask = 0xffffffffu;

int row_block(int64_t classes) { return classes <= 64 ? 32 : classes <= 1024 ? 128 : 256; }

// keep = 1 - eps (the weight of the target's logit), spread = eps / classes.
template <typename T>
__global__ void cross_entropy_rows_kernel(const T* __restrict__ x, const int64_t* __restrict__ target,
                                          int64_t rows, int64_t classes, acc_t<T> keep,
                                          acc_t<T> spread, int64_t ignore_index,
                                          acc_t<T>* __restrict__ lse,
                                          acc_t<T>* __restrict__ row_loss,
                                          unsigned long long* __restrict__ bad_row) {
  using A = acc_t<T>;
  __shared__ A s_m[kMaxWarps], s_s[kMaxWarps], s_x[kMaxWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    // The target is the same for the whole block, so these early exits are block-uniform
    // and no thread skips a barrier the others wait at.
    const int64_t t = target[r];
    if (t == ignore_index || t < 0 || t >= classes) {
      if (threadIdx.x == 0) {
        if (t != ignore_index) atomicMin(bad_row, static_cast<unsigned long long>(r));
        lse[r] = A(0);
        row_loss[r] = A(0);
      }
      continue;
    }
    const T* xr = x + r * classes;
    A m = -A(INFINITY), s = A(0), sx = A(0);
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
      const A v = load_acc(xr + c);
      softmax_stats_add(m, s, v);
      sx += v;
    }
    for (int o = 16; o > 0; o >>= 1) {
      const A m2 = __shfl_xor_sync(kFullMask, m, o);
      const A s2 = __shfl_xor_sync(kFullMask, s, o);
      softmax_stats_merge(m, s, m2, s2);
      sx += __shfl_xor_sync(kFullMask, sx, o);
    }
    if (lane == 0) {
      s_m[warp] = m;
      s_s[warp] = s;
      s_x[warp] = sx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < warps; ++w) {
        softmax_stats_merge(m, s, s_m[w], s_s[w]);
        sx += s_x[w];
      }
      const A l = m + log_of(s);
      lse[r] = l;
      row_loss[r] = l - keep * load_acc(xr + t) - spread * sx;
    }
    __syncthreads();  // s_m / s_s / s_x are rewritten for the next row
  }
}

// One block: loss = sum(row_loss) / count over rows not ignored (0 when none are).
template <typename T>
__global__ void cross_entropy_mean_kernel(const acc_t<T>* __restrict__ row_loss,
                                          const int64_t* __restrict__ target, int64_t rows,
                                          int64_t ignore_index, T* __restrict__ loss,
                                          int64_t* __restrict__ count) {
  using A = acc_t<T>;
  __shared__ A s_sum[kMaxWarps];
  __shared__ int64_t s_cnt[kMaxWarps];
  A acc = A(0);
  int64_t cnt = 0;
  for (int64_t i = threadIdx.x; i < rows; i += kMaxBlock) {
    acc += row_loss[i];
    cnt += target[i] != ignore_index ? 1 : 0;
  }
  for (int o = 16; o > 0; o >>= 1) {
    acc += __shfl_xor_sync(kFullMask, acc, o);
    cnt += __shfl_xor_sync(kFullMask, cnt, o);
  }
  if ((threadIdx.x & 31) == 0) {
    s_sum[threadIdx.x >> 5] = acc;
    s_cnt[threadIdx.x >> 5] = cnt;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kMaxWarps; ++w) {
      acc += s_sum[w];
      cnt += s_cnt[w];
    }
    *count = cnt;
    store_acc(loss, cnt > 0 ? acc / static_cast<A>(cnt) : A(0));
  }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(const T* __restrict__ x,
                                              const int64_t* __restrict__ target, int64_t rows,
                                              int64_t classes, acc_t<T> keep, acc_t<T> spread,
                                              int64_t ignore_index, const T* __restrict__ grad,
                                              const acc_t<T>* __restrict__ lse,
                                              const int64_t* __restrict__ count,
                                              T* __restrict__ dx) {
  using A = acc_t<T>;
  const int64_t cnt = *count;
  const A scale = cnt > 0 ? load_acc(grad) / static_cast<A>(cnt) : A(0);
  const int64_t total = rows * classes;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / classes, c = e - r * classes;
    const int64_t t = target[r];
    A v = A(0);
    if (cnt > 0 && t != ignore_index) {
      const A p = exp_of(load_acc(x + e) - lse[r]);
      v = scale * (p - (c == t ? keep : A(0)) - spread);
    }
    store_acc(dx + e, v);
  }
}

}  // namespace

cudaError_t cross_entropy_forward(DType dtype, const void* logits, const int64_t* target,
                                  int64_t rows, int64_t classes, double label_smoothing,
                                  int64_t ignore_index, void* loss, void* lse, void* row_loss,
                                  int64_t* count, unsigned long long* bad_row,
                                  cudaStream_t stream) {
  if (classes < 1) return cudaErrorInvalidValue;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    using A = acc_t<scalar_t>;
    const A keep = static_cast<A>(1.0 - label_smoothing);
    const A spread = static_cast<A>(label_smoothing / static_cast<double>(classes));
    if (rows > 0) {
      const unsigned grid = static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
      cross_entropy_rows_kernel<<<grid, row_block(classes), 0, stream>>>(
          static_cast<const scalar_t*>(logits), target, rows, classes, keep, spread,
          ignore_index, static_cast<A*>(lse), static_cast<A*>(row_loss), bad_row);
    }
    // Runs for rows == 0 too: it writes loss = 0 and count = 0.
    cross_entropy_mean_kernel<<<1, kMaxBlock, 0, stream>>>(
        static_cast<const A*>(row_loss), target, rows, ignore_index,
        static_cast<scalar_t*>(loss), count);
  });
  return cudaGetLastError();
}

cudaError_t cross_entropy_backward(DType dtype, const void* logits, const int64_t* target,
                                   int64_t rows, int64_t classes, double label_smoothing,
                                   int64_t ignore_index, const void* grad, const void* lse,
                                   const int64_t* count, void* dx, cudaStream_t stream) {
  const int64_t total = rows * classes;
  if (total == 0) return cudaSuccess;
  VIMOE_KERNEL_DISPATCH_FLOATING(dtype, {
    using A = acc_t<scalar_t>;
    const A keep = static_cast<A>(1.0 - label_smoothing);
    const A spread = static_cast<A>(label_smoothing / static_cast<double>(classes));
    cross_entropy_backward_kernel<<<grid_for(total, kMaxBlock), kMaxBlock, 0, stream>>>(
        static_cast<const scalar_t*>(logits), target, rows, classes, keep, spread, ignore_index,
        static_cast<const scalar_t*>(grad), static_cast<const A*>(lse), count,
        static_cast<scalar_t*>(dx));
  });
  return cudaGetLastError();
}

}  // namespace vimoe::kernels
