// vimoe-train under real signals: the built program is started as a child process, trains a
// few steps on Fashion-MNIST, and is sent SIGTERM (what `timeout`, container stops and batch
// schedulers send) or SIGINT; it must write a checkpoint that loads, exit with 128 + the
// signal, and be resumable from that checkpoint. A burst of signals during the write must not
// corrupt it.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/io/safetensors.h"
#include "tests/process_util.h"
#include "tests/test_data_util.h"

namespace fs = std::filesystem;
using vimoe::testing::exit_status;
using vimoe::testing::read_text;
using vimoe::testing::spawn_program;
using namespace std::chrono_literals;

namespace {

bool have_fashion_mnist() { return fs::exists("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"); }

int count_progress_records(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find("\"loss_avg\"") != std::string::npos;
  return n;
}

// Waits for the run to log `records` progress records (one per step with --log-every 1).
bool wait_for_steps(pid_t pid, const fs::path& metrics, int records) {
  for (auto t = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t < 120s;) {
    if (count_progress_records(metrics) >= records) return true;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;  // ended on its own
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::vector<std::string> run_args(const std::string& out) {
  return {"--model", "vit_tiny", "--experts", "4", "--moe-last", "2", "--batch-size", "16", "--epochs", "1",
          "--log-every", "1", "--checkpoint-every", "0", "--workers", "1", "--device", "cpu", "--out", out,
          "--no-final-eval"};
}

int64_t checkpoint_step(const std::string& path) {
  const vimoe::io::SafetensorsFile f = vimoe::io::SafetensorsFile::open(path);
  EXPECT_GT(f.names().size(), 10u);
  return std::stoll(f.metadata().at("step"));
}

// Sends `sig` (`repeats` times, 1 ms apart) after a few steps; returns the exit status.
int interrupt_run(const vimoe::testing::TempDir& dir, int sig, int repeats) {
  const std::string out = dir / "run";
  const pid_t pid = spawn_program(VIMOE_TRAIN_BIN, run_args(out), dir / "log.txt");
  if (pid < 0) return -1;
  if (!wait_for_steps(pid, fs::path(out) / "metrics.jsonl", 3)) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    ADD_FAILURE() << "the run logged no steps:\n" << read_text(dir / "log.txt");
    return -1;
  }
  for (int i = 0; i < repeats; ++i) {
    kill(pid, sig);
    std::this_thread::sleep_for(1ms);
  }
  return exit_status(pid);
}

}  // namespace

TEST(TrainSignals, SigtermCheckpointsExitsCleanlyAndResumes) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  vimoe::testing::TempDir dir;
  EXPECT_EQ(interrupt_run(dir, SIGTERM, 1), 128 + SIGTERM) << read_text(dir / "log.txt");
  EXPECT_NE(read_text(dir / "log.txt").find("terminated (SIGTERM): checkpoint written"), std::string::npos)
      << read_text(dir / "log.txt");
  const std::string last = dir / "run/last.safetensors";
  const int64_t step = checkpoint_step(last);
  EXPECT_GE(step, 3);
  // It continues from there: two more steps, then a normal exit.
  std::vector<std::string> args = run_args(dir / "run");
  args.insert(args.end(), {"--resume", last, "--max-steps", std::to_string(step + 2)});
  const pid_t pid = spawn_program(VIMOE_TRAIN_BIN, args, dir / "resume_log.txt");
  ASSERT_GT(pid, 0);
  EXPECT_EQ(exit_status(pid), 0) << read_text(dir / "resume_log.txt");
  EXPECT_EQ(checkpoint_step(last), step + 2);
}

TEST(TrainSignals, SigintToo) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  vimoe::testing::TempDir dir;
  EXPECT_EQ(interrupt_run(dir, SIGINT, 1), 128 + SIGINT) << read_text(dir / "log.txt");
  EXPECT_GE(checkpoint_step(dir / "run/last.safetensors"), 3);
}

// A burst of signals, some arriving while the checkpoint is written: one clean exit, one
// intact checkpoint, no temporary file left behind.
TEST(TrainSignals, RepeatedSignalsDoNotCorruptTheCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  vimoe::testing::TempDir dir;
  EXPECT_EQ(interrupt_run(dir, SIGTERM, 20), 128 + SIGTERM) << read_text(dir / "log.txt");
  EXPECT_GE(checkpoint_step(dir / "run/last.safetensors"), 3);
  for (const auto& e : fs::directory_iterator(dir / "run"))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}
