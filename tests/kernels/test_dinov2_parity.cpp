// Parity of the full DINOv2 ViT-S/14 with Hugging Face transformers on the GPU, in f32 and
// under bf16 autocast. Its fixture (88 MB) is made on demand by tests/fixtures/make_dinov2_fixture.py --full
// (--source transformers or torch) and found through VIMOE_DINOV2_FIXTURES (the --out directory).
#include "tests/dinov2_parity.h"

using namespace vimoe;
using namespace vimoe::testing;

TEST(Dinov2Parity, FullViTS14OnTheGpu) {
  VIMOE_REQUIRE_GPU();
  const fs::path full = full_fixture();
  if (full.empty()) GTEST_SKIP() << "set VIMOE_DINOV2_FIXTURES to the --out directory of make_dinov2_fixture.py --full";
  const Parity f32 = run_fixture(full, Device::cuda(), Precision::F32);
  EXPECT_LE(f32.hidden_max_abs, 1e-3);
  EXPECT_GE(f32.hidden_cos, 0.9999);
  EXPECT_GE(f32.pooled_cos, 0.9999);
  const Parity bf16 = run_fixture(full, Device::cuda(), Precision::BF16Autocast);
  EXPECT_GE(bf16.hidden_cos, 0.999);
  EXPECT_GE(bf16.pooled_cos, 0.999);
}
