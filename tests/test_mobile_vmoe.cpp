// Mobile V-MoE (Daxberger et al.): one per-image router whose decision every MoE layer takes,
// its size, its super-class loss in the training step, and the super-class maps it is
// trained with (data/superclasses.h), including those clustered from a confusion graph
// (models/confusion_graph.h, apps/common/superclass_report.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "apps/common/superclass_report.h"
#include "apps/common/train_step.h"
#include "data/superclasses.h"
#include "engine/ops/loss.h"
#include "models/confusion_graph.h"
#include "models/factory.h"
#include "models/vit.h"
#include "tests/test_util.h"

using namespace vimoe;
using namespace vimoe::models;
namespace fs = std::filesystem;

namespace {

// 16x16 images, 4 blocks, 3 experts in the last two, one single router.
std::shared_ptr<VisionTransformer> mobile_vmoe(bool single = true) {
  const nlohmann::json o = {{"image_size", 16}, {"patch_size", 4}, {"width", 16}, {"depth", 4}, {"heads", 2}, {"in_channels", 3},
                            {"num_classes", 6}, {"moe", {{"experts", 3}, {"last", 2}, {"single_router", single},
                                                         {"balance", "none"}}}};
  auto m = std::dynamic_pointer_cast<VisionTransformer>(create_model("vit_tiny", o));
  m->init_weights(5);
  return m;
}

}  // namespace

TEST(MobileVMoE, OneRoutersDecisionReachesEveryMoELayer) {
  const auto m = mobile_vmoe();
  ASSERT_TRUE(m->moe_router);
  const auto sd = m->state_dict();
  EXPECT_EQ(sd.count("moe_router.gate.weight"), 1u);
  EXPECT_EQ(sd.count("moe_router.norm.weight"), 1u);
  EXPECT_EQ(sd.count("blocks.2.moe.router.weight"), 0u) << "the MoE layers have no router of their own";
  EXPECT_EQ(sd.count("blocks.3.moe.router.weight"), 0u);
  const Tensor images = vimoe::testing::uniform({5, 3, 16, 16}, 3);
  const ModelOutput out = m->forward(images);
  ASSERT_EQ(out.routing.size(), 2u);
  ASSERT_TRUE(out.router_logits.defined());
  EXPECT_EQ(out.router_logits.shape(), (Shape{5, 3}));
  EXPECT_EQ(out.routing[0].expert_ids.to_vector<int32_t>(), out.routing[1].expert_ids.to_vector<int32_t>());
  // Steering the router steers both layers: a large bias on expert 2 sends every image there.
  {
    NoGradGuard no_grad;
    auto* gate = dynamic_cast<LinearGate*>(m->moe_router->gate.get());
    gate->bias.copy_(Tensor::from_vector<float>({0, 0, 50}, {3}));
  }
  const ModelOutput steered = m->forward(images);
  for (const Routing& r : steered.routing)
    EXPECT_EQ(r.expert_ids.to_vector<int32_t>(), std::vector<int32_t>(5, 2));
  // ... and the experts of both layers then compute the output: zeroing expert 2 of block 3
  // changes it, zeroing expert 0 does not.
  auto zero_expert = [&](int64_t block, int64_t e) {
    NoGradGuard no_grad;
    m->blocks[block]->moe->fc2_weight.narrow(0, e, 1).zero_();
    m->blocks[block]->moe->fc2_bias.narrow(0, e, 1).zero_();
  };
  const Tensor before = steered.logits;
  zero_expert(3, 0);
  EXPECT_EQ(vimoe::testing::max_abs_diff(m->forward(images).logits, before), 0.0);
  zero_expert(2, 2);
  EXPECT_GT(vimoe::testing::max_abs_diff(m->forward(images).logits, before), 0.0);
}

TEST(MobileVMoE, TheRouterGetsGradientsFromEveryLayerAndIsCounted) {
  const auto m = mobile_vmoe();
  const Tensor images = vimoe::testing::uniform({4, 3, 16, 16}, 8);
  sum(m->forward(images).logits).backward();
  const auto* gate = dynamic_cast<LinearGate*>(m->moe_router->gate.get());
  ASSERT_TRUE(gate->weight.grad().defined());
  EXPECT_GT(max(abs(gate->weight.grad()), 0).to_vector<float>()[0], 0.0f);
  // Sizes: the router (LayerNorm + linear gate) once, no per-layer routers.
  const ModelSize s = m->size();
  EXPECT_EQ(s.total_params, m->num_parameters());
  const auto per_layer = mobile_vmoe(false);
  EXPECT_EQ(s.total_params - per_layer->size().total_params, (2 * 16 + 16 * 3 + 3) - 2 * (16 * 3 + 3));
  EXPECT_EQ(s.total_params - s.active_params, 2 * 2 * mlp_params(16, m->vit.mlp_hidden));
  // The router trains with the layers it serves (layer-wise lr decay: its first MoE block).
  EXPECT_EQ(m->layer_of("moe_router.gate.weight"), 3);
  // The stored configuration rebuilds it, and it says what it is.
  EXPECT_EQ(create_model_from_config(m->config())->num_parameters(), m->num_parameters());
  EXPECT_NE(m->describe().find("single router"), std::string::npos) << m->describe();
}

TEST(MobileVMoE, SingleRouterNeedsImageRoutingAndAViT) {
  EXPECT_VIMOE_ERROR(create_model("vit_tiny", {{"moe", {{"experts", 3}, {"last", 2}, {"single_router", true},
                                                        {"routing", "token"}}}}),
                     "single_router", "image routing");
  EXPECT_VIMOE_ERROR(create_model("convnext_cifar", {{"moe", {{"experts", 3}, {"placement", "last2"},
                                                              {"single_router", true}}}}),
                     "ConvNeXt", "single router");
}

// L = L_C + lambda * CE(router logits, group of the label): the step's aux part is exactly
// lambda times that cross-entropy (no balancing loss here), and its gradient reaches the router.
TEST(MobileVMoE, TheSuperclassLossAndItsGradient) {
  const auto m = mobile_vmoe();
  m->train();
  optim::AdamW opt(models::param_groups(*m, 0.0, 1.0), optim::AdamW::Options{.lr = 1e-3});
  app::StepRecipe recipe;
  recipe.group_of = Tensor::from_vector<int64_t>({0, 0, 1, 1, 2, 2}, {6});
  recipe.superclass_weight = 0.3;
  app::TrainStep step(*m, opt, optim::WarmupCosine{1e-3, 1e-5, 0, 10}, recipe, Device::cpu());
  data::Batch b;
  b.images = vimoe::testing::uniform({4, 3, 16, 16}, 12);
  b.labels = Tensor::from_vector<int64_t>({0, 3, 4, 5}, {4});
  const Tensor groups = Tensor::from_vector<int64_t>({0, 1, 2, 2}, {4});
  const ModelOutput out = m->forward(b.images);  // no noise: the same logits as the step's
  const double want = 0.3 * cross_entropy(out.router_logits, groups).item<double>();
  const std::vector<int64_t> chosen = argmax(out.router_logits, 1).to_vector<int64_t>();
  double hits = 0;
  for (int i = 0; i < 4; ++i) hits += chosen[i] == groups.to_vector<int64_t>()[i];

  // The router's gradient from the super-class loss alone, by autograd on the model.
  m->zero_grad();
  (cross_entropy(m->forward(b.images).router_logits, groups) * 0.3).backward();
  const auto* gate = dynamic_cast<LinearGate*>(m->moe_router->gate.get());
  const Tensor want_grad = gate->bias.grad().clone();
  m->zero_grad();

  const app::MicroBatchLoss l = step.micro_batch(b);
  EXPECT_NEAR(l.aux.item<double>(), want, 1e-6);
  EXPECT_NEAR(l.router_accuracy.item<double>(), hits / 4, 1e-12);
  // The step's router gradient is the task loss's (through the gates) plus the super-class
  // loss's: take away the task part, from the same step with super-classes off.
  const Tensor step_grad = gate->bias.grad().clone();
  m->zero_grad();
  app::StepRecipe plain;
  app::TrainStep task_only(*m, opt, optim::WarmupCosine{1e-3, 1e-5, 0, 10}, plain, Device::cpu());
  task_only.micro_batch(b);
  const Tensor task_grad = gate->bias.grad().clone();
  EXPECT_TRUE(vimoe::testing::all_close(step_grad - task_grad, want_grad, 1e-6, 1e-5));
  EXPECT_GT(vimoe::testing::max_abs_diff(want_grad, Tensor::zeros({3})), 0.0);
}

TEST(Superclasses, JsonMapsAreReadCheckedAndWritten) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_superclasses_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::vector<std::string> classes = {"cat", "dog", "car", "truck"};
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const data::SuperclassMap m = data::read_superclasses(
      write("ok.json", R"({"classes": {"truck": 1, "cat": 0, "dog": 0, "car": 1}, "group_names": ["animal", "vehicle"]})"),
      classes);
  EXPECT_EQ(m.group_of, (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(m.group_names, (std::vector<std::string>{"animal", "vehicle"}));
  data::write_superclasses((dir / "again.json").string(), m, classes);
  const data::SuperclassMap again = data::read_superclasses((dir / "again.json").string(), classes);
  EXPECT_EQ(again.group_of, m.group_of);
  EXPECT_EQ(again.group_names, m.group_names);

  EXPECT_VIMOE_ERROR(data::read_superclasses(write("a.json", R"({"classes": {"cat": 0, "dog": 0, "car": 1}})"), classes),
                     "a.json", "class \"truck\" has no group");
  EXPECT_VIMOE_ERROR(
      data::read_superclasses(write("b.json", R"({"classes": {"cat": 0, "dog": 0, "car": 2, "truck": 2}})"), classes),
      "b.json", "group 1 has no class");
  EXPECT_VIMOE_ERROR(
      data::read_superclasses(write("c.json", R"({"classes": {"cat": 0, "dog": 0, "car": 1, "bus": 1}})"), classes),
      "c.json", "class \"bus\" is not a class of the dataset");
  EXPECT_VIMOE_ERROR(data::read_superclasses(write("d.json", R"({"classes": {"cat": -1}})"), classes), "d.json",
                     "group -1");
  EXPECT_VIMOE_ERROR(data::read_superclasses(write("e.json", "{"), classes), "e.json", "not valid JSON");
  EXPECT_VIMOE_ERROR(data::read_superclasses((dir / "none.json").string(), classes), "cannot read", "none.json");
  fs::remove_all(dir);
}

TEST(Superclasses, RandomMapsAreFixedBySeedAndBalanced) {
  const data::SuperclassMap a = data::random_superclasses(10, 4, 3), b = data::random_superclasses(10, 4, 3);
  EXPECT_EQ(a.group_of, b.group_of);
  EXPECT_EQ(a.groups(), 4);
  std::vector<int> sizes(4, 0);
  for (int64_t g : a.group_of) ++sizes[g];
  for (int s : sizes) EXPECT_TRUE(s == 2 || s == 3) << s;  // 10 classes in 4 groups: 3, 3, 2, 2
  EXPECT_NE(data::random_superclasses(10, 4, 4).group_of, a.group_of);
  EXPECT_VIMOE_ERROR(data::random_superclasses(3, 4, 1), "random super-classes", "1..3 groups");
}

namespace {

// The same partition, whatever the group numbers.
bool same_partition(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a.size(); ++j)
      if ((a[i] == a[j]) != (b[i] == b[j])) return false;
  return true;
}

}  // namespace

// A block-structured confusion matrix: 12 classes in planted groups of sizes 2, 3, 3 and 4,
// interleaved over the class indices, with heavy confusion inside a group and faint, uneven
// confusion across groups. Clustering its graph into 4 recovers exactly the planted groups.
TEST(ConfusionGraph, ClusteringRecoversPlantedGroups) {
  const std::vector<int64_t> planted = {0, 1, 2, 3, 1, 2, 3, 0, 3, 2, 1, 3};
  const int64_t K = 12;
  std::vector<std::vector<int64_t>> confusion(K, std::vector<int64_t>(K, 0));
  std::mt19937_64 rng(3);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) {
      if (i == j) confusion[i][j] = 800;
      else if (planted[i] == planted[j]) confusion[i][j] = 40 + static_cast<int64_t>(rng() % 40);
      else confusion[i][j] = static_cast<int64_t>(rng() % 6);
    }
  const Matrix w = confusion_graph(confusion);
  for (int64_t i = 0; i < K; ++i) {
    EXPECT_EQ(w[i][i], 0.0);
    for (int64_t j = 0; j < K; ++j) EXPECT_EQ(w[i][j], w[j][i]);
  }
  const std::vector<int64_t> got = spectral_clusters(w, 4, 0);
  EXPECT_TRUE(same_partition(got, planted)) << ::testing::PrintToString(got);
  // Numbered by smallest member: class 0's group is 0, class 1's is 1, ...
  EXPECT_EQ(got[0], 0);
  EXPECT_EQ(got[1], 1);
  EXPECT_EQ(spectral_clusters(w, 4, 9), got) << "the same partition from another seed";
  // Exactly E groups, each used, also where the structure has fewer clear groups.
  for (int64_t e : {1, 2, 6, 12}) {
    const std::vector<int64_t> g = spectral_clusters(w, e, 0);
    for (int64_t k = 0; k < e; ++k) EXPECT_GT(std::count(g.begin(), g.end(), k), 0) << "E " << e << " group " << k;
    EXPECT_EQ(*std::max_element(g.begin(), g.end()), e - 1);
  }
  EXPECT_VIMOE_ERROR(spectral_clusters(w, 13), "spectral_clusters", "1..12 groups");
  Matrix asym = w;
  asym[0][1] += 0.5;
  EXPECT_VIMOE_ERROR(spectral_clusters(asym, 2), "symmetric");
}

TEST(ConfusionGraph, TheReportWritesTheMapTablesAndPictures) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_sc_report_" + std::to_string(::getpid()));
  const std::vector<std::string> classes = {"cat", "car", "dog", "truck"};
  const std::vector<std::vector<int64_t>> confusion = {{80, 1, 18, 1}, {0, 85, 2, 13}, {20, 1, 78, 1}, {1, 15, 0, 84}};
  const data::SuperclassMap m = app::write_superclass_report(confusion, classes, 2, dir.string());
  EXPECT_EQ(m.group_of, (std::vector<int64_t>{0, 1, 0, 1}));  // animals, vehicles
  for (const char* f : {"superclasses.json", "superclasses.csv", "superclasses.png", "confusion.csv", "confusion.png"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  EXPECT_EQ(data::read_superclasses((dir / "superclasses.json").string(), classes).group_of, m.group_of);
  fs::remove_all(dir);
}
