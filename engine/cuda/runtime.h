// CUDA runtime plumbing: device detection, the engine's stream, and error checking.
// Detection works in every build: a CPU-only build or a machine without a driver simply
// reports no devices, so GPU tests can skip cleanly.
#pragma once
#include <string>

#include <cstddef>

#ifdef VIMOE_WITH_CUDA
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#ifdef VIMOE_WITH_CUDNN
#include <cudnn.h>
#endif
#endif

namespace vimoe::cuda {

// Number of usable CUDA devices; 0 without a CUDA build, a driver or a GPU. Never throws.
int device_count();
bool is_available();
// Why no device is usable ("built without CUDA", the driver's error string); "" if one is.
std::string unavailable_reason();
std::string device_name(int index = 0);
// Blocks until all work queued on the engine's stream has finished (no-op without CUDA).
void synchronize();

// Versions as CUDA encodes them (1000 * major + 10 * minor: 12010 is 12.1).
// The newest CUDA the installed driver supports (0 when there is no driver or no CUDA build),
// and the CUDA runtime this build was compiled against (0 without CUDA).
int driver_version();
int runtime_version();
// "" when a driver supporting CUDA `driver` can run a build against runtime `runtime`
// (the same major release or a newer driver: CUDA's minor-version compatibility), else the
// sentence saying which driver to install. Pure arithmetic, testable anywhere.
std::string driver_gap(int driver, int runtime);

#ifdef VIMOE_WITH_CUDA
// The stream every engine op enqueues on (one per process; created on first use).
cudaStream_t stream();
// The cuBLAS handle bound to stream(), its workspace set to gemm_workspace() (so cuBLAS's
// scratch comes from the engine's allocator and shows in its statistics, not from a
// private cudaMalloc per handle).
cublasHandle_t cublas();
// The cuBLASLt handle (plans and epilogue GEMMs; kernels/gemm.h's gemm_lt).
cublasLtHandle_t cublaslt();
// The scratch buffer every GEMM on stream() shares, cuBLAS's and cuBLASLt's alike: GEMMs run
// one after another on that one stream, so one buffer serves them all. 32 MiB (NVIDIA's
// recommendation for Hopper; 4 MiB would do for older GPUs), taken once from the engine's
// allocator and kept for the process.
struct Workspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};
Workspace gemm_workspace();

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line);
#ifdef VIMOE_WITH_CUDNN
// The cuDNN handle bound to stream() (created on first use).
cudnnHandle_t cudnn();
[[noreturn]] void throw_cudnn_error(cudnnStatus_t st, const char* expr, const char* file, int line);
#endif
#endif

}  // namespace vimoe::cuda

#ifdef VIMOE_WITH_CUDA
// Wrap every CUDA runtime call and every kernel launcher (launchers return cudaGetLastError()).
#define VIMOE_CUDA_CHECK(expr)                                                       \
  do {                                                                               \
    cudaError_t vimoe_err_ = (expr);                                                 \
    if (vimoe_err_ != cudaSuccess)                                                   \
      ::vimoe::cuda::throw_cuda_error(vimoe_err_, #expr, __FILE__, __LINE__);        \
  } while (0)
#ifdef VIMOE_WITH_CUDNN
#define VIMOE_CUDNN_CHECK(expr)                                                      \
  do {                                                                               \
    cudnnStatus_t vimoe_st_ = (expr);                                                \
    if (vimoe_st_ != CUDNN_STATUS_SUCCESS)                                           \
      ::vimoe::cuda::throw_cudnn_error(vimoe_st_, #expr, __FILE__, __LINE__);        \
  } while (0)
#endif
#define VIMOE_CUBLAS_CHECK(expr)                                                     \
  do {                                                                               \
    cublasStatus_t vimoe_st_ = (expr);                                               \
    if (vimoe_st_ != CUBLAS_STATUS_SUCCESS)                                          \
      ::vimoe::cuda::throw_cublas_error(vimoe_st_, #expr, __FILE__, __LINE__);       \
  } while (0)
#endif

namespace vimoe::cuda {
// Copies nbytes between any two devices (host <-> device, device <-> device) through the
// engine's stream; returns once the bytes have landed.
void copy_bytes(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t nbytes);
}  // namespace vimoe::cuda
