// Counter-based random fills, dropout and drop_path.
//
// The scalar recipes below are host + device functions shared by the CPU reference
// (engine/cpu/random.cpp) and the CUDA kernels (kernels/random.cu), so both backends draw
// element i from Philox counter (i, offset) and run the same arithmetic on it. Every
// multiply-add is an explicit fma: nvcc contracts a*b+c on its own and the host compiler
// does not, which would break CPU/GPU bit-equality of uniforms.
//
// The launchers need the CUDA runtime headers, so they are only declared where those exist
// (nvcc, or an engine built with CUDA); the scalar recipes are plain C++ everywhere.
#pragma once
#include <math.h>

#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/philox.h"
#include "kernels/strided.h"

namespace vimoe::kernels {

// ---- uniform / normal ----------------------------------------------------------------

// lo + (hi - lo) * u for element `index`, u the f32 uniform of counter (index, offset).
// Done in double and rounded once to the destination type by the caller; that rounding
// may reach `hi`, which the caller replaces by the largest value below hi in its dtype.
VIMOE_HOST_DEVICE inline double uniform_value(uint64_t seed, uint64_t offset, uint64_t index,
                                              double lo, double hi) {
  return ::fma(hi - lo, static_cast<double>(philox_uniform(seed, offset, index)), lo);
}

// mean + std * z, z the f32 standard normal of counter (index, offset). z may differ between
// host and device in the last ulp (logf, cosf); everything after it is exact IEEE arithmetic.
VIMOE_HOST_DEVICE inline double normal_value(uint64_t seed, uint64_t offset, uint64_t index,
                                             double mean, double std) {
  return ::fma(std, static_cast<double>(philox_normal(seed, offset, index)), mean);
}

// ---- truncated normal by inverse CDF -------------------------------------------------

// Quantile of the standard normal for p in (0, 1). A&S 26.2.23 (|error| < 4.5e-4) gives the
// start; two Halley steps on Phi(z) = q (cubic convergence) take it to double precision.
// Working with the smaller tail probability q keeps full relative precision far out in
// the tails, where 1 - p would cancel.
VIMOE_HOST_DEVICE inline double normal_quantile(double p) {
  const bool upper = p > 0.5;
  const double q = upper ? 1.0 - p : p;  // in (0, 0.5]
  const double t = ::sqrt(-2.0 * ::log(q));
  const double num = ::fma(::fma(0.010328, t, 0.802853), t, 2.515517);
  const double den = ::fma(::fma(::fma(0.001308, t, 0.189269), t, 1.432788), t, 1.0);
  double z = num / den - t;  // <= 0: the lower-tail quantile
  for (int step = 0; step < 2; ++step) {
    const double err = 0.5 * ::erfc(-z * 0.70710678118654752440) - q;   // Phi(z) - q
    const double r = err * 2.50662827463100050242 * ::exp(0.5 * z * z);  // err / phi(z)
    z -= r / ::fma(0.5 * z, r, 1.0);
  }
  return upper ? -z : z;
}

// A truncated normal folded into the lower half-line, prepared once on the host by the
// front-end: sampling N(0,1) on [z_lo, z_hi] (z_lo < 0 always) and multiplying by `scale`
// (+-std; negative when the caller's interval [a, b] lay at or above the mean and was
// mirrored) gives N(0, std^2) truncated to [a, b]. Folding keeps both CDF values at most
// 0.5 + mass, so the difference cdf_hi - cdf_lo never cancels in double.
struct TruncNormalParams {
  double z_lo = 0, z_hi = 0;          // bounds in standard units, after folding
  double cdf_lo = 0, cdf_span = 0;    // Phi(z_lo), Phi(z_hi) - Phi(z_lo)
  double scale = 1;                   // +-std
  double a = 0, b = 0;                // the caller's bounds: a final clamp against rounding
};

// Element `index`: p = Phi(z_lo) + u * mass with u = (bits + 1/2) / 2^32 strictly inside
// (0, 1) (32 random bits, so the quantile never sees 0 or 1), z = Phi^-1(p), clamped to
// the bounds against the last ulp of quantile error.
VIMOE_HOST_DEVICE inline double trunc_normal_value(uint64_t seed, uint64_t offset,
                                                   uint64_t index, const TruncNormalParams& t) {
  const uint32_t bits = philox4x32(seed, index, offset).v[0];
  const double u = (static_cast<double>(bits) + 0.5) * (1.0 / 4294967296.0);
  double z = normal_quantile(::fma(u, t.cdf_span, t.cdf_lo));
  z = z < t.z_lo ? t.z_lo : (z > t.z_hi ? t.z_hi : z);
  const double x = t.scale * z;
  return x < t.a ? t.a : (x > t.b ? t.b : x);
}

// ---- dropout / drop_path -------------------------------------------------------------

// Element (or sample) `counter` survives when its f32 uniform (the value rand() would give
// it) is >= p. With u = k / 2^24 that is k >= ceil(p * 2^24): an integer test, exact and
// identical everywhere. `threshold` is dropout_threshold(p).
inline uint32_t dropout_threshold(double p) {
  return static_cast<uint32_t>(::ceil(p * 16777216.0));  // p in [0, 1]: at most 2^24
}
VIMOE_HOST_DEVICE inline bool dropout_keep(uint64_t seed, uint64_t counter, uint32_t threshold) {
  return (philox4x32(seed, counter, 0).v[0] >> 8) >= threshold;
}

}  // namespace vimoe::kernels

#if defined(__CUDACC__) || defined(VIMOE_WITH_CUDA)
#include <cuda_runtime_api.h>

namespace vimoe::kernels {

// Random fills write element i (row-major over `layout`) at base + strided_offset(layout, i)
// for i in [0, n), so any non-overlapping view can be filled in place. Floating dtypes only.

// uniform_value(), rounded to dtype; a result that rounds up to >= hi becomes `below_hi`
// (the largest dtype value < hi, computed by the caller), keeping draws in [lo, hi).
cudaError_t fill_uniform(DType dtype, void* base, const StridedLayout& layout, int64_t n,
                         uint64_t seed, uint64_t offset, double lo, double hi, double below_hi,
                         cudaStream_t stream);
cudaError_t fill_normal(DType dtype, void* base, const StridedLayout& layout, int64_t n,
                        uint64_t seed, uint64_t offset, double mean, double std,
                        cudaStream_t stream);
cudaError_t fill_trunc_normal(DType dtype, void* base, const StridedLayout& layout, int64_t n,
                              uint64_t seed, uint64_t offset, const TruncNormalParams& params,
                              cudaStream_t stream);

// out[i] = dropout_keep(seed, i / group, threshold) ? x[lx(i)] * scale : 0 for i in [0, n);
// out is contiguous. group = 1 is dropout, group = elements per sample is drop_path.
// The product is one multiply in the compute type (f32 for half types and f32, f64 for f64).
cudaError_t dropout_apply(DType dtype, const void* x, const StridedLayout& lx, void* out,
                          int64_t n, int64_t group, uint64_t seed, uint32_t threshold,
                          double scale, cudaStream_t stream);

}  // namespace vimoe::kernels
#endif
