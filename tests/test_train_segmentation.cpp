// Segmentation end to end on a generated CamVid-layout folder: vimoe-train's iteration-based
// schedule with validations in mIoU, then the evaluation report (per-class IoU, prediction
// overlays, the routing heatmap by patch class and the expert-allocation maps), whole-image
// and sliding-window.
#include <gtest/gtest.h>
#include <stb_image_write.h>

#include <filesystem>
#include <fstream>

#include "apps/common/report.h"
#include "apps/common/trainer.h"
#include "tests/test_data_util.h"

using namespace vimoe;
namespace fs = std::filesystem;

namespace {

// A 24 x 32 scene: sky (0) above road (3), a car (8) in the lower left, void (11) in the
// top-right corner; the colours follow the classes so a model can learn them.
void write_scene(const fs::path& root, const std::string& split, int index) {
  const int H = 24, W = 32;
  std::vector<uint8_t> rgb(H * W * 3), label(H * W);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      uint8_t cls = y < 10 + index % 3 ? 0 : 3;
      if (y >= 14 && x >= 2 + index && x < 12 + index) cls = 8;
      if (y < 3 && x >= 28) cls = 11;
      label[y * W + x] = cls;
      const uint8_t base = static_cast<uint8_t>(cls * 20 + (x * 7 + y * 3 + index * 5) % 16);
      for (int c = 0; c < 3; ++c) rgb[(y * W + x) * 3 + c] = static_cast<uint8_t>(base + 60 * c);
    }
  const std::string stem = "scene_" + std::to_string(index);
  fs::create_directories(root / split);
  fs::create_directories(root / (split + "annot"));
  ASSERT_NE(stbi_write_png((root / split / (stem + ".png")).c_str(), W, H, 3, rgb.data(), W * 3), 0);
  ASSERT_NE(stbi_write_png((root / (split + "annot") / (stem + ".png")).c_str(), W, H, 1, label.data(), W), 0);
}

app::RunConfig camvid_run(const vimoe::testing::TempDir& dir) {
  for (int i = 0; i < 6; ++i) write_scene(dir.path(), "train", i);
  for (int i = 0; i < 3; ++i) write_scene(dir.path(), "val", i);
  app::RunConfig c;
  c.dataset = "camvid";
  c.data_dir = dir.path();
  c.model = "vit_s14";
  c.image_size = 16;  // the training crop
  c.patch_size = 8;
  c.width = 16;
  c.depth = 2;
  c.heads = 2;
  c.layer_scale = 0.1;
  c.experts = 3;
  c.moe_last = 1;
  c.top_k = 2;
  c.shared_expert = true;
  c.routing = "token";
  c.seg_scale = {32, 24};
  c.iterations = 6;
  c.warmup_iters = 2;
  c.val_every = 3;
  c.batch_size = 2;
  c.lr = 3e-3;
  c.workers = 0;
  c.device = "cpu";
  c.out = (fs::path(dir.path()) / "run").string();
  c.log_every = 3;
  c.checkpoint_every = 0;
  return c;
}

std::vector<nlohmann::json> records_with(const fs::path& metrics, const char* key) {
  std::ifstream in(metrics);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);)
    if (nlohmann::json j = nlohmann::json::parse(line); j.contains(key)) out.push_back(j);
  return out;
}

}  // namespace

TEST(TrainSegmentation, IterationScheduleValidatesInMIoUAndReports) {
  vimoe::testing::TempDir tmp;
  app::RunConfig c = camvid_run(tmp);
  const fs::path dir = tmp.path();
  app::Trainer trainer(c);
  ASSERT_EQ(trainer.run(), 0);
  EXPECT_EQ(trainer.step(), 6) << "--iterations sets the run's length whatever the epochs";
  const std::vector<nlohmann::json> vals = records_with(dir / "run" / "metrics.jsonl", "val_miou");
  ASSERT_EQ(vals.size(), 2u) << "one validation at step 3 (--val-every), the final one at 6";
  EXPECT_EQ(vals[0]["step"], 3);
  EXPECT_EQ(vals[1]["step"], 6);
  EXPECT_TRUE(vals[1].value("final", false));
  for (const nlohmann::json& v : vals) {
    EXPECT_GE(v["val_miou"].get<double>(), 0.0);
    EXPECT_LE(v["val_miou"].get<double>(), 1.0);
    EXPECT_FALSE(v.contains("val_top1"));
  }
  const nlohmann::json saved = nlohmann::json::parse(std::ifstream(dir / "run" / "config.json"));
  EXPECT_EQ(saved["head"], "patches");
  EXPECT_DOUBLE_EQ(saved["aux_alpha"].get<double>(), 0.001) << "the task's default alpha";

  // vimoe-eval run's path: the checkpoint rebuilt, whole images, then sliding windows.
  const app::LoadedRun run = app::load_run((dir / "run" / "final.safetensors").string(), Device::cpu());
  const app::Datasets data = app::open_datasets(run.config);
  data::Loader loader(data.val, app::eval_loader_options(run.config, data, run.model->input(), 0));
  const app::EvalResult whole = app::evaluate_segmentation(*run.model, loader, Device::cpu(), false, std::nullopt,
                                                           app::seg_inference(run.config, run.model->input()));
  ASSERT_TRUE(whole.pixels.has_value());
  // Every val pixel but the 3 x 4 void corner is labelled.
  EXPECT_EQ(whole.pixels->labelled_pixels(), 3 * (24 * 32 - 3 * 4));
  EXPECT_EQ(whole.images, 3);
  ASSERT_EQ(whole.routing_counts.size(), 1u);
  int64_t counted = 0;
  for (const auto& row : whole.routing_counts[0])
    for (int64_t v : row) counted += v;
  // 24 x 32 in 8-pixel patches: 3 x 4 per image, each with labelled pixels (the void corner
  // covers 12 of its patch's 64).
  EXPECT_EQ(counted, 3 * 3 * 4) << "each labelled patch's token counted once under its class";
  ASSERT_EQ(whole.routed_images.size(), 3u);
  EXPECT_EQ(whole.routed_images[0].top_expert[0].size(), 12u);
  ASSERT_EQ(whole.segmented.size(), 3u);
  EXPECT_EQ(whole.segmented[0].prediction.size(), 24u * 32u);

  const nlohmann::json s = app::write_eval_report(whole, data.val->class_names(), *run.model, (dir / "eval").string());
  for (const char* f : {"per_class_iou.csv", "per_class_iou.png", "confusion.png", "predictions.png", "predictions.csv",
                        "routing_block1.png", "routing_block1.csv", "routing_map_block1.png", "expert_similarity_block1.png",
                        "experts_per_image.csv", "summary.json"})
    EXPECT_TRUE(fs::exists(dir / "eval" / f)) << f;
  EXPECT_FALSE(fs::exists(dir / "eval" / "per_class.csv")) << "classification tables are not written";
  EXPECT_EQ(s["per_class_iou"].size(), 11u);
  EXPECT_TRUE(s["per_class_iou"]["Sky"].is_number()) << "a labelled class has an IoU";
  EXPECT_GE(s["miou"].get<double>(), 0.0);

  app::RunConfig slide = run.config;
  slide.seg_eval = "slide";
  const app::EvalResult windows = app::evaluate_segmentation(*run.model, loader, Device::cpu(), false, std::nullopt,
                                                             app::seg_inference(slide, run.model->input()));
  EXPECT_EQ(windows.pixels->labelled_pixels(), whole.pixels->labelled_pixels());
  EXPECT_TRUE(windows.routed_images.empty()) << "windows make no single allocation map";
  EXPECT_GT(windows.routing_counts[0][0][0] + windows.routing_counts[0][0][1] + windows.routing_counts[0][0][2], 0);
}
