#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/dtype.h"

using namespace vimoe;

namespace {
uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F16), 2u);
  EXPECT_EQ(dtype_size(DType::I32), 4u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  EXPECT_EQ(dtype_size(DType::U8), 1u);
  EXPECT_STREQ(dtype_name(DType::BF16), "bf16");
}

TEST(DType, Promotion) {
  EXPECT_EQ(promote_types(DType::F32, DType::BF16), DType::F32);
  EXPECT_EQ(promote_types(DType::BF16, DType::F16), DType::F32);
  EXPECT_EQ(promote_types(DType::BF16, DType::BF16), DType::BF16);
  EXPECT_EQ(promote_types(DType::I32, DType::F32), DType::F32);
  EXPECT_EQ(promote_types(DType::I64, DType::BF16), DType::BF16);
  EXPECT_EQ(promote_types(DType::U8, DType::I32), DType::I32);
  EXPECT_EQ(promote_types(DType::I32, DType::I64), DType::I64);
  EXPECT_EQ(promote_types(DType::F64, DType::F32), DType::F64);
}

TEST(DType, Bfloat16RoundsToNearestEven) {
  // 1 + 2^-8 lies exactly between two bf16 values (1 and 1 + 2^-7): ties go to even (1).
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  // 1 + 3*2^-8 is a tie between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  // Just above the tie rounds up.
  EXPECT_EQ(static_cast<float>(bfloat16(from_bits(bits_of(1.0f + std::ldexp(1.0f, -8)) + 1))),
            1.0f + std::ldexp(1.0f, -7));
  EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(static_cast<float>(bfloat16(std::numeric_limits<float>::infinity()))));
  // Every bf16 value survives a round trip through f32.
  for (uint32_t b = 0; b < 0x10000; b += 7) {
    bfloat16 h;
    h.bits = static_cast<uint16_t>(b);
    const float f = static_cast<float>(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(bfloat16(f).bits, h.bits) << b;
  }
}

TEST(DType, Float16ConversionsAreExact) {
  // Every f16 bit pattern (except NaNs) round-trips, subnormals and infinities included.
  for (uint32_t b = 0; b < 0x10000; ++b) {
    float16 h;
    h.bits = static_cast<uint16_t>(b);
    const float f = static_cast<float>(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(float16(f).bits, h.bits) << "bits " << b << " value " << f;
  }
  EXPECT_EQ(static_cast<float>(float16(65504.0f)), 65504.0f);   // largest finite
  EXPECT_TRUE(std::isinf(static_cast<float>(float16(65520.0f))));  // rounds past it
  EXPECT_EQ(static_cast<float>(float16(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));  // min subnormal
  EXPECT_EQ(static_cast<float>(float16(std::ldexp(1.0f, -26))), 0.0f);  // below half of it
  // Ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(static_cast<float>(float16(1.0f + std::ldexp(1.0f, -11))), 1.0f);
  EXPECT_EQ(static_cast<float>(float16(1.0f + 3 * std::ldexp(1.0f, -11))), 1.0f + std::ldexp(1.0f, -9));
  EXPECT_EQ(static_cast<float>(float16(0.1f)), 0.0999755859375f);
}

// Double to a half type rounds once: a double just above a tie of the half type, which a
// nearest-even f32 would put exactly on the tie (and then round to even), goes up; exact ties
// still go to even; the sign, infinities, the overflow threshold and tiny values behave.
TEST(DType, DoubleToHalfTypesRoundsOnce) {
  const double above_bf16_tie = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30);
  ASSERT_EQ(static_cast<double>(static_cast<float>(above_bf16_tie)), 1.0 + std::ldexp(1.0, -8))
      << "the f32 rounding must land on the tie for this test to mean anything";
  EXPECT_EQ(from_double<bfloat16>(above_bf16_tie).bits, 0x3F81);
  EXPECT_EQ(from_double<bfloat16>(-above_bf16_tie).bits, 0xBF81);
  EXPECT_EQ(from_double<bfloat16>(1.0 + std::ldexp(1.0, -8)).bits, 0x3F80) << "a tie goes to even";
  EXPECT_EQ(from_double<bfloat16>(1.0 + 3 * std::ldexp(1.0, -8)).bits, 0x3F82) << "a tie goes to even";

  const double above_f16_tie = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  ASSERT_EQ(static_cast<double>(static_cast<float>(above_f16_tie)), 1.0 + std::ldexp(1.0, -11));
  EXPECT_EQ(from_double<float16>(above_f16_tie).bits, 0x3C01);
  EXPECT_EQ(from_double<float16>(1.0 + std::ldexp(1.0, -11)).bits, 0x3C00);

  // Overflow: above bf16's largest finite value plus half an ulp, infinity; f32's own
  // overflow and infinities stay infinities; NaN stays NaN.
  EXPECT_EQ(from_double<bfloat16>(3.4e38).bits, 0x7F80);
  EXPECT_EQ(from_double<bfloat16>(1e300).bits, 0x7F80);
  EXPECT_EQ(from_double<bfloat16>(-std::numeric_limits<double>::infinity()).bits, 0xFF80);
  EXPECT_TRUE(std::isnan(static_cast<float>(from_double<bfloat16>(std::nan("")))));
  EXPECT_EQ(from_double<float16>(65520.0 - 1e-9).bits, 0x7BFF) << "just below f16's overflow threshold";
  EXPECT_EQ(from_double<float16>(65520.0).bits, 0x7C00);
  // Below half of the smallest subnormal: zero; just above it: the smallest subnormal.
  EXPECT_EQ(from_double<bfloat16>(1e-300).bits, 0x0000);
  EXPECT_EQ(from_double<float16>(std::ldexp(1.0, -25) * (1 + 1e-12)).bits, 0x0001);
  EXPECT_EQ(from_double<float16>(std::ldexp(1.0, -25)).bits, 0x0000) << "a tie goes to even";
  // Values a float holds exactly convert as before.
  for (float f : {0.0f, -0.0f, 1.0f, 0.3f, -2.75f, 1e-20f, 6.5e4f})
    EXPECT_EQ(from_double<bfloat16>(static_cast<double>(f)).bits, bfloat16(f).bits) << f;
}
