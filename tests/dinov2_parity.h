// Shared by the DINOv2 parity tests: runs a fixture made by
// tests/fixtures/make_dinov2_fixture.py through our model and compares with transformers.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "engine/autocast.h"
#include "engine/io/safetensors.h"
#include "models/dinov2.h"
#include "tests/test_util.h"

namespace vimoe::testing {

namespace fs = std::filesystem;
using models::ViTConfig;


struct Parity {
  double hidden_max_abs, hidden_cos, pooled_cos;
};

enum class Precision { F32, BF16Autocast };

// Runs every input of io.safetensors through our model on `device` (f32 weights; under
// BF16Autocast the forward runs in an AutocastGuard); returns the worst figures.
// `weights` names the checkpoint inside dir (config.json beside it applies to either layout).
inline Parity run_fixture(const fs::path& dir, Device device, Precision precision,
                          const std::string& weights = "model.safetensors") {
  const bool mixed = precision == Precision::BF16Autocast;
  const char* label = mixed ? "bf16-autocast" : "f32";
  ViTConfig cfg = models::dinov2_config((dir / weights).string());
  models::VisionTransformer model(cfg);
  const models::ImportReport report = models::load_dinov2(model, (dir / weights).string());
  EXPECT_TRUE(report.missing.empty()) << report.missing.size() << " parameters missing";
  model.to(device);
  model.eval();
  const io::SafetensorsFile io = io::SafetensorsFile::open((dir / "io.safetensors").string());
  Parity worst{0, 1, 1};
  NoGradGuard no_grad;
  AutocastGuard autocast(DType::BF16, mixed);
  for (const std::string& name : io.names()) {
    if (name.rfind("input_", 0) != 0) continue;
    const std::string size = name.substr(6);
    const auto out = model.forward(io.get(name).to(device));
    const Tensor hidden = out.features.to(DType::F32).cpu();
    const Tensor expect = io.get("last_hidden_state_" + size);
    EXPECT_EQ(hidden.shape(), expect.shape()) << size;
    worst.hidden_max_abs = std::max(worst.hidden_max_abs, max_abs_diff(hidden, expect));
    worst.hidden_cos = std::min(worst.hidden_cos, cosine(hidden, expect));
    worst.pooled_cos = std::min(worst.pooled_cos, cosine(hidden.select(1, 0), io.get("pooler_output_" + size)));
    std::printf("dinov2 parity %s %s %s: max |diff| %.3g, cosine %.7f (hidden), %.7f (pooled)\n",
                dir.filename().c_str(), size.c_str(), label, max_abs_diff(hidden, expect),
                cosine(hidden, expect), cosine(hidden.select(1, 0), io.get("pooler_output_" + size)));
  }
  return worst;
}

// The full ViT-S/14 fixture under $VIMOE_DINOV2_FIXTURES (make_dinov2_fixture.py --full --out):
// transformers' when there is one, else the plain-PyTorch reference's; empty when neither.
inline fs::path full_fixture() {
  const char* dir = std::getenv("VIMOE_DINOV2_FIXTURES");
  if (!dir) return {};
  for (const char* name : {"dinov2_vits14", "dinov2_vits14_torch"})
    if (fs::exists(fs::path(dir) / name / "io.safetensors")) return fs::path(dir) / name;
  return {};
}

}  // namespace vimoe::testing

