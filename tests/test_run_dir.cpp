// Run directories: one run per directory unless resumed or overwritten, metrics trimmed to
// the checkpoint a run resumes from, stale temporaries of dead writers removed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "apps/common/run_dir.h"
#include "tests/test_data_util.h"
#include "tests/test_util.h"

using namespace vimoe;
namespace fs = std::filesystem;

namespace {

void touch(const std::string& path, const std::string& text = "x") { std::ofstream(path) << text; }

std::vector<std::string> lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST(RunDir, ASecondRunIntoTheSameDirectoryIsRefused) {
  vimoe::testing::TempDir dir;
  const std::string out = dir / "run";
  EXPECT_TRUE(app::prepare_run_dir(out, false, false).empty());  // created
  EXPECT_TRUE(fs::is_directory(out));
  touch(out + "/metrics.jsonl", "{\"step\": 1}\n");
  touch(out + "/last.safetensors");
  EXPECT_VIMOE_ERROR(app::prepare_run_dir(out, false, false), "already holds a run", "metrics.jsonl",
                     "last.safetensors", "--resume", "--overwrite");
  EXPECT_NO_THROW(app::prepare_run_dir(out, /*resuming=*/true, false));
  EXPECT_TRUE(fs::exists(out + "/metrics.jsonl"));
  fs::create_directories(out + "/eval");
  touch(out + "/eval/summary.json");
  touch(out + "/notes.txt");  // not the run's: kept
  EXPECT_NO_THROW(app::prepare_run_dir(out, false, /*overwrite=*/true));
  EXPECT_TRUE(app::run_files(out).empty());
  EXPECT_FALSE(fs::exists(out + "/eval"));
  EXPECT_TRUE(fs::exists(out + "/notes.txt"));
}

TEST(RunDir, OutThatIsAFileOrCannotBeCreated) {
  vimoe::testing::TempDir dir;
  touch(dir / "file");
  EXPECT_VIMOE_ERROR(app::prepare_run_dir(dir / "file", false, false), "--out", "is a file");
  EXPECT_VIMOE_ERROR(app::prepare_run_dir(dir / "file/sub", false, false), "--out", "cannot create");
}

TEST(RunDir, StaleTemporariesOfDeadWritersAreRemoved) {
  vimoe::testing::TempDir dir;
  const std::string out = dir / "run";
  fs::create_directories(out);
  // pid_max on Linux is at most 2^22: this process cannot exist.
  touch(out + "/last.safetensors.tmp.99999999");
  touch(out + "/loss_curve.png.tmp.99999999.3");
  const std::string live = "last.safetensors.tmp." + std::to_string(::getppid());  // a live writer
  touch(out + "/" + live);
  touch(out + "/data.tmp.txt");  // not a temporary of ours
  std::vector<std::string> removed = app::prepare_run_dir(out, false, false);
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{"last.safetensors.tmp.99999999", "loss_curve.png.tmp.99999999.3"}));
  EXPECT_TRUE(fs::exists(out + "/" + live));
  EXPECT_TRUE(fs::exists(out + "/data.tmp.txt"));
}

TEST(RunDir, MetricsAreTrimmedToTheCheckpointStep) {
  vimoe::testing::TempDir dir;
  const std::string path = dir / "metrics.jsonl";
  touch(path, "{\"step\": 10, \"loss_avg\": 2.0}\n{\"step\": 20, \"val_top1\": 0.5}\n"
              "{\"step\": 30, \"loss_avg\": 1.5}\n{\"step\": 40, \"loss_av");  // the last one cut by a kill
  EXPECT_EQ(app::truncate_metrics(path, 20), 2);
  EXPECT_EQ(lines(path), (std::vector<std::string>{"{\"step\": 10, \"loss_avg\": 2.0}", "{\"step\": 20, \"val_top1\": 0.5}"}));
  EXPECT_EQ(app::truncate_metrics(path, 20), 0);  // nothing more to drop
  EXPECT_EQ(app::truncate_metrics(dir / "missing.jsonl", 5), 0);
}
