// Training-step parity with PyTorch, in the manner of llm.c's test_gpt2: the same tiny ViMoE,
// the same weights and batches, 10 optimiser steps of vimoe-train's recipe (label smoothing,
// the load-balancing loss, clipping, warm-up + cosine, AdamW with the app's parameter groups)
// through the app's own code (app::build_model, models::param_groups, app::TrainStep); per step
// the loss, the aux loss, the gradient norm before clipping and the learning rate must match
// the PyTorch run recorded by tests/fixtures/make_train_step_fixture.py, and so must the final
// weights. A failure names the first step and the first quantity that diverges.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/common/train_step.h"
#include "apps/common/trainer.h"
#include "engine/io/safetensors.h"
#include "tests/test_util.h"

using namespace vimoe;
namespace fs = std::filesystem;

namespace {

// f32 on both sides; the orders of summation differ (BLAS, reductions), which after ten
// AdamW steps leaves relative differences of about 1e-6.
constexpr double kRelTol = 1e-5;

fs::path fixture_dir() { return fs::path(VIMOE_SOURCE_DIR) / "tests" / "fixtures" / "train_step"; }

struct Fixture {
  nlohmann::json config;
  io::SafetensorsFile tensors;
};

Fixture load(const std::string& variant) {
  std::ifstream in(fixture_dir() / (variant + ".json"));
  EXPECT_TRUE(in.good()) << "missing fixture " << (fixture_dir() / (variant + ".json"));
  return {nlohmann::json::parse(in), io::SafetensorsFile::open((fixture_dir() / (variant + ".safetensors")).string())};
}

// The fixture's model as a vimoe-train configuration.
app::RunConfig run_config(const nlohmann::json& j) {
  const nlohmann::json& m = j.at("model");
  const nlohmann::json& e = j.at("moe");
  app::RunConfig c;
  c.model = "vit_tiny";
  c.image_size = m.at("image_size");
  c.patch_size = m.at("patch_size");
  c.width = m.at("width");
  c.depth = m.at("depth");
  c.heads = m.at("heads");
  c.mlp_ratio = m.at("mlp_hidden").get<double>() / m.at("width").get<double>();
  c.registers = 0;
  c.head = m.at("head_input");
  c.experts = e.at("experts");
  c.moe_blocks = e.at("blocks").get<std::vector<int64_t>>();
  c.top_k = e.at("top_k");
  c.renormalize_gates = e.at("renormalize");
  c.shared_expert = e.at("shared_expert");
  c.routing = e.at("routing");
  c.aux_alpha = e.at("aux_alpha");
  return c;
}

bool close(double got, double want) { return std::fabs(got - want) <= kRelTol * std::max(1.0, std::fabs(want)); }

void check_variant(const std::string& variant) {
  SCOPED_TRACE(variant);
  const Fixture f = load(variant);
  const nlohmann::json& m = f.config.at("model");
  const nlohmann::json& r = f.config.at("recipe");
  const app::RunConfig cfg = run_config(f.config);
  auto model = app::build_model(cfg, m.at("num_classes"), m.at("in_channels"));
  ASSERT_NEAR(model->config().at("ln_eps").get<double>(), m.at("ln_eps").get<double>(), 1e-12);

  // The PyTorch run's initial weights, under the engine's names (strict: every parameter).
  std::map<std::string, Tensor> init;
  for (const std::string& n : f.tensors.names())
    if (n.rfind("init.", 0) == 0) init.emplace(n.substr(5), f.tensors.get(n).clone());
  model->load_state_dict(init);
  model->train();

  optim::AdamW opt(models::param_groups(*model, r.at("weight_decay"), r.at("layer_decay")),
                   optim::AdamW::Options{.lr = r.at("lr"), .beta1 = r.at("beta1"), .beta2 = r.at("beta2"),
                                         .eps = r.at("eps")});
  const optim::WarmupCosine schedule{r.at("lr"), r.at("min_lr"), r.at("warmup_steps"), r.at("total_steps")};
  const int64_t steps = r.at("steps"), accum = r.at("accum_steps");
  app::StepRecipe recipe;
  recipe.accum_steps = accum;
  recipe.label_smoothing = r.at("label_smoothing");
  recipe.clip_grad = r.at("clip_grad");
  app::TrainStep step(*model, opt, schedule, recipe, Device::cpu());

  const std::vector<double> want_loss = f.tensors.get("loss").to_vector<double>();
  const std::vector<double> want_aux = f.tensors.get("aux").to_vector<double>();
  const std::vector<double> want_norm = f.tensors.get("grad_norm").to_vector<double>();
  const std::vector<double> want_lr = f.tensors.get("lr").to_vector<double>();
  ASSERT_EQ(want_loss.size(), static_cast<size_t>(steps));
  double worst_step = 0, worst_weight = 0;  // relative, for the log
  auto rel = [](double got, double want) { return std::fabs(got - want) / std::max(1.0, std::fabs(want)); };
  for (int64_t s = 0; s < steps; ++s) {
    double loss = 0, aux = 0;
    for (int64_t micro = 0; micro < accum; ++micro) {
      const std::string i = std::to_string(s * accum + micro);
      data::Batch b;
      b.images = f.tensors.get("images." + i).clone();
      b.labels = f.tensors.get("labels." + i).clone();
      const app::MicroBatchLoss l = step.micro_batch(b);
      loss += l.task.item<double>() / static_cast<double>(accum);
      aux += l.aux.item<double>() / static_cast<double>(accum);
    }
    const app::StepResult res = step.finish(s);
    const double norm = res.grad_norm.item<double>();
    // The first quantity of the first step that diverges, in the order they are computed.
    const std::pair<const char*, std::pair<double, double>> checks[] = {
        {"loss", {loss, want_loss[s]}}, {"aux loss", {aux, want_aux[s]}},
        {"gradient norm", {norm, want_norm[s]}}, {"learning rate", {res.lr, want_lr[s]}}};
    for (const auto& [what, v] : checks) {
      worst_step = std::max(worst_step, rel(v.first, v.second));
      ASSERT_TRUE(close(v.first, v.second))
          << "step " << s << ": the " << what << " diverges: engine " << v.first << ", PyTorch " << v.second
          << " (relative " << std::fabs(v.first - v.second) / std::max(1e-300, std::fabs(v.second)) << ")";
    }
  }

  // The final weights: the first parameter and element that diverge. One slice is exempt:
  // the key third of each qkv bias has a true gradient of zero (softmax ignores the constant
  // q . b_k a key bias adds to a query's scores), so the reference (f64) leaves it where it
  // started while f32 rounding noise, normalised by AdamW, moves it by up to about lr per
  // step. It only has to stay within that.
  const int64_t D = m.at("width");
  double lr_sum = 0;
  for (double lr : want_lr) lr_sum += lr;
  for (const auto& [name, p] : model->named_parameters()) {
    const std::vector<double> got = p.to_vector<double>();
    const std::vector<double> want = f.tensors.get("final." + name).to_vector<double>();
    ASSERT_EQ(got.size(), want.size()) << name;
    const bool qkv_bias = name.size() > 13 && name.compare(name.size() - 13, 13, "attn.qkv.bias") == 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const int64_t e = static_cast<int64_t>(i);
      if (qkv_bias && e >= D && e < 2 * D) {
        ASSERT_LE(std::fabs(got[i] - want[i]), 2 * lr_sum) << name << " element " << i << " (key bias)";
        continue;
      }
      worst_weight = std::max(worst_weight, rel(got[i], want[i]));
      ASSERT_TRUE(close(got[i], want[i])) << "after " << steps << " steps, " << name << " element " << i
                                          << " diverges: engine " << got[i] << ", PyTorch " << want[i];
    }
  }
  std::printf("%s: worst difference from PyTorch %.2g (per-step quantities), %.2g (final weights)\n",
              variant.c_str(), worst_step, worst_weight);
}

}  // namespace

TEST(TrainStepParity, ImageRoutingTop1) { check_variant("image_top1"); }
TEST(TrainStepParity, TokenRoutingTop2) { check_variant("token_top2"); }
TEST(TrainStepParity, ImageRoutingTop2WithLayerDecay) { check_variant("image_top2_layer_decay"); }
TEST(TrainStepParity, TokenRoutingTop1WithAccumulation) { check_variant("token_top1_accum2"); }
