// vimoe-bench's kernel benchmark on the CPU says what it is for and shows progress; its
// end-to-end and loader benchmarks on tiny settings: every result field is
// filled with a positive, finite number (peak memory is unknown on the CPU), and bad options
// are refused before any work.
#include <signal.h>
#include <stb_image_write.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include "apps/common/e2e_bench.h"
#include "apps/common/loader_bench.h"
#include "engine/cuda/runtime.h"
#include "tests/process_util.h"
#include "test_data_util.h"
#include "test_util.h"

using namespace vimoe;

namespace {

app::E2EOptions tiny_e2e() {
  app::E2EOptions o;
  o.device = Device::cpu();
  o.preset = "vit_tiny";
  o.image_size = 16;
  o.batch = 4;
  o.num_classes = 10;
  o.steps = 1;
  o.warmup = 1;
  return o;
}

bool positive_finite(double x) { return std::isfinite(x) && x > 0; }

}  // namespace

TEST(E2EBench, TinyDenseAndMoEOnCpu) {
  for (const char* precision : {"f32", "bf16"}) {
    app::E2EOptions o = tiny_e2e();
    o.precision = precision;
    int progress_lines = 0;
    o.progress = [&](const std::string&) { ++progress_lines; };
    const std::vector<app::E2EResult> rs = app::run_e2e_benchmarks(o);
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0].name, "dense");
    EXPECT_EQ(rs[1].name, "moe");
    EXPECT_EQ(progress_lines, 6);  // per model: what it is, inference, training
    for (const app::E2EResult& r : rs) {
      SCOPED_TRACE(r.name + " " + precision);
      EXPECT_GT(r.params, 0);
      EXPECT_TRUE(positive_finite(r.train_ms));
      EXPECT_TRUE(positive_finite(r.infer_ms));
      EXPECT_NEAR(r.train_images_per_s, o.batch / (r.train_ms * 1e-3), 1e-6 * r.train_images_per_s);
      EXPECT_NEAR(r.infer_images_per_s, o.batch / (r.infer_ms * 1e-3), 1e-6 * r.infer_images_per_s);
      EXPECT_FALSE(r.train_peak_allocated || r.train_peak_reserved || r.infer_peak_allocated ||
                   r.infer_peak_reserved);  // the CPU tracks no peaks
    }
    EXPECT_NE(rs[0].description.find("vit_tiny: width 64, depth 4"), std::string::npos) << rs[0].description;
    EXPECT_NE(rs[0].description.find("dense"), std::string::npos) << rs[0].description;
    EXPECT_NE(rs[1].description.find("vit_tiny: "), std::string::npos) << rs[1].description;
    EXPECT_NE(rs[1].description.find("8 experts (top-1, image routing, shared) in 2 blocks"), std::string::npos)
        << rs[1].description;
    EXPECT_GT(rs[1].params, rs[0].params);  // 8 experts and a shared one where one FFN was

    const nlohmann::json j = app::e2e_to_json(o, rs);
    EXPECT_EQ(j["framework"], "vimoe");
    EXPECT_EQ(j["device"], "cpu");
    EXPECT_EQ(j["config"]["batch"], 4);
    EXPECT_EQ(j["config"]["precision"], precision);
    ASSERT_EQ(j["results"].size(), 2u);
    EXPECT_EQ(j["results"][1]["name"], "moe");
    EXPECT_EQ(j["results"][1]["params"], rs[1].params);
    EXPECT_DOUBLE_EQ(j["results"][1]["train_images_per_s"].get<double>(), rs[1].train_images_per_s);
    EXPECT_TRUE(j["results"][1]["train_peak_allocated_bytes"].is_null());

    const std::string table = app::e2e_table(rs);
    EXPECT_NE(table.find("train img/s"), std::string::npos);
    EXPECT_NE(table.find("n/a"), std::string::npos);
  }
}

TEST(E2EBench, RejectsBadOptions) {
  app::E2EOptions o = tiny_e2e();
  o.models = {"dense", "sparse"};
  EXPECT_VIMOE_ERROR(app::run_e2e_benchmarks(o), "models are dense and moe, found \"sparse\"");
  o = tiny_e2e();
  o.precision = "fp8";
  EXPECT_VIMOE_ERROR(app::run_e2e_benchmarks(o), "--precision must be bf16 or f32, found fp8");
  o = tiny_e2e();
  o.steps = 0;
  EXPECT_VIMOE_ERROR(app::run_e2e_benchmarks(o), "needs steps > 0");
  o = tiny_e2e();
  o.preset = "vit_huge";
  EXPECT_VIMOE_ERROR(app::run_e2e_benchmarks(o), "unknown model \"vit_huge\"");
}

TEST(LoaderBench, JpegFolderWithSeveralWorkerCounts) {
  vimoe::testing::TempDir dir;
  for (int i = 0; i < 6; ++i) {
    const std::string path = dir / ((i % 2 ? "cat/" : "dog/") + std::to_string(i) + ".jpg");
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    const std::vector<uint8_t> px = vimoe::testing::pattern_bytes(40 * 30 * 3, i);
    ASSERT_NE(stbi_write_jpg(path.c_str(), 40, 30, 3, px.data(), 90), 0) << path;
  }
  app::LoaderBenchOptions o;
  o.data_dir = dir.path();
  o.image_size = 16;
  o.batch = 4;  // 6 images: a full batch and a partial one per epoch
  o.workers = {0, 2};
  o.batches = 3;
  int progress_lines = 0;
  o.progress = [&](const std::string&) { ++progress_lines; };
  const app::LoaderBenchReport rep = app::run_loader_benchmark(o);
  EXPECT_EQ(rep.dataset_images, 6);
  EXPECT_EQ(rep.classes, 2);
  ASSERT_EQ(rep.results.size(), 2u);
  EXPECT_EQ(progress_lines, 2);
  EXPECT_EQ(rep.results[0].workers, 0);
  EXPECT_EQ(rep.results[1].workers, 2);
  for (const app::LoaderBenchResult& r : rep.results) {
    EXPECT_TRUE(positive_finite(r.images_per_s));
    EXPECT_EQ(r.pinned, cuda::is_available());
  }
  EXPECT_DOUBLE_EQ(rep.results[0].images_per_s_per_worker, rep.results[0].images_per_s);
  EXPECT_DOUBLE_EQ(rep.results[1].images_per_s_per_worker, rep.results[1].images_per_s / 2);
}

TEST(LoaderBench, RejectsBadOptions) {
  app::LoaderBenchOptions o;
  EXPECT_VIMOE_ERROR(app::run_loader_benchmark(o), "--data-dir is required");
  o.data_dir = "/nonexistent/vimoe_images";
  o.workers = {1};
  EXPECT_VIMOE_ERROR(app::run_loader_benchmark(o), "is not a directory");
  o.workers = {-1};
  EXPECT_VIMOE_ERROR(app::run_loader_benchmark(o), "worker counts must be >= 0, found -1");
}

// The full kernel benchmark on a CPU says at once that it is meant for a GPU and points to
// --small, then reports each kernel as it is measured (the first, a copy, takes a second or
// two; the run is stopped there). --small runs the whole table with progress.
TEST(KernelBench, OnTheCpuItSaysSoAndShowsProgress) {
  vimoe::testing::TempDir dir;
  const std::string log = dir / "kernels.log";
  const pid_t pid = vimoe::testing::spawn_program(VIMOE_BENCH_BIN, {"kernels", "--device", "cpu", "--iters", "1"}, log);
  ASSERT_GT(pid, 0);
  std::string out;
  for (int i = 0; i < 600 && out.find("[1] copy") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    out = vimoe::testing::read_text(log);
  }
  ::kill(pid, SIGKILL);
  vimoe::testing::reap(pid);
  EXPECT_NE(out.find("meant for a GPU"), std::string::npos) << out;
  EXPECT_NE(out.find("--small"), std::string::npos) << out;
  EXPECT_NE(out.find("[1] copy"), std::string::npos) << out;

  std::string small;
  ASSERT_EQ(vimoe::testing::run_program(VIMOE_BENCH_BIN, {"kernels", "--device", "cpu", "--small", "--iters", "1"},
                                        dir / "small.log", small),
            0)
      << small;
  EXPECT_EQ(small.find("meant for a GPU"), std::string::npos) << small;
  EXPECT_NE(small.find("[1] copy"), std::string::npos) << small;
  EXPECT_NE(small.find("attention fwd+bwd"), std::string::npos) << small;
}
