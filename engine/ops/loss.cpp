#include "engine/ops/loss.h"

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/cpu/loss.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/loss.h"
#endif

namespace vimoe {

namespace {

// Per-row statistics in the compute type: the CPU reference works in double throughout;
// the kernels in f32, or f64 for f64 logits.
DType stats_dtype(const Tensor& logits) {
  return logits.device().is_cpu() || logits.dtype() == DType::F64 ? DType::F64 : DType::F32;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits_arg, const Tensor& target, double label_smoothing,
                     int64_t ignore_index) {
  VIMOE_PROFILE_SCOPE("cross_entropy");
  const Tensor logits = autocast::upper(logits_arg);
  const char* op = "cross_entropy";
  ops::check_defined(logits, op, "logits");
  ops::check_defined(target, op, "target");
  ops::check_floating(logits, op, "logits");
  VIMOE_CHECK(logits.dim() == 2, op, ": logits must be [N, C], found ", describe(logits));
  VIMOE_CHECK(target.dtype() == DType::I64 && target.dim() == 1 &&
                  target.size(0) == logits.size(0),
              op, ": target must be i64 [", logits.size(0), "] for logits ", describe(logits),
              ", found ", describe(target));
  ops::check_same_device(logits, target, op);
  VIMOE_CHECK(logits.size(1) >= 1, op, ": logits need at least one class, found ",
              describe(logits));
  VIMOE_CHECK(label_smoothing >= 0 && label_smoothing <= 1, op,
              ": label_smoothing must lie in [0, 1], found ", label_smoothing);

  const int64_t rows = logits.size(0), classes = logits.size(1);
  const Device dev = logits.device();
  const DType dt = logits.dtype();
  Tensor x, t, loss, lse, count;
  int64_t bad_row = rows;
  {
    NoGradGuard no_grad;
    x = logits.detach().contiguous();
    t = target.detach().contiguous();
    loss = Tensor::empty({}, TensorOptions(dt, dev));
    lse = Tensor::empty({rows}, TensorOptions(stats_dtype(logits), dev));
    count = Tensor::empty({}, TensorOptions(DType::I64, dev));
    if (dev.is_cpu()) {
      bad_row = cpu::cross_entropy_forward(x, t, label_smoothing, ignore_index, loss, lse, count);
    } else {
      VIMOE_CUDA_PATH(op, x,
        const Tensor row_loss = Tensor::empty({rows}, TensorOptions(lse.dtype(), dev));
        // The kernel min-s the first bad row into this flag; `rows` means none. Reading it
        // back waits for the kernel: a bad target must surface here as an Error, and a device
        // assert would poison the CUDA context instead.
        const Tensor flag = Tensor::full({1}, static_cast<double>(rows), TensorOptions(DType::I64, dev));
        VIMOE_CUDA_CHECK(kernels::cross_entropy_forward(
            dt, x.data_ptr(), t.data<int64_t>(), rows, classes, label_smoothing, ignore_index,
            loss.data_ptr(), lse.data_ptr(), row_loss.data_ptr(), count.data<int64_t>(),
            reinterpret_cast<unsigned long long*>(flag.data<int64_t>()), cuda::stream()));
        bad_row = flag.item<int64_t>();
      );
    }
    if (bad_row < rows) {
      VIMOE_FAIL(op, ": target ", t.select(0, bad_row).item<int64_t>(), " at row ", bad_row,
                 " is out of range for ", classes, " classes (logits ", describe(logits),
                 ", ignore_index ", ignore_index, ")");
    }
  }
  autograd::record(op, loss, {logits}, [x, t, lse, count, label_smoothing, ignore_index, dt,
                                        dev](const Tensor& g_in) {
    const Tensor g = g_in.to(dt).contiguous();
    Tensor dx = Tensor::empty(x.shape(), TensorOptions(dt, dev));
    if (dev.is_cpu()) {
      cpu::cross_entropy_backward(x, t, label_smoothing, ignore_index, g, lse, count, dx);
    } else {
      VIMOE_CUDA_PATH("cross_entropy (backward)", x,
        VIMOE_CUDA_CHECK(kernels::cross_entropy_backward(
            dt, x.data_ptr(), t.data<int64_t>(), x.size(0), x.size(1), label_smoothing,
            ignore_index, g.data_ptr(), lse.data_ptr(), count.data<int64_t>(), dx.data_ptr(),
            cuda::stream()));
      );
    }
    return std::vector<Tensor>{dx};
  });
  return loss;
}

Tensor pixel_cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
  constexpr const char* op = "pixel_cross_entropy";
  ops::check_defined(logits, op, "logits");
  ops::check_defined(target, op, "target");
  VIMOE_CHECK(logits.dim() == 4, op, ": logits must be [B, C, H, W], found ", describe(logits));
  const int64_t B = logits.size(0), C = logits.size(1), H = logits.size(2), W = logits.size(3);
  VIMOE_CHECK(target.dtype() == DType::I64 && target.shape() == Shape({B, H, W}), op, ": target must be i64 [", B,
              ", ", H, ", ", W, "] for logits ", describe(logits), ", found ", describe(target));
  const Tensor rows = logits.permute({0, 2, 3, 1}).contiguous().reshape({B * H * W, C});
  try {
    return cross_entropy(rows, target.contiguous().reshape({B * H * W}), 0.0, ignore_index);
  } catch (const Error& e) {
    // Name the pixel as well as the flattened row the inner op reports.
    VIMOE_FAIL(op, " (pixels as rows b * H * W + y * W + x, H = ", H, ", W = ", W, "): ", e.what());
  }
}

}  // namespace vimoe
