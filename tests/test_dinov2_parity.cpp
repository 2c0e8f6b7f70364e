// Parity with Hugging Face transformers' Dinov2Model on the committed tiny fixture (CPU): f32,
// and bf16 autocast.
#include "tests/dinov2_parity.h"

using namespace vimoe;
using namespace vimoe::testing;

TEST(Dinov2Parity, TinyMatchesTransformersOnTheCpu) {
  if (!fs::exists(tiny_fixture() / "io.safetensors"))
    GTEST_SKIP() << "fixture missing: run tests/fixtures/make_dinov2_fixture.py on a host with transformers";
  const Parity p = run_fixture(tiny_fixture(), Device::cpu(), Precision::F32);
  EXPECT_LE(p.hidden_max_abs, 1e-4);
  EXPECT_GE(p.hidden_cos, 0.9999);
  EXPECT_GE(p.pooled_cos, 0.9999);
}


TEST(Dinov2Parity, TinyMatchesTransformersUnderBf16Autocast) {
  if (!fs::exists(tiny_fixture() / "io.safetensors"))
    GTEST_SKIP() << "fixture missing: run tests/fixtures/make_dinov2_fixture.py on a host with transformers";
  const Parity p = run_fixture(tiny_fixture(), Device::cpu(), Precision::BF16Autocast);
  EXPECT_GE(p.hidden_cos, 0.999);
  EXPECT_GE(p.pooled_cos, 0.999);
}
