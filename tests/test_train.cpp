// The training driver: exact resumption, and a short run that learns.
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "apps/common/report.h"
#include "apps/common/trainer.h"
#include "data/superclasses.h"
#include "engine/io/safetensors.h"
#include "models/factory.h"
#include "models/vit.h"
#include "tests/test_util.h"

using namespace vimoe;
namespace fs = std::filesystem;

namespace {

bool have_fashion_mnist() { return fs::exists("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"); }

app::RunConfig small_run(const std::string& out, int64_t steps) {
  app::RunConfig c;
  c.model = "vit_tiny";
  c.experts = 4;
  c.moe_last = 2;
  c.shared_expert = true;
  c.drop_path = 0.1;  // exercises the random stream across the resume
  c.batch_size = 16;
  c.max_steps = steps;
  c.warmup_epochs = 0.001;
  c.workers = 2;
  c.seed = 7;
  c.device = "cpu";
  c.out = out;
  c.log_every = 1000;
  c.checkpoint_every = 0;
  c.final_eval = false;
  return c;
}

app::RunConfig with_precision(app::RunConfig c, const std::string& precision) {
  c.precision = precision;
  return c;
}

std::map<std::string, Tensor> model_tensors(const std::string& checkpoint) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(checkpoint);
  std::map<std::string, Tensor> out;
  for (const std::string& n : f.names()) out.emplace(n, f.get(n).clone());
  return out;
}

// A run on a folder of 16 tiny images in two classes: 4 steps of 4 images per epoch.
app::RunConfig tiny_folder_run(const fs::path& dir) {
  for (int cls = 0; cls < 2; ++cls)
    for (int i = 0; i < 8; ++i) {
      const fs::path f = dir / "data" / ("class" + std::to_string(cls)) / (std::to_string(i) + ".png");
      fs::create_directories(f.parent_path());
      std::vector<uint8_t> px(8 * 8 * 3);
      for (size_t k = 0; k < px.size(); ++k) px[k] = static_cast<uint8_t>((k * 37 + i * 11 + cls * 101) % 256);
      EXPECT_NE(stbi_write_png(f.string().c_str(), 8, 8, 3, px.data(), 8 * 3), 0) << f;
    }
  app::RunConfig c = small_run((dir / "run").string(), 0);
  c.dataset = "folder";
  c.data_dir = c.val_dir = (dir / "data").string();
  c.image_size = 8;
  c.patch_size = 4;
  c.width = 16;
  c.depth = 2;
  c.heads = 2;
  c.moe_last = 1;
  c.batch_size = 4;
  c.drop_path = 0;
  c.final_eval = true;
  return c;
}

// Every record of a run's metrics.jsonl.
std::vector<nlohmann::json> metric_records(const fs::path& metrics_path) {
  std::vector<nlohmann::json> out;
  std::ifstream metrics(metrics_path);
  for (std::string line; std::getline(metrics, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// (epoch, final) of every validation record.
std::vector<std::pair<int64_t, bool>> validations(const fs::path& metrics_path) {
  std::vector<std::pair<int64_t, bool>> out;
  for (const nlohmann::json& j : metric_records(metrics_path))
    if (j.contains("val_top1")) out.emplace_back(j.at("epoch").get<int64_t>(), j.value("final", false));
  return out;
}

// The step of a run's "diverged" record, -1 when there is none.
int64_t diverged_step(const fs::path& metrics_path) {
  for (const nlohmann::json& j : metric_records(metrics_path))
    if (j.value("diverged", false)) return j.at("step").get<int64_t>();
  return -1;
}

}  // namespace

// k steps, a checkpoint, k more after resuming: bit-identical to 2k straight steps, in f32 and
// under bf16 autocast.
TEST(Train, ResumingContinuesExactly) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  for (const std::string precision : {"f32", "bf16"}) {
    SCOPED_TRACE(precision);
    const fs::path dir = fs::temp_directory_path() / ("vimoe_resume_" + precision + "_" + std::to_string(::getpid()));
    const int64_t k = 6;
    {
      app::Trainer straight(with_precision(small_run((dir / "straight").string(), 2 * k), precision));
      ASSERT_EQ(straight.run(), 0);
    }
    {
      app::Trainer first(with_precision(small_run((dir / "split").string(), 2 * k), precision));
      first.pause_at(k);
      ASSERT_EQ(first.run(), 0);
      EXPECT_FALSE(fs::exists(dir / "split" / "final.safetensors"));
    }
    {
      app::RunConfig c = with_precision(small_run((dir / "split").string(), 2 * k), precision);
      c.resume = (dir / "split" / "last.safetensors").string();
      app::Trainer second(c);
      EXPECT_EQ(second.step(), k);
      ASSERT_EQ(second.run(), 0);
    }
    const auto a = model_tensors((dir / "straight" / "final.safetensors").string());
    const auto b = model_tensors((dir / "split" / "final.safetensors").string());
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, t] : a)
      EXPECT_TRUE(vimoe::testing::all_close(b.at(name), t, 0, 0)) << name << " differs after resuming";
    fs::remove_all(dir);
  }
}

// The same short run in f32 and under bf16 autocast: both learn, their loss curves stay
// together, and the master weights stay f32.
TEST(Train, Bf16AutocastTracksF32AndKeepsF32MasterWeights) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  const fs::path dir = fs::temp_directory_path() / ("vimoe_bf16_" + std::to_string(::getpid()));
  auto train = [&](const std::string& precision) {
    app::RunConfig c = small_run((dir / precision).string(), 80);
    c.precision = precision;
    c.lr = 2e-3;
    c.log_every = 10;
    app::Trainer trainer(c);
    EXPECT_EQ(trainer.run(), 0);
    std::vector<double> losses;
    std::ifstream metrics(dir / precision / "metrics.jsonl");
    for (std::string line; std::getline(metrics, line);) {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (j.contains("loss_avg")) losses.push_back(j.at("loss_avg").get<double>());
    }
    return losses;
  };
  const std::vector<double> f32 = train("f32"), bf16 = train("bf16");
  ASSERT_EQ(f32.size(), 8u);
  ASSERT_EQ(bf16.size(), 8u);
  for (const auto* losses : {&f32, &bf16})
    EXPECT_LT(losses->back(), losses->front() - 0.2) << "did not learn";
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_NEAR(bf16[i], f32[i], 0.1) << "log line " << i;
  for (const auto& [name, t] : model_tensors((dir / "bf16" / "final.safetensors").string())) {
    if (name.rfind("model.", 0) != 0 || !is_floating(t.dtype())) continue;
    EXPECT_EQ(t.dtype(), DType::F32) << name;
    EXPECT_TRUE(std::isfinite(sum(abs(t)).item<double>())) << name;
  }
  fs::remove_all(dir);
}

// Validation records count completed epochs, the per-epoch ones and the final one alike: a
// two-epoch run logs epoch 1 after the first epoch and epoch 2 at the end.
TEST(Train, ValidationRecordsCountCompletedEpochs) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_epochs_" + std::to_string(::getpid()));
  app::RunConfig c = tiny_folder_run(dir);
  c.epochs = 2;
  {
    app::Trainer trainer(c);
    ASSERT_EQ(trainer.run(), 0);
  }
  const std::vector<std::pair<int64_t, bool>> expected = {{1, false}, {2, true}};
  EXPECT_EQ(validations(dir / "run" / "metrics.jsonl"), expected);
  fs::remove_all(dir);
}

// --max-steps is the run's length, schedule included: the cosine has nearly reached --min-lr
// by the last of 6 steps, though --epochs 10 would be 40 steps.
TEST(Train, MaxStepsSetsTheScheduleLength) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_max_steps_" + std::to_string(::getpid()));
  app::RunConfig c = tiny_folder_run(dir);
  c.epochs = 10;
  c.max_steps = 6;
  c.log_every = 1;
  c.final_eval = false;
  {
    app::Trainer trainer(c);
    ASSERT_EQ(trainer.run(), 0);
    EXPECT_EQ(trainer.step(), 6);
  }
  double last_lr = -1;
  for (const nlohmann::json& j : metric_records(dir / "run" / "metrics.jsonl"))
    if (j.contains("lr")) last_lr = j.at("lr").get<double>();
  EXPECT_GT(last_lr, 0);
  EXPECT_LT(last_lr, 0.1 * c.lr) << "the schedule did not end with the run";
  fs::remove_all(dir);
}

// A truncated image in the folder (used for training and validation here) is skipped in
// every epoch and validation, named once per split in a warning with the decoder's reason,
// and counted in each validation record and summary line; the run completes.
TEST(Train, UnreadableImagesAreSkippedWarnedAndCounted) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_unreadable_" + std::to_string(::getpid()));
  app::RunConfig c = tiny_folder_run(dir);
  c.epochs = 2;
  const fs::path bad = dir / "data" / "class0" / "3.png";
  {
    std::ifstream in(bad, std::ios::binary);
    std::vector<char> head(40);  // the signature and the IHDR chunk: the scan still accepts it
    in.read(head.data(), 40);
    std::ofstream(bad, std::ios::binary | std::ios::trunc).write(head.data(), 40);
  }
  ::testing::internal::CaptureStderr();
  int status = -1;
  {
    app::Trainer trainer(c);
    status = trainer.run();
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(status, 0) << err;
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = err.find(needle); at != std::string::npos; at = err.find(needle, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("warning: skipping an unreadable training image"), 1u) << err;
  EXPECT_EQ(count("warning: skipping an unreadable validation image"), 1u) << err;
  EXPECT_EQ(count(bad.string() + ": PNG decoder"), 2u) << err;
  EXPECT_EQ(count("truncated"), 2u) << err;
  EXPECT_EQ(count("2 unreadable images skipped (1 training, 1 validation)"), 2u) << err;
  int validations_seen = 0;
  for (const nlohmann::json& j : metric_records(dir / "run" / "metrics.jsonl")) {
    if (!j.contains("val_top1")) continue;
    ++validations_seen;
    EXPECT_EQ(j.at("skipped_train_images"), 1) << j.dump();
    EXPECT_EQ(j.at("skipped_val_images"), 1) << j.dump();
  }
  EXPECT_EQ(validations_seen, 2);
  fs::remove_all(dir);
}

// The second model family through the same app code: a ConvNeXt-MoE (pixel routing, the
// Sweet-spot "last2" placement) trains, pauses and resumes step for step, and its checkpoint
// rebuilds the model for evaluation, with a routing heatmap per MoE layer.
TEST(Train, ConvNeXtMoETrainsResumesAndEvaluates) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_convnext_" + std::to_string(::getpid()));
  app::RunConfig c = tiny_folder_run(dir);
  c.model = "convnext_cifar";
  c.patch_size = 1;  // a 1x1 stem: 8x8 images give 8x8 to 1x1 maps
  c.width = 8;
  c.depth = c.heads = 0;
  c.moe_last = 0;
  c.moe_placement = "last2";
  c.routing = "token";
  c.epochs = 2;
  const int64_t steps = 8;  // 4 per epoch
  {
    app::RunConfig straight = c;
    straight.out = (dir / "straight").string();
    straight.final_eval = false;
    app::Trainer t(straight);
    ASSERT_EQ(t.run(), 0);
    EXPECT_EQ(t.step(), steps);
  }
  {
    app::Trainer first(c);
    first.pause_at(steps / 2);
    ASSERT_EQ(first.run(), 0);
  }
  app::RunConfig again = c;
  again.resume = (fs::path(c.out) / "last.safetensors").string();
  app::Trainer second(again);
  EXPECT_EQ(second.step(), steps / 2);
  ASSERT_EQ(second.run(), 0);
  const auto a = model_tensors((dir / "straight" / "final.safetensors").string());
  const auto b = model_tensors((fs::path(c.out) / "final.safetensors").string());
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a.count("model.stages.3.blocks.1.moe.fc1_weight"), 1u);
  for (const auto& [name, t] : a) EXPECT_TRUE(vimoe::testing::all_close(b.at(name), t, 0, 0)) << name;

  const app::LoadedRun run = app::load_run((fs::path(c.out) / "final.safetensors").string(), Device::cpu());
  EXPECT_EQ(run.model->config().at("name"), "convnext_cifar");
  EXPECT_EQ(run.model->moe_config().blocks, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(run.model->routing_unit(), "pixels");
  data::LoaderOptions opts;
  opts.batch_size = 4;
  opts.shuffle = false;
  const app::Datasets data = app::open_datasets(run.config);
  opts.transform = app::eval_transform(run.config, data, run.model->input().image_size, run.model->input().channels);
  data::Loader loader(data.val, opts);
  const app::EvalResult r = app::evaluate(*run.model, loader, Device::cpu(), false);
  EXPECT_EQ(r.images, 16);
  ASSERT_EQ(r.routing_counts.size(), 2u);
  int64_t decisions = 0;
  for (const auto& row : r.routing_counts[1])
    for (int64_t n : row) decisions += n;
  EXPECT_EQ(decisions, 16 * 1 * 1) << "stage 3 sees 1x1 maps: one pixel decision per image";
  const nlohmann::json summary = app::write_eval_report(r, data.val->class_names(), *run.model, (dir / "eval").string());
  EXPECT_TRUE(fs::exists(dir / "eval" / "routing_block5.png"));
  EXPECT_TRUE(fs::exists(dir / "eval" / "routing_block7.csv"));
  EXPECT_EQ(summary.at("model").at("total_params").get<int64_t>(), run.model->num_parameters());
  fs::remove_all(dir);
}

// Mobile V-MoE end to end: a single router trained on super-classes (a JSON map, and the
// random baseline), with router accuracy in the progress records, the validation records and
// vimoe-eval's evaluation; the map is kept beside the checkpoints.
TEST(Train, MobileVMoETrainsOnSuperclassesAndReportsRouterAccuracy) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_mobile_" + std::to_string(::getpid()));
  app::RunConfig c = tiny_folder_run(dir);
  c.depth = 3;
  c.moe_last = 2;
  c.experts = 2;
  c.single_router = true;
  c.balance = "none";
  c.epochs = 2;
  c.log_every = 2;
  std::ofstream(dir / "groups.json") << R"({"classes": {"class0": 1, "class1": 0}, "group_names": ["b", "a"]})";
  c.superclasses = (dir / "groups.json").string();
  {
    app::Trainer t(c);
    ASSERT_EQ(t.run(), 0);
  }
  const std::vector<nlohmann::json> records = metric_records(fs::path(c.out) / "metrics.jsonl");
  int progress = 0, validations_seen = 0;
  for (const nlohmann::json& r : records) {
    if (r.contains("loss_avg")) {
      ++progress;
      ASSERT_TRUE(r.contains("router_accuracy")) << r.dump();
      EXPECT_GE(r.at("router_accuracy").get<double>(), 0.0);
      EXPECT_LE(r.at("router_accuracy").get<double>(), 1.0);
    }
    if (r.contains("val_top1")) {
      ++validations_seen;
      EXPECT_TRUE(r.contains("val_router_accuracy")) << r.dump();
    }
  }
  EXPECT_EQ(progress, 4);
  EXPECT_EQ(validations_seen, 2);
  const data::SuperclassMap kept =
      data::read_superclasses((fs::path(c.out) / "superclasses.json").string(), {"class0", "class1"});
  EXPECT_EQ(kept.group_of, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(kept.group_names, (std::vector<std::string>{"b", "a"}));

  const app::LoadedRun run = app::load_run((fs::path(c.out) / "final.safetensors").string(), Device::cpu());
  EXPECT_TRUE(run.model->moe_config().single_router);
  EXPECT_EQ(run.config.superclasses, c.superclasses);

  // The random baseline: one group per expert, fixed by the seed; a map of another size is refused.
  app::RunConfig r = c;
  r.out = (dir / "random").string();
  r.superclasses = "random";
  r.epochs = 1;
  {
    app::Trainer t(r);
    ASSERT_EQ(t.run(), 0);
  }
  EXPECT_EQ(data::read_superclasses((dir / "random" / "superclasses.json").string(), {"class0", "class1"}).group_of,
            data::random_superclasses(2, 2, r.seed).group_of);
  app::RunConfig bad = c;
  bad.out = (dir / "bad").string();
  bad.experts = 3;
  EXPECT_VIMOE_ERROR(app::Trainer{bad}, "2 groups", "--experts 3", "must be equal");
  bad.experts = 2;
  bad.single_router = false;
  EXPECT_VIMOE_ERROR(app::Trainer{bad}, "--superclasses", "--single-router");
  fs::remove_all(dir);
}

// A finished run extended by more epochs: it continues from its last step with the longer
// schedule, its earlier final evaluation becomes that epoch's validation, and it ends with
// a final evaluation of its own; a new run into the same directory is refused.
TEST(Train, AFinishedRunIsExtendedByMoreEpochs) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_extend_" + std::to_string(::getpid()));
  app::RunConfig c = tiny_folder_run(dir);
  c.epochs = 2;
  {
    app::Trainer trainer(c);
    ASSERT_EQ(trainer.run(), 0);
  }
  EXPECT_VIMOE_ERROR(app::Trainer{c}, "already holds a run");
  app::RunConfig more = c;
  more.epochs = 3;
  more.resume = (dir / "run" / "last.safetensors").string();
  {
    app::Trainer trainer(more);
    ASSERT_EQ(trainer.run(), 0);
  }
  const std::vector<std::pair<int64_t, bool>> expected = {{1, false}, {2, false}, {3, true}};
  EXPECT_EQ(validations(dir / "run" / "metrics.jsonl"), expected);
  const io::SafetensorsFile last = io::SafetensorsFile::open((dir / "run" / "last.safetensors").string());
  EXPECT_EQ(last.metadata().at("step"), "12");  // 3 epochs of 4 steps
  fs::remove_all(dir);
}

// A run whose loss becomes non-finite (an absurd learning rate: the first update makes the
// weights ~1e29, the next forward overflows) stops as diverged with status 3, logs a
// "diverged" record and writes no checkpoint after it: last.safetensors keeps the last good
// step, with finite weights.
TEST(Train, DivergedRunStopsAndKeepsTheLastGoodCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  const fs::path dir = fs::temp_directory_path() / ("vimoe_diverge_" + std::to_string(::getpid()));
  app::RunConfig c = small_run((dir / "run").string(), 20);
  c.lr = 1e30;
  c.min_lr = 0;
  c.checkpoint_every = 1;
  c.log_every = 1;
  {
    app::Trainer trainer(c);
    EXPECT_EQ(trainer.run(), 3);
  }
  const int64_t diverged_at = diverged_step(dir / "run" / "metrics.jsonl");
  ASSERT_GT(diverged_at, 0) << "no diverged record";
  const io::SafetensorsFile last = io::SafetensorsFile::open((dir / "run" / "last.safetensors").string());
  EXPECT_EQ(std::stoll(last.metadata().at("step")), diverged_at - 1);
  for (const std::string& n : last.names())
    if (n.rfind("model.", 0) == 0) {
      for (float v : last.get(n).to(DType::F32).to_vector<float>()) ASSERT_TRUE(std::isfinite(v)) << n;
    }
  // Two bad steps allowed: the first is skipped and reported, the run goes on to a second.
  app::RunConfig patient = c;
  patient.out = (dir / "patient").string();
  patient.max_bad_steps = 2;
  {
    app::Trainer trainer(patient);
    EXPECT_EQ(trainer.run(), 3);
  }
  EXPECT_EQ(diverged_step(dir / "patient" / "metrics.jsonl"), diverged_at + 1);
  const io::SafetensorsFile patient_last = io::SafetensorsFile::open((dir / "patient" / "last.safetensors").string());
  EXPECT_EQ(std::stoll(patient_last.metadata().at("step")), diverged_at - 1);  // none after a skipped step
  fs::remove_all(dir);
}

// Every config the project ships parses (an unknown key is an error) and describes a valid
// model; the model itself is built for the ones that need no downloaded weights.
TEST(Train, ShippedConfigsParseAndBuild) {
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(VIMOE_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().filename().string());
    ++seen;
    app::RunConfig c;
    CLI::App cli;
    cli.allow_config_extras(false);
    app::add_options(cli, c);
    const std::string path = entry.path().string();
    const char* argv[] = {"vimoe-train", "--config", path.c_str()};
    ASSERT_NO_THROW(cli.parse(3, argv));
    app::apply_task_defaults(c);  // as vimoe-train does: the segmentation configs get their head
    ASSERT_NO_THROW(c.validate());
    if (c.init == "scratch") {
      const auto model = app::build_model(c, 10, 3);
      EXPECT_EQ(model->size().total_params, model->num_parameters());
    }
  }
  EXPECT_GE(seen, 3);
}

// --layer-scale: a value, 0 for the preset's, or none (no LayerScale); a DINOv2 start keeps its own.
TEST(Train, LayerScaleOption) {
  auto parsed = [](const std::string& value) {
    app::RunConfig c;
    CLI::App cli;
    app::add_options(cli, c);
    const char* argv[] = {"vimoe-train", "--model", "vit_tiny", "--layer-scale", value.c_str()};
    cli.parse(5, argv);
    return c;
  };
  auto layer_scale = [](const app::RunConfig& c) {
    return app::build_model(c, 10, 1)->config().at("layer_scale_init").get<double>();
  };
  EXPECT_DOUBLE_EQ(layer_scale(parsed("0")), models::preset("vit_tiny").layer_scale_init);
  EXPECT_DOUBLE_EQ(layer_scale(parsed("1e-5")), 1e-5);
  const app::RunConfig none = parsed("none");
  EXPECT_EQ(layer_scale(none), 0.0);
  // Saved and read back (a checkpoint's run configuration) it stays none.
  EXPECT_EQ(layer_scale(app::from_json(app::to_json(none))), 0.0);
  EXPECT_VIMOE_ERROR(parsed("-0.5").model_options(10, 1), "--layer-scale", "none", "-0.5");
  app::RunConfig dinov2 = none;
  dinov2.init = "/nonexistent/dinov2.safetensors";
  EXPECT_VIMOE_ERROR(app::build_model(dinov2, 10, 3), "layer_scale 0 (none)", "DINOv2");
}

// Images are normalised with the training set's own statistics (torchvision's constants),
// ImageNet's for folders and pretrained backbones, or what --normalize names.
TEST(Train, NormalizationStatisticsPerDataset) {
  app::RunConfig c;
  auto mean_std = [&](const std::string& dataset, const std::string& normalize, const std::string& init) {
    c.dataset = dataset;
    c.normalize = normalize;
    c.init = init;
    const app::Normalization n = app::normalization(c);
    return std::make_pair(n.mean, n.std);
  };
  using V = std::vector<float>;
  EXPECT_EQ(mean_std("cifar10", "auto", "scratch"), std::make_pair(V{0.4914f, 0.4822f, 0.4465f}, V{0.2470f, 0.2435f, 0.2616f}));
  EXPECT_EQ(mean_std("cifar100", "auto", "scratch"), std::make_pair(V{0.5071f, 0.4865f, 0.4409f}, V{0.2673f, 0.2564f, 0.2762f}));
  EXPECT_EQ(mean_std("fashion-mnist", "auto", "scratch"), std::make_pair(V{0.2860f}, V{0.3530f}));
  EXPECT_EQ(mean_std("mnist", "auto", "scratch"), std::make_pair(V{0.1307f}, V{0.3081f}));
  const auto imagenet = std::make_pair(V{0.485f, 0.456f, 0.406f}, V{0.229f, 0.224f, 0.225f});
  EXPECT_EQ(mean_std("folder", "auto", "scratch"), imagenet);
  EXPECT_EQ(mean_std("cifar10", "auto", "dinov2.safetensors"), imagenet) << "a pretrained backbone keeps its statistics";
  EXPECT_EQ(mean_std("folder", "cifar10", "scratch").first, (V{0.4914f, 0.4822f, 0.4465f}));
  EXPECT_VIMOE_ERROR(mean_std("folder", "cifar", "scratch"), "--normalize", "cifar10", "\"cifar\"");
}

TEST(Train, PrecisionPicksTheAutocastType) {
  EXPECT_EQ(app::autocast_type("auto", Device::cpu()), std::nullopt);
  EXPECT_EQ(app::autocast_type("auto", Device::cuda()), DType::BF16);
  EXPECT_EQ(app::autocast_type("bf16", Device::cpu()), DType::BF16);
  EXPECT_EQ(app::autocast_type("f32", Device::cuda()), std::nullopt);
  EXPECT_VIMOE_ERROR(app::autocast_type("fp8", Device::cpu()), "--precision", "fp8");
}

TEST(Train, ParamGroupsSeparateDecayAndLayers) {
  app::RunConfig c;
  c.experts = 4;
  c.moe_last = 1;
  const auto model = app::build_model(c, 10, 1);
  const auto groups = models::param_groups(*model, 0.05, 0.5);
  int64_t total = 0;
  for (const auto& g : groups) {
    for (const Tensor& p : g.params) {
      total += p.numel();
      if (p.dim() <= 1) {
        EXPECT_EQ(g.weight_decay, 0.0);
      }
    }
    EXPECT_GT(g.lr_scale, 0.0);
    EXPECT_LE(g.lr_scale, 1.0);
  }
  EXPECT_EQ(total, model->num_parameters());
  // The head's group has the full rate, the embeddings' the most decayed one.
  double lo = 1, hi = 0;
  for (const auto& g : groups) {
    lo = std::min(lo, g.lr_scale);
    hi = std::max(hi, g.lr_scale);
  }
  EXPECT_DOUBLE_EQ(hi, 1.0);
  EXPECT_DOUBLE_EQ(lo, std::pow(0.5, model->num_layers()));
  EXPECT_EQ(model->num_layers(), models::preset("vit_tiny").depth + 1);
}

TEST(Train, BadConfigurationsAreNamed) {
  app::RunConfig c;
  c.experts = 4;  // but no placement
  EXPECT_VIMOE_ERROR(app::build_model(c, 10, 1), "--moe-last");
  c.moe_last = 1;
  c.routing = "pixel";
  EXPECT_VIMOE_ERROR(app::build_model(c, 10, 1), "--routing", "pixel");
  app::RunConfig d;
  d.dataset = "imagenet";
  EXPECT_VIMOE_ERROR(app::open_datasets(d), "imagenet", "fashion-mnist");
}

// vimoe-eval's routing analyses from a real evaluation under token routing (top-2 of 3 experts,
// a register token): per-image counts that add up to k per token, the patch grid after the
// CLS and register rows, one routing map per class, and the files and figures of the report.
TEST(Report, TokenRoutingAnalysesFromAnEvaluation) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_token_report_" + std::to_string(::getpid()));
  app::RunConfig c = tiny_folder_run(dir);
  c.routing = "token";
  c.experts = 3;
  c.top_k = 2;
  c.moe_last = 2;
  c.registers = 1;
  const app::Datasets data = app::open_datasets(c);
  const auto model = app::build_model(c, 2, 3);
  data::LoaderOptions opts;
  opts.batch_size = 5;  // batches that split the classes unevenly
  opts.shuffle = false;
  opts.transform = app::eval_transform(c, data, model->input().image_size, model->input().channels);
  data::Loader loader(data.val, opts);
  const app::EvalResult r = app::evaluate(*model, loader, Device::cpu(), false);
  ASSERT_EQ(r.expert_counts.size(), 2u);
  const int64_t tokens = 1 + 1 + 2 * 2;  // CLS, one register, a 2x2 patch grid
  for (const models::RoutingGrid& g : r.routing_grids) {
    EXPECT_EQ(g.rows_per_image, tokens);
    EXPECT_EQ(g.first, 2);
    EXPECT_EQ(g.height, 2);
    EXPECT_EQ(g.width, 2);
  }
  for (const models::ImageExpertCounts& counts : r.expert_counts) {
    ASSERT_EQ(counts.images(), 16);
    for (int64_t i = 0; i < 16; ++i) {
      int64_t sum = 0;
      for (int64_t e = 0; e < 3; ++e) sum += counts.at(i, e);
      EXPECT_EQ(sum, 2 * tokens) << "image " << i << ": every token's two choices are counted";
    }
  }
  ASSERT_EQ(r.routed_images.size(), 2u) << "one per class";
  EXPECT_EQ(r.routed_images[0].label, 0);
  EXPECT_EQ(r.routed_images[1].label, 1);
  EXPECT_EQ(r.image_labels[8], 1);
  for (size_t l = 0; l < 2; ++l)
    for (int32_t e : r.routed_images[1].top_expert[l])
      EXPECT_GT(r.expert_counts[l].at(8, e), 0) << "the map's experts are the image's own (image 8, class 1's first)";

  const nlohmann::json s = app::write_eval_report(r, data.val->class_names(), *model, (dir / "eval").string());
  for (const char* f : {"expert_similarity_block0.png", "expert_similarity_block1.csv", "rows_per_expert_cdf_block0.png",
                        "rows_per_expert_cdf_block1.csv", "routing_map_block0.png", "routing_map_block1.csv",
                        "experts_per_image.csv", "experts_per_image.png"})
    EXPECT_TRUE(fs::exists(dir / "eval" / f)) << f;
  const double routed = s.at("routed_experts_per_image");
  EXPECT_GE(routed, 2 * 2.0) << "each layer reaches at least its top-2";
  EXPECT_LE(routed, 2 * 3.0);
  const models::ModelSize size = model->size();
  const double expected_active = static_cast<double>(size.total_params) -
                                 (2 * 3 - routed) * static_cast<double>(size.expert_params[0]);
  EXPECT_NEAR(s.at("activated_params_per_image").get<double>(), expected_active, 1e-6 * expected_active);
  std::ifstream map_csv(dir / "eval" / "routing_map_block0.csv");
  std::string line;
  int64_t lines = 0;
  while (std::getline(map_csv, line)) ++lines;
  EXPECT_EQ(lines, 1 + 2 * 4) << "a header, then one line per patch of the two mapped images";
  fs::remove_all(dir);
}

TEST(Report, WritesTablesHeatmapsAndCurves) {
  const fs::path dir = fs::temp_directory_path() / ("vimoe_report_" + std::to_string(::getpid()));
  app::EvalResult r;
  r.images = 6;
  r.top1 = 0.5;
  r.class_total = {3, 3};
  r.class_correct = {1, 2};
  r.moe_blocks = {3};
  r.routing_counts = {{{3, 0}, {1, 2}}};  // class 0 all to expert 0; class 1 split 1:2
  r.distinct_paths = 2;
  const auto model = models::create_model(
      "vit_tiny", {{"num_classes", 2}, {"moe", {{"experts", 2}, {"blocks", {3}}}}});
  const nlohmann::json s = app::write_eval_report(r, {"cat", "dog"}, *model, dir.string());
  const models::ModelSize size = model->size();
  EXPECT_EQ(s["model"]["total_params"].get<int64_t>(), size.total_params);
  EXPECT_EQ(s["model"]["macs"].get<int64_t>(), size.macs);
  EXPECT_LT(s["model"]["active_params"].get<int64_t>(), size.total_params);  // one expert of two runs
  EXPECT_DOUBLE_EQ(s["per_class_top1"]["dog"].get<double>(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(s["routing_degree"].get<double>(), 2.0);
  const std::vector<double> load = s["moe_layers"][0]["load"];
  EXPECT_DOUBLE_EQ(load[0], 4.0 / 6);
  for (const char* f : {"per_class.csv", "routing_block3.csv", "routing_block3.png", "expert_load_block3.png", "summary.json"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  std::ifstream csv(dir / "routing_block3.csv");
  std::string header, cat;
  std::getline(csv, header);
  std::getline(csv, cat);
  EXPECT_EQ(header, "class,expert_0,expert_1");
  EXPECT_EQ(cat, "cat,1,0");

  std::ofstream(dir / "metrics.jsonl") << R"({"step": 10, "loss_avg": 2.0, "aux_loss": 0.01, "lr": 0.001})" << "\n"
                                       << R"({"step": 20, "val_loss": 1.5, "val_top1": 0.4, "val_top5": 0.9})" << "\n";
  const app::Curves curves = app::write_curves((dir / "metrics.jsonl").string(), dir.string());
  EXPECT_EQ(curves.files, (std::vector<std::string>{"curves.csv", "loss_curve.png", "accuracy_curve.png"}));
  EXPECT_EQ(curves.missing_values, 0);
  std::ofstream(dir / "bad.jsonl") << "{not json\n";
  EXPECT_VIMOE_ERROR(app::write_curves((dir / "bad.jsonl").string(), dir.string()), "bad.jsonl", "line 1");
  fs::remove_all(dir);
}
