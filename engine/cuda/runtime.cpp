#include "engine/cuda/runtime.h"

#include <string>

#include "engine/cuda/allocator.h"
#include "engine/error.h"

namespace vimoe::cuda {

#ifdef VIMOE_WITH_CUDA

namespace {
struct Probe {
  int count = 0;
  std::string reason;
  Probe() {
    const cudaError_t err = cudaGetDeviceCount(&count);
    const std::string gap = driver_gap(driver_version(), runtime_version());
    if (err != cudaSuccess) {
      count = 0;
      reason = std::string("no usable CUDA device: ") + cudaGetErrorString(err);
      if (!gap.empty()) reason += " (" + gap + ")";
      cudaGetLastError();  // clear the sticky error so later probes start clean
    } else if (!gap.empty()) {
      // Devices are listed, but kernels of this build would fail to load on first launch
      // with a less telling error: refuse here, once, with the versions.
      count = 0;
      reason = gap;
    } else if (count == 0) {
      reason = "no CUDA device found";
    }
  }
};
const Probe& probe() {
  static const Probe p;
  return p;
}
}  // namespace

int device_count() { return probe().count; }
std::string unavailable_reason() { return probe().reason; }

std::string device_name(int index) {
  VIMOE_CHECK(index >= 0 && index < device_count(), "cuda::device_name: device ", index,
              " requested, ", device_count(), " available");
  cudaDeviceProp prop{};
  VIMOE_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    VIMOE_CHECK(is_available(), "CUDA requested but unavailable: ", unavailable_reason());
    cudaStream_t created;
    VIMOE_CUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking));
    return created;
  }();
  return s;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) return 0;
  return v;
}

int runtime_version() { return CUDART_VERSION; }

Workspace gemm_workspace() {
  static const Workspace w = [] {
    Workspace created;
    created.bytes = size_t{32} << 20;
    created.ptr = device_alloc(created.bytes);
    return created;
  }();
  return w;
}

cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t created;
    VIMOE_CUBLAS_CHECK(cublasCreate(&created));
    VIMOE_CUBLAS_CHECK(cublasSetStream(created, stream()));
    const Workspace w = gemm_workspace();
    VIMOE_CUBLAS_CHECK(cublasSetWorkspace(created, w.ptr, w.bytes));
    return created;
  }();
  return h;
}

cublasLtHandle_t cublaslt() {
  static cublasLtHandle_t h = [] {
    VIMOE_CHECK(is_available(), "CUDA requested but unavailable: ", unavailable_reason());
    cublasLtHandle_t created;
    VIMOE_CUBLAS_CHECK(cublasLtCreate(&created));
    return created;
  }();
  return h;
}

void synchronize() {
  if (is_available()) VIMOE_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void copy_bytes(void* dst, bool dst_on_device, const void* src, bool src_on_device,
                size_t nbytes) {
  if (nbytes == 0) return;
  const cudaMemcpyKind kind = dst_on_device ? (src_on_device ? cudaMemcpyDeviceToDevice
                                                             : cudaMemcpyHostToDevice)
                                            : (src_on_device ? cudaMemcpyDeviceToHost
                                                             : cudaMemcpyHostToHost);
  VIMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, stream()));
  // Pageable host memory may be reused by the caller as soon as we return.
  if (kind != cudaMemcpyDeviceToDevice) VIMOE_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  VIMOE_FAIL("CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") in ", expr,
             " at ", file, ":", line);
}

void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line) {
  VIMOE_FAIL("cuBLAS error ", cublasGetStatusName(st), " (", cublasGetStatusString(st), ") in ",
             expr, " at ", file, ":", line);
}

#ifdef VIMOE_WITH_CUDNN
cudnnHandle_t cudnn() {
  static cudnnHandle_t h = [] {
    VIMOE_CHECK(is_available(), "CUDA requested but unavailable: ", unavailable_reason());
    cudnnHandle_t created;
    VIMOE_CUDNN_CHECK(cudnnCreate(&created));
    VIMOE_CUDNN_CHECK(cudnnSetStream(created, stream()));
    return created;
  }();
  return h;
}

void throw_cudnn_error(cudnnStatus_t st, const char* expr, const char* file, int line) {
  VIMOE_FAIL("cuDNN error ", cudnnGetErrorString(st), " (status ", static_cast<int>(st), ") in ", expr, " at ", file,
             ":", line);
}
#endif

#else  // CPU-only build

int driver_version() { return 0; }
int runtime_version() { return 0; }
int device_count() { return 0; }
std::string unavailable_reason() { return "built without CUDA (no nvcc at configure time)"; }
std::string device_name(int) { VIMOE_FAIL("cuda::device_name: ", unavailable_reason()); }
void synchronize() {}
void copy_bytes(void*, bool, const void*, bool, size_t) {
  VIMOE_FAIL("cuda::copy_bytes: ", unavailable_reason());
}

#endif

bool is_available() { return device_count() > 0; }

std::string driver_gap(int driver, int runtime) {
  if (runtime <= 0 || driver <= 0) return "";  // nothing built, or no driver (said elsewhere)
  if (driver / 1000 >= runtime / 1000) return "";
  auto version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  return "the NVIDIA driver supports CUDA up to " + version(driver) + " but this build uses the CUDA " +
         version(runtime) + " runtime: install a driver for CUDA " + std::to_string(runtime / 1000) +
         ".x or newer, or build with the CUDA toolkit the driver supports (12.1 or newer)";
}

}  // namespace vimoe::cuda
