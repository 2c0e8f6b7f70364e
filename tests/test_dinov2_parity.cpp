// DINOv2 parity on the CPU, f32 and bf16 autocast, against two committed tiny fixtures made by
// tests/fixtures/make_dinov2_fixture.py: one from Hugging Face transformers' Dinov2Model
// ("dinov2_tiny"), one from the plain-PyTorch statement of it in dinov2_reference.py
// ("dinov2_tiny_torch", which the script checks against transformers wherever it is installed).
#include "tests/dinov2_parity.h"

using namespace vimoe;
using namespace vimoe::testing;

namespace {

fs::path fixture(const char* name) { return fs::path(VIMOE_SOURCE_DIR) / "tests" / "fixtures" / name; }

void expect_f32_parity(const fs::path& dir) {
  const Parity p = run_fixture(dir, Device::cpu(), Precision::F32);
  EXPECT_LE(p.hidden_max_abs, 1e-4);
  EXPECT_GE(p.hidden_cos, 0.9999);
  EXPECT_GE(p.pooled_cos, 0.9999);
}

void expect_autocast_parity(const fs::path& dir) {
  const Parity p = run_fixture(dir, Device::cpu(), Precision::BF16Autocast);
  EXPECT_GE(p.hidden_cos, 0.999);
  EXPECT_GE(p.pooled_cos, 0.999);
}

#define VIMOE_REQUIRE_FIXTURE(dir)                                                             \
  if (!fs::exists((dir) / "io.safetensors"))                                                    \
  GTEST_SKIP() << (dir).string() << " missing: run tests/fixtures/make_dinov2_fixture.py on a " \
                                    "host with transformers"

}  // namespace

TEST(Dinov2Parity, TinyMatchesTransformersOnTheCpu) {
  VIMOE_REQUIRE_FIXTURE(fixture("dinov2_tiny"));
  expect_f32_parity(fixture("dinov2_tiny"));
}

TEST(Dinov2Parity, TinyMatchesTransformersUnderBf16Autocast) {
  VIMOE_REQUIRE_FIXTURE(fixture("dinov2_tiny"));
  expect_autocast_parity(fixture("dinov2_tiny"));
}

TEST(Dinov2Parity, TinyMatchesThePyTorchReferenceOnTheCpu) {
  ASSERT_TRUE(fs::exists(fixture("dinov2_tiny_torch") / "io.safetensors")) << "the committed fixture is missing";
  expect_f32_parity(fixture("dinov2_tiny_torch"));
}

TEST(Dinov2Parity, TinyMatchesThePyTorchReferenceUnderBf16Autocast) {
  ASSERT_TRUE(fs::exists(fixture("dinov2_tiny_torch") / "io.safetensors")) << "the committed fixture is missing";
  expect_autocast_parity(fixture("dinov2_tiny_torch"));
}

// The same weights in the original repository's layout (fused qkv) give the same outputs.
TEST(Dinov2Parity, OriginalKeyLayoutMatchesThePyTorchReference) {
  const fs::path dir = fixture("dinov2_tiny_torch");
  ASSERT_TRUE(fs::exists(dir / "model_original.safetensors")) << "the committed fixture is missing";
  EXPECT_EQ(models::read_dinov2((dir / "model_original.safetensors").string()).layout, "original");
  const Parity p = run_fixture(dir, Device::cpu(), Precision::F32, "model_original.safetensors");
  EXPECT_LE(p.hidden_max_abs, 1e-4);
  EXPECT_GE(p.hidden_cos, 0.9999);
}

// The full ViT-S/14 (37 x 37 position table resampled to 16 x 16 and 16 x 12) when its fixture
// has been made (88 MB, not committed).
TEST(Dinov2Parity, FullViTS14OnTheCpu) {
  const fs::path full = full_fixture();
  if (full.empty()) GTEST_SKIP() << "set VIMOE_DINOV2_FIXTURES to the --out directory of make_dinov2_fixture.py --full";
  expect_f32_parity(full);
  expect_autocast_parity(full);
}
