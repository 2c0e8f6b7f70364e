// vimoe-train under real signals: the built program is started as a child process, trains a
// few steps on Fashion-MNIST, and is sent SIGTERM (what `timeout`, container stops and batch
// schedulers send) or SIGINT; it must write a checkpoint that loads, exit with 128 + the
// signal, and be resumable from that checkpoint. A burst of signals during the write must not
// corrupt it.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/io/safetensors.h"
#include "tests/test_data_util.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

bool have_fashion_mnist() { return fs::exists("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"); }

// Starts vimoe-train with `args`, its stdout and stderr going to `log`.
pid_t spawn_train(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> all = {VIMOE_TRAIN_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&files, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &files, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
  return rc == 0 ? pid : -1;
}

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

int exit_status(pid_t pid) {
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "vimoe-train did not exit normally (killed by signal "
                                 << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << ")";
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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
  const pid_t pid = spawn_train(run_args(out), dir / "log.txt");
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
  const pid_t pid = spawn_train(args, dir / "resume_log.txt");
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
