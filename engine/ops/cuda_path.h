// The one way engine code reaches a CUDA (or cuDNN) path.
//
//   if (x.device().is_cpu()) {
//     cpu::gelu_forward(...);
//   } else {
//     VIMOE_CUDA_PATH("gelu", x, VIMOE_CUDA_CHECK(kernels::gelu_forward(...)););
//   }
//
// The trailing arguments are statements (they may declare locals, contain commas and
// return). In a build with the CUDA backend they run as written. In a CPU-only build they are
// not compiled at all (they name kernels and CUDA types that do not exist there) and the
// macro throws instead, naming the op, the tensor that asked for the device and what the
// build lacks. A tensor can reach such a path in a CPU-only build only through a bug or a
// stale object, so the path fails loudly rather than falling through with its output unset.
// VIMOE_CUDNN_PATH is the same for paths that also need cuDNN (convolutions).
//
// What else a CPU-only build must not see stays behind `#ifdef VIMOE_WITH_CUDA` where it is
// declared, never where it is used: a file's kernel headers (one block at the top) and the
// helpers only its CUDA paths call (they name kernel types).
#pragma once
#include "engine/cuda/runtime.h"
#include "engine/tensor.h"

namespace vimoe::ops {

// Throws "op: <t> asks for the CUDA path, but this build has no <backend> ...", naming the
// tensor (or the device) that asked.
[[noreturn]] void missing_backend(const char* op, const Tensor& t, const char* backend);
[[noreturn]] void missing_backend(const char* op, Device device, const char* backend);

}  // namespace vimoe::ops

// The statements, in a build that has the path's backend.
#define VIMOE_DETAIL_TAKE_PATH(op, t, ...) \
  do {                                     \
    (void)(op);                            \
    (void)(t);                             \
    __VA_ARGS__                            \
  } while (0)

#ifdef VIMOE_WITH_CUDA
#define VIMOE_CUDA_PATH(op, t, ...) VIMOE_DETAIL_TAKE_PATH(op, t, __VA_ARGS__)
#else
#define VIMOE_CUDA_PATH(op, t, ...) ::vimoe::ops::missing_backend((op), (t), "CUDA")
#endif

#ifdef VIMOE_WITH_CUDNN
#define VIMOE_CUDNN_PATH(op, t, ...) VIMOE_DETAIL_TAKE_PATH(op, t, __VA_ARGS__)
#else
#define VIMOE_CUDNN_PATH(op, t, ...) ::vimoe::ops::missing_backend((op), (t), "cuDNN")
#endif
