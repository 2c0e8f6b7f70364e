#include "engine/ops/random.h"

#include <cmath>
#include <limits>

#include "engine/autograd.h"
#include "engine/cpu/random.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "kernels/philox.h"
#include "kernels/random.h"

namespace vimoe {

// ---- Generator -----------------------------------------------------------------------

namespace {
// The high counter word of sub-seed blocks: keeps them apart from the blocks a draw keyed
// by the same number would use at offset 0.
constexpr uint64_t kSubSeedStream = 0x5eed5eed5eed5eedull;
}  // namespace

void Generator::manual_seed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_ = State{seed, 0};
}

uint64_t Generator::next_seed() {
  std::lock_guard<std::mutex> lock(mutex_);
  const kernels::Philox4 r = kernels::philox4x32(state_.seed, state_.calls++, kSubSeedStream);
  return static_cast<uint64_t>(r.v[0]) | (static_cast<uint64_t>(r.v[1]) << 32);
}

Generator::State Generator::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

void Generator::set_state(const State& s) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_ = s;
}

Generator& default_generator() {
  static Generator generator(0);
  return generator;
}

namespace {

// ---- checks and helpers --------------------------------------------------------------

void check_fill_target(const Tensor& t, const char* op) {
  ops::check_defined(t, op, "t");
  ops::check_floating(t, op, "t");
  VIMOE_CHECK(t.is_leaf(), op, ": in-place fill of ", describe(t), ", which was produced by '",
              t.grad_fn()->name(), "' and is part of a graph; fill the leaf itself, or take "
              "the view under NoGradGuard");
  for (int64_t d = 0; d < t.dim(); ++d)
    VIMOE_CHECK(t.size(d) <= 1 || t.strides()[d] != 0, op, ": cannot fill ", describe(t),
                " with strides ", shape_str(t.strides()),
                ": an expanded view, whose elements share memory");
}

void check_shape(const Shape& shape, const char* op) {
  for (int64_t d : shape)
    VIMOE_CHECK(d >= 0, op, ": negative size in shape ", shape_str(shape));
}

// The largest value of a 16-bit float type (bf16, f16: sign-magnitude bit patterns, which
// order like the values they encode) that is below h.
template <typename H>
H previous_half(H h) {
  H r;
  if ((h.bits & 0x7fffu) == 0) r.bits = 0x8001u;  // +-0: the smallest negative subnormal
  else if (h.bits & 0x8000u) r.bits = static_cast<uint16_t>(h.bits + 1);
  else r.bits = static_cast<uint16_t>(h.bits - 1);
  return r;
}

// The largest value of `dtype` below hi (hi finite), as a double that converts to it exactly.
double largest_below(double hi, DType dtype) {
  constexpr double kDown = -std::numeric_limits<double>::infinity();
  switch (dtype) {
    case DType::F64: return std::nextafter(hi, kDown);
    case DType::F32: {
      float h = static_cast<float>(hi);
      if (h >= hi) h = std::nextafter(h, -std::numeric_limits<float>::infinity());
      return h;
    }
    case DType::BF16: {
      bfloat16 h = from_double<bfloat16>(hi);
      if (to_double(h) >= hi) h = previous_half(h);
      return to_double(h);
    }
    case DType::F16: {
      float16 h = from_double<float16>(hi);
      if (to_double(h) >= hi) h = previous_half(h);
      return to_double(h);
    }
    default: VIMOE_FAIL("uniform: expected a floating dtype, found ", dtype_name(dtype));
  }
}

// Whether v survives conversion to `dtype` as a finite number.
bool finite_in(double v, DType dtype) {
  double r = v;
  VIMOE_DISPATCH_FLOATING(dtype, "uniform", r = to_double(from_double<scalar_t>(v)));
  return std::isfinite(r);
}

void fill_uniform(const Tensor& t, double lo, double hi, uint64_t seed, uint64_t offset) {
  if (t.numel() == 0) return;
  const double below = largest_below(hi, t.dtype());
  if (t.device().is_cpu()) {
    cpu::fill_uniform(t, seed, offset, lo, hi, below);
  } else {
    VIMOE_CUDA_PATH("uniform_", t,
      VIMOE_CUDA_CHECK(kernels::fill_uniform(t.dtype(), t.storage()->data(), ops::kernel_layout(t),
                                             t.numel(), seed, offset, lo, hi, below,
                                             cuda::stream()));
    );
  }
}

void fill_normal(const Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) {
  if (t.numel() == 0) return;
  if (t.device().is_cpu()) {
    cpu::fill_normal(t, seed, offset, mean, std);
  } else {
    VIMOE_CUDA_PATH("normal_", t,
      VIMOE_CUDA_CHECK(kernels::fill_normal(t.dtype(), t.storage()->data(), ops::kernel_layout(t),
                                            t.numel(), seed, offset, mean, std, cuda::stream()));
    );
  }
}

// Folds [a, b] into the lower half-line (see kernels::TruncNormalParams) and precomputes the
// CDF values in double, once per call rather than once per element.
kernels::TruncNormalParams trunc_normal_params(double std, double a, double b) {
  kernels::TruncNormalParams p;
  const bool mirror = a >= 0;
  p.scale = mirror ? -std : std;
  p.z_lo = (mirror ? -b : a) / std;
  p.z_hi = (mirror ? -a : b) / std;
  VIMOE_CHECK(p.z_hi > -30, "trunc_normal_: [", a, ", ", b, "] lies more than 30 std (std ",
              std, ") from the mean; its probability underflows");
  const auto cdf = [](double z) { return 0.5 * std::erfc(-z * 0.70710678118654752440); };
  p.cdf_lo = cdf(p.z_lo);
  p.cdf_span = cdf(p.z_hi) - p.cdf_lo;
  p.a = a;
  p.b = b;
  return p;
}

// x with elements (grouped `group` at a time) kept or zeroed per Philox draw, survivors
// scaled: the forward of dropout (group 1) and drop_path (group = one sample), and, applied
// to the gradient with the same seed, their backward.
Tensor apply_mask(const Tensor& x, int64_t group, double p, uint64_t seed) {
  Tensor out = Tensor::empty(x.shape(), TensorOptions(x.dtype(), x.device()));
  if (out.numel() == 0) return out;
  const uint32_t threshold = kernels::dropout_threshold(p);
  const double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
  if (x.device().is_cpu()) {
    cpu::dropout_apply(x, out, group, seed, threshold, scale);
  } else {
    VIMOE_CUDA_PATH("dropout", x,
      VIMOE_CUDA_CHECK(kernels::dropout_apply(x.dtype(), x.storage()->data(), ops::kernel_layout(x),
                                              out.data_ptr(), out.numel(), group, seed, threshold,
                                              scale, cuda::stream()));
    );
  }
  return out;
}

void check_regulariser(const Tensor& x, double p, const char* op) {
  ops::check_defined(x, op, "x");
  ops::check_floating(x, op, "x");
  VIMOE_CHECK(p >= 0 && p <= 1, op, ": drop probability p must be in [0, 1], got ", p,
              " (x ", describe(x), ")");
}

}  // namespace

// ---- factories -----------------------------------------------------------------------

Tensor rand(const Shape& shape, uint64_t seed, TensorOptions opts, uint64_t offset) {
  check_shape(shape, "rand");
  VIMOE_CHECK(is_floating(opts.dtype), "rand: expected a floating dtype, found ",
              dtype_name(opts.dtype), " (shape ", shape_str(shape), ")");
  Tensor t = Tensor::empty(shape, TensorOptions(opts.dtype, opts.device));
  fill_uniform(t, 0.0, 1.0, seed, offset);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor randn(const Shape& shape, uint64_t seed, TensorOptions opts, uint64_t offset) {
  check_shape(shape, "randn");
  VIMOE_CHECK(is_floating(opts.dtype), "randn: expected a floating dtype, found ",
              dtype_name(opts.dtype), " (shape ", shape_str(shape), ")");
  Tensor t = Tensor::empty(shape, TensorOptions(opts.dtype, opts.device));
  fill_normal(t, 0.0, 1.0, seed, offset);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

// ---- in-place initialisers -----------------------------------------------------------

Tensor& uniform_(Tensor& t, double lo, double hi, uint64_t seed, uint64_t offset) {
  check_fill_target(t, "uniform_");
  VIMOE_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi && std::isfinite(hi - lo),
              "uniform_: expected finite bounds lo < hi, got [", lo, ", ", hi, ") for ",
              describe(t));
  VIMOE_CHECK(finite_in(lo, t.dtype()) && finite_in(hi, t.dtype()), "uniform_: bounds [", lo,
              ", ", hi, ") overflow ", dtype_name(t.dtype()), " (", describe(t), ")");
  fill_uniform(t, lo, hi, seed, offset);
  return t;
}

Tensor& normal_(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) {
  check_fill_target(t, "normal_");
  VIMOE_CHECK(std::isfinite(mean) && std::isfinite(std) && std >= 0,
              "normal_: expected a finite mean and std >= 0, got mean ", mean, ", std ", std,
              " for ", describe(t));
  fill_normal(t, mean, std, seed, offset);
  return t;
}

Tensor& trunc_normal_(Tensor& t, double std, double a, double b, uint64_t seed,
                      uint64_t offset) {
  check_fill_target(t, "trunc_normal_");
  VIMOE_CHECK(std::isfinite(std) && std > 0, "trunc_normal_: expected a finite std > 0, got ",
              std, " for ", describe(t));
  VIMOE_CHECK(a < b, "trunc_normal_: expected bounds a < b, got [", a, ", ", b, "] for ",
              describe(t));
  const kernels::TruncNormalParams params = trunc_normal_params(std, a, b);
  if (t.numel() == 0) return t;
  if (t.device().is_cpu()) {
    cpu::fill_trunc_normal(t, seed, offset, params);
  } else {
    VIMOE_CUDA_PATH("trunc_normal_", t,
      VIMOE_CUDA_CHECK(kernels::fill_trunc_normal(t.dtype(), t.storage()->data(),
                                                  ops::kernel_layout(t), t.numel(), seed, offset,
                                                  params, cuda::stream()));
    );
  }
  return t;
}

// ---- regularisers --------------------------------------------------------------------

Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed) {
  check_regulariser(x, p, "dropout");
  if (!training || p == 0) return x;
  Tensor out = apply_mask(x, 1, p, seed);
  // The op is its own adjoint: a diagonal of mask / (1 - p).
  autograd::record("dropout", out, {x}, [p, seed](const Tensor& g) {
    return std::vector<Tensor>{dropout(g, p, true, seed)};
  });
  return out;
}

Tensor drop_path(const Tensor& x, double p, bool training, uint64_t seed) {
  check_regulariser(x, p, "drop_path");
  VIMOE_CHECK(x.dim() >= 1, "drop_path: x needs a sample dimension (dim 0), found ", describe(x));
  if (!training || p == 0) return x;
  const int64_t per_sample = x.size(0) > 0 ? x.numel() / x.size(0) : 0;
  Tensor out = apply_mask(x, per_sample > 0 ? per_sample : 1, p, seed);
  autograd::record("drop_path", out, {x}, [p, seed](const Tensor& g) {
    return std::vector<Tensor>{drop_path(g, p, true, seed)};
  });
  return out;
}

}  // namespace vimoe
