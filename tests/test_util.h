// Helpers shared by the test suites.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace vimoe::testing {

// Skips the current test, with the reason, when no CUDA device is usable.
#define VIMOE_REQUIRE_GPU()                                                        \
  do {                                                                             \
    if (!::vimoe::cuda::is_available())                                            \
      GTEST_SKIP() << "needs a CUDA GPU: " << ::vimoe::cuda::unavailable_reason(); \
  } while (0)

// Deterministic host values in [lo, hi) (a small LCG: tests must not depend on the
// engine's own random ops).
inline Tensor uniform(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1,
                      DType dtype = DType::F32, Device device = Device::cpu()) {
  std::vector<double> v(shape_numel(shape));
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (double& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = lo + (hi - lo) * static_cast<double>(s >> 11) / 9007199254740992.0;
  }
  return Tensor::from_vector(v, shape).to(dtype).to(device);
}

// Same as uniform() but returns a CPU f64 leaf that requires grad (for gradcheck).
inline Tensor leaf64(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1) {
  Tensor t = uniform(shape, seed, lo, hi, DType::F64);
  t.set_requires_grad(true);
  return t;
}

// Elementwise |a - b| <= atol + rtol * |b| after converting both to f64 on the CPU; reports
// the worst element.
inline ::testing::AssertionResult all_close(const Tensor& a, const Tensor& b, double atol = 1e-5,
                                            double rtol = 1e-5) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure()
           << "shapes differ: " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  double worst = 0;
  int64_t worst_i = -1;
  for (size_t i = 0; i < va.size(); ++i) {
    const double err = std::fabs(va[i] - vb[i]);
    const bool bad = std::isnan(va[i]) != std::isnan(vb[i]) || err > atol + rtol * std::fabs(vb[i]);
    if (bad && (worst_i < 0 || err > worst)) {
      worst = err;
      worst_i = static_cast<int64_t>(i);
    }
  }
  if (worst_i < 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << worst_i << ": " << va[worst_i] << " vs "
                                       << vb[worst_i] << " (|diff| " << worst << ", atol " << atol
                                       << ", rtol " << rtol << ")";
}

// Tolerances scaled by the largest finite magnitude M of the reference: a GPU result passes
// when |gpu - cpu| <= max(scaled * M, floor) + rtol * |cpu|.
struct ScaledTol {
  double scaled;
  double rtol;
};
// f32: f32 accumulation against the CPU's double; bf16: one final rounding on each side.
inline ScaledTol scaled_tol_for(DType dt) {
  return dt == DType::BF16 ? ScaledTol{2e-3, 1.0 / 64} : ScaledTol{1e-5, 1e-4};
}
inline ::testing::AssertionResult gpu_close(const Tensor& gpu, const Tensor& cpu, ScaledTol tol,
                                            double floor = 0) {
  if (!gpu.is_cuda()) return ::testing::AssertionFailure() << "result is not on the GPU";
  double m = 0;
  for (double v : cpu.to_vector<double>())
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  return all_close(gpu, cpu, std::max(tol.scaled * m, floor), tol.rtol);
}

// Runs gradcheck and turns its verdict into a gtest assertion.
inline ::testing::AssertionResult grad_ok(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                          const std::vector<Tensor>& inputs, double atol = 1e-6,
                                          double rtol = 1e-4) {
  const GradcheckResult r = gradcheck(f, inputs, 1e-6, atol, rtol);
  if (r.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << r.message << " (max abs error " << r.max_abs_error << ")";
}

// The largest |a - b| over two tensors' values (any dtypes and devices), in f64.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

// Cosine similarity of two tensors' values (any dtypes and devices), in f64.
inline double cosine(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double xy = 0, xx = 0, yy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    xy += x[i] * y[i];
    xx += x[i] * x[i];
    yy += y[i] * y[i];
  }
  return xy / std::sqrt(xx * yy);
}

// Asserts that `stmt` throws vimoe::Error whose message contains every one of `parts`.
#define EXPECT_VIMOE_ERROR(stmt, ...)                                                   \
  do {                                                                                  \
    try {                                                                               \
      stmt;                                                                             \
      ADD_FAILURE() << "expected vimoe::Error from " #stmt;                             \
    } catch (const ::vimoe::Error& e) {                                                 \
      const std::string msg = e.what();                                                 \
      for (const char* part : std::initializer_list<const char*>{__VA_ARGS__})          \
        EXPECT_NE(msg.find(part), std::string::npos) << "message '" << msg              \
                                                     << "' lacks '" << part << "'";     \
    }                                                                                   \
  } while (0)

}  // namespace vimoe::testing
