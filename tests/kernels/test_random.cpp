// Random numbers on the GPU beyond the op-parity rows (tests/op_parity/cases_random.cpp, which
// compare rand, uniform_, randn, normal_, trunc_normal_, dropout and drop_path with the CPU
// element by element, within their tolerances): that the roundings a few-ulp math-library
// difference can flip are rare (nearly every element identical, not merely close), and that
// the GPU's truncated normal stays within its bounds. The streams' statistics are the CPU
// suite's (tests/test_random.cpp): the GPU draws the same values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/ops/random.h"
#include "tests/test_util.h"

using namespace vimoe;

namespace {

const Device kGpu = Device::cuda();
const int64_t kSizes[] = {1, 257, 385 * 3, 3000017};

// How many elements differ at all.
int64_t mismatches(const Tensor& gpu, const Tensor& cpu) {
  const std::vector<double> a = gpu.to_vector<double>(), b = cpu.to_vector<double>();
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

// A bf16 randn value flips only where the f32 normals, a few ulps apart, straddle a bf16
// rounding boundary: ~1e-4 of the elements.
TEST(RandomGpu, RandnBf16RoundingFlipsAreRare) {
  VIMOE_REQUIRE_GPU();
  for (int64_t n : kSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const Tensor c = randn({n}, 99, DType::BF16, 2);
    const Tensor g = randn({n}, 99, TensorOptions(DType::BF16, kGpu), 2);
    ASSERT_TRUE(g.is_cuda());
    EXPECT_LE(mismatches(g, c), 1 + n / 100);
  }
}

// A truncated-normal value flips only where the double values, a few ulps apart, straddle an
// f32 rounding boundary: ~1e-8 of the elements. Every GPU draw lies within [a, b].
TEST(RandomGpu, TruncNormalStaysInBoundsAndRarelyFlips) {
  VIMOE_REQUIRE_GPU();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    double std, a, b;
  };
  // ViT's init, a one-sided tail (folded), and a far tail.
  const Case cases[] = {{0.02, -0.04, 0.04}, {1.0, 1.0, inf}, {2.0, 10.0, 12.0}};
  for (const Case& k : cases)
    for (int64_t n : kSizes) {
      SCOPED_TRACE("std=" + std::to_string(k.std) + " a=" + std::to_string(k.a) +
                   " n=" + std::to_string(n));
      Tensor c = Tensor::empty({n});
      Tensor g = Tensor::empty({n}, TensorOptions(DType::F32, kGpu));
      trunc_normal_(c, k.std, k.a, k.b, 123);
      trunc_normal_(g, k.std, k.a, k.b, 123);
      EXPECT_LE(mismatches(g, c), 1 + n / 1000);
      const std::vector<float> gv = g.to_vector<float>();
      for (float x : gv) {
        ASSERT_GE(x, k.a);
        ASSERT_LE(x, k.b);
      }
    }
}

}  // namespace
