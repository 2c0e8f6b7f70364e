#include "apps/common/study_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "apps/common/run_config.h"
#include "apps/common/trainer.h"
#include "engine/cuda/runtime.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"

extern char** environ;

namespace vimoe::app {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// cell.toml without its comment lines: what decides whether a cell changed.
std::string options_text(const std::string& toml) {
  std::istringstream in(toml);
  std::string line, out;
  while (std::getline(in, line))
    if (!line.empty() && line[0] != '#') out += line + "\n";
  return out;
}

std::string duration_text(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  return buf;
}

// The options a cell gives vimoe-train, checked as vimoe-train checks them.
void check_cell(const StudyCell& cell, const std::string& toml) {
  CLI::App app;
  RunConfig cfg;
  add_options(app, cfg);
  std::istringstream in(toml);
  try {
    app.parse_from_stream(in);
  } catch (const CLI::Error& e) {
    VIMOE_FAIL(e.what());
  }
  apply_task_defaults(cfg);
  cfg.validate();
  (void)cfg.model_options(1, 1);
}

nlohmann::json read_status(const fs::path& dir) {
  const fs::path p = dir / "status.json";
  if (!fs::exists(p)) return {{"state", "pending"}};
  try {
    nlohmann::json j = nlohmann::json::parse(read_text(p));
    if (j.is_object() && j.contains("state")) return j;
  } catch (const nlohmann::json::exception&) {
  }
  return {{"state", "pending"}};  // unreadable: the cell's own files decide
}

void write_status(const fs::path& dir, const nlohmann::json& status) {
  io::write_file_atomic((dir / "status.json").string(), status.dump(2) + "\n", "vimoe-study");
}

bool is_done(const fs::path& dir, const nlohmann::json& status) {
  return status.value("state", "") == "done" && fs::exists(dir / "final.safetensors") &&
         fs::exists(dir / "eval" / "summary.json");
}

// The last "step X/Y" a progress line shows, as X / Y; -1 when none.
double progress_fraction(const std::string& line) {
  const size_t at = line.rfind("step ");
  if (at == std::string::npos) return -1;
  long long x = 0, y = 0;
  if (std::sscanf(line.c_str() + at, "step %lld/%lld", &x, &y) != 2 || y <= 0) return -1;
  return std::clamp(static_cast<double>(x) / static_cast<double>(y), 0.0, 1.0);
}

// The reason a failed program gave: its "error:" line, else its last non-empty line.
std::string failure_reason(const fs::path& log, std::streamoff from) {
  std::ifstream in(log);
  in.seekg(from);
  std::string line, last, error;
  while (std::getline(in, line)) {
    if (const size_t r = line.rfind('\r'); r != std::string::npos) line = line.substr(r + 1);
    if (line.find("error:") != std::string::npos || line.find("diverged") != std::string::npos) error = line;
    if (!line.empty()) last = line;
  }
  return error.empty() ? last : error;
}

struct Job {
  size_t cell = 0;
  enum Stage { Train, Eval } stage = Train;
  pid_t pid = -1;
  std::streamoff log_start = 0, log_read = 0;
  Clock::time_point started;
  double fraction = 0;
  std::string pending_text;  // a line of the log not yet complete
  std::string slot_env;      // the GPU the cell runs on ("" none)
};

class StudyRunner {
 public:
  StudyRunner(const StudySpec& spec, const StudyRunOptions& options)
      : spec_(spec), options_(options), cells_(expand_cells(spec)), out_(spec.out) {}

  int run() {
    find_programs();
    fs::create_directories(out_);
    lock();
    plan();
    if (options_.dry_run) return list();
    io::write_file_atomic((out_ / "study.json").string(), study_json(spec_, cells_).dump(2) + "\n", "vimoe-study");
    install_interrupt_handler();
    const std::string failed_before =
        failed_ ? ", " + std::to_string(failed_) + " failed before and left so" : std::string();
    std::fprintf(stderr, "vimoe-study: %s: %zu cells (%zu done%s, %zu to run) in %s, %d at a time\n",
                 spec_.name.c_str(), cells_.size(), done_, failed_before.c_str(), queue_.size(), out_.c_str(),
                 options_.parallel);
    loop();
    const int sig = g_interrupted;
    if (sig) {
      std::fprintf(stderr, "vimoe-study: interrupted; %zu of %zu cells done. Run the same command again to resume "
                   "(finished cells are skipped, interrupted ones continue from their checkpoints).\n", done_,
                   cells_.size());
      return 128 + sig;
    }
    std::fprintf(stderr, "vimoe-study: %zu of %zu cells done, %zu failed\n", done_, cells_.size(), failed_);
    return failed_ > 0 ? 1 : 0;
  }

 private:
  void find_programs() {
    fs::path dir = options_.programs_dir;
    if (dir.empty()) dir = fs::read_symlink("/proc/self/exe").parent_path();
    train_bin_ = (dir / "vimoe-train").string();
    eval_bin_ = (dir / "vimoe-eval").string();
    for (const std::string& p : {train_bin_, eval_bin_})
      VIMOE_CHECK(::access(p.c_str(), X_OK) == 0, "vimoe-study runs its cells with ", fs::path(p).filename().string(),
                  ", expected at ", p, " (beside vimoe-study), which is not an executable file");
  }

  // Held by this process and, through the inherited descriptor, by every cell it starts:
  // the directory is free again only when all of them have ended.
  void lock() {
    const std::string path = (out_ / ".lock").string();
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    VIMOE_CHECK(lock_fd_ >= 0, "cannot open ", path, ": ", std::strerror(errno));
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
      VIMOE_FAIL("the study directory ", out_.string(), " is in use by another vimoe-study, or by a cell it started "
                 "that is still writing its checkpoint; wait for it to end (", path, " is locked)");
  }

  void plan() {
    std::vector<std::string> changed, invalid;
    bool grid_invalid = false;
    for (size_t i = 0; i < cells_.size(); ++i) {
      const StudyCell& c = cells_[i];
      const fs::path dir = out_ / c.name;
      const std::string toml = cell_config_toml(spec_, c);
      try {
        check_cell(c, toml);
      } catch (const std::exception& e) {
        invalid.push_back(c.name + ": " + e.what());
        grid_invalid = grid_invalid || !c.extra;
        continue;
      }
      if (fs::exists(dir / "cell.toml") && options_text(read_text(dir / "cell.toml")) != options_text(toml)) {
        changed.push_back(c.name);
        continue;
      }
      const nlohmann::json status = read_status(dir);
      if (is_done(dir, status)) {
        ++done_;
        if (status.contains("seconds")) done_seconds_.push_back(status["seconds"].get<double>());
      } else if (status.value("state", "") == "failed" && !options_.retry_failed) {
        ++failed_;
      } else {
        queue_.push_back(i);
      }
    }
    if (!invalid.empty()) {
      std::string list;
      for (const std::string& s : invalid) list += "\n  " + s;
      VIMOE_FAIL("study ", spec_.file, ": ", invalid.size(), " of its ", cells_.size(),
                 " cells would be refused by vimoe-train (nothing was run):", list,
                 grid_invalid ? "\n(a dense baseline or another odd cell belongs in [[cells]], outside the product of "
                                "the axes)" : "");
    }
    if (!changed.empty()) {
      std::string list;
      for (const std::string& s : changed) list += "\n  " + (out_ / s).string();
      VIMOE_FAIL("study ", spec_.file, ": the options of ", changed.size(), " cell(s) that already ran in ",
                 out_.string(), " differ from what the study now gives them (compare their cell.toml); their "
                 "results would no longer be theirs. Move or delete them to rerun them, or give the study another "
                 "`out`:", list);
    }
  }

  int list() const {
    std::printf("%s: %zu cells in %s\n", spec_.name.c_str(), cells_.size(), out_.c_str());
    for (const StudyCell& c : cells_) {
      const fs::path dir = out_ / c.name;
      const nlohmann::json status = read_status(dir);
      std::string state = is_done(dir, status) ? "done" : status.value("state", "pending");
      // This process holds the lock, so no study runs the cell now: it was killed mid-run.
      if (state == "running") state = "interrupted (its study was killed)";
      if (state != "done" && fs::exists(dir / "last.safetensors")) state += " (has a checkpoint: resumes)";
      std::printf("  %-40s %s\n", c.name.c_str(), state.c_str());
    }
    return 0;
  }

  // The environment of the n-th cell started: with several GPUs each cell gets one in turn;
  // on the CPU, cells running side by side share its cores.
  std::vector<std::string> child_env(Job& job) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    if (options_.parallel > 1 && !std::getenv("CUDA_VISIBLE_DEVICES")) {
      if (gpus_ < 0) gpus_ = cuda::device_count();
      // A cell's evaluation stays on the GPU its training had.
      if (gpus_ > 1 && job.slot_env.empty()) job.slot_env = std::to_string(started_ % gpus_);
      if (!job.slot_env.empty()) env.push_back("CUDA_VISIBLE_DEVICES=" + job.slot_env);
    }
    if (options_.parallel > 1 && !std::getenv("VIMOE_CPU_THREADS")) {
      const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
      env.push_back("VIMOE_CPU_THREADS=" + std::to_string(std::max(1u, cores / options_.parallel)));
    }
    return env;
  }

  pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, const fs::path& log) {
    const pid_t parent = ::getpid();
    std::vector<char*> argv, envp;
    std::vector<std::string> a = args, e = env;
    for (std::string& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (std::string& s : e) envp.push_back(s.data());
    envp.push_back(nullptr);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    VIMOE_CHECK(fd >= 0, "cannot write ", log.string(), ": ", std::strerror(errno));
    const pid_t pid = ::fork();
    if (pid == 0) {
      // The child: SIGTERM when the study dies (it then checkpoints), output to the log.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);  // the study died before prctl took effect
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execve(argv[0], argv.data(), envp.data());
      std::fprintf(stderr, "vimoe-study: cannot run %s: %s\n", argv[0], std::strerror(errno));
      ::_exit(127);
    }
    ::close(fd);
    VIMOE_CHECK(pid > 0, "cannot start ", args[0], ": ", std::strerror(errno));
    return pid;
  }

  void start(size_t cell) {
    const StudyCell& c = cells_[cell];
    const fs::path dir = out_ / c.name;
    fs::create_directories(dir);
    const std::string toml = cell_config_toml(spec_, c);
    if (!fs::exists(dir / "cell.toml")) io::write_file_atomic((dir / "cell.toml").string(), toml, "vimoe-study");
    nlohmann::json status = read_status(dir);
    const int attempts = status.value("attempts", 0) + 1;
    status["state"] = "running";
    status["attempts"] = attempts;
    status.erase("error");
    status.erase("exit_status");
    Job job;
    job.cell = cell;
    job.started = Clock::now();
    const bool trained = fs::exists(dir / "final.safetensors");
    std::vector<std::string> args;
    std::string what;
    if (trained) {
      job.stage = Job::Eval;
      args = eval_args(c, dir);
      what = "evaluating its final checkpoint";
    } else {
      args = {train_bin_, "--config", (dir / "cell.toml").string(), "--out", dir.string()};
      if (fs::exists(dir / "last.safetensors")) {
        args.insert(args.end(), {"--resume", (dir / "last.safetensors").string()});
        const int64_t step = checkpoint_step(dir / "last.safetensors");
        status["resumed_from_step"] = step;
        what = "resuming from its checkpoint at step " + std::to_string(step);
      } else {
        args.push_back("--overwrite");
        what = attempts > 1 ? "training from the start (no checkpoint was written)" : "training";
      }
    }
    write_status(dir, status);
    // From before the header: the echo skips it, and a failure's reason is searched from here.
    job.log_start = job.log_read = log_size(dir / "train.log");
    append_header(dir / "train.log", attempts, args);
    const std::vector<std::string> env = child_env(job);
    job.pid = spawn(args, env, dir / "train.log");
    ++started_;
    std::fprintf(stderr, "[%zu/%zu] %s: %s%s\n", cell + 1, cells_.size(), c.name.c_str(), what.c_str(),
                 job.slot_env.empty() ? "" : (" on GPU " + job.slot_env).c_str());
    jobs_.push_back(std::move(job));
  }

  std::vector<std::string> eval_args(const StudyCell& c, const fs::path& dir) const {
    std::vector<std::string> args = {eval_bin_, "run", (dir / "final.safetensors").string(), "--out",
                                     (dir / "eval").string()};
    for (const StudyOption& o : c.options)
      if (o.key == "device" || o.key == "workers") {
        std::string v = o.value;
        if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
        args.insert(args.end(), {"--" + o.key, v});
      }
    return args;
  }

  static int64_t checkpoint_step(const fs::path& checkpoint) {
    try {
      return std::stoll(io::SafetensorsFile::open(checkpoint.string()).metadata().at("step"));
    } catch (const std::exception&) {
      return -1;  // vimoe-train reports an unreadable checkpoint itself
    }
  }

  static std::streamoff log_size(const fs::path& log) {
    std::error_code ec;
    const auto n = fs::file_size(log, ec);
    return ec ? 0 : static_cast<std::streamoff>(n);
  }

  static void append_header(const fs::path& log, int attempt, const std::vector<std::string>& args) {
    std::ofstream out(log, std::ios::app);
    out << "=== vimoe-study, attempt " << attempt << ":";
    for (const std::string& a : args) out << " " << a;
    out << "\n";
  }

  // Echoes what the job's program wrote since the last look, a line at a time, prefixed with the cell.
  void echo(Job& job) {
    const fs::path log = out_ / cells_[job.cell].name / "train.log";
    std::ifstream in(log, std::ios::binary);
    in.seekg(job.log_read);
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    job.log_read += static_cast<std::streamoff>(chunk.size());
    job.pending_text += chunk;
    size_t nl;
    while ((nl = job.pending_text.find('\n')) != std::string::npos) {
      std::string line = job.pending_text.substr(0, nl);
      job.pending_text.erase(0, nl + 1);
      if (const size_t r = line.rfind('\r'); r != std::string::npos) line = line.substr(r + 1);
      if (line.empty() || line.rfind("=== vimoe-study", 0) == 0) continue;
      if (job.stage == Job::Train)
        if (const double f = progress_fraction(line); f >= 0) job.fraction = f;
      // The evaluation's per-class listing is in the log; the study shows its headline.
      if (job.stage == Job::Eval && line.rfind("top-1", 0) != 0 && line.rfind("mIoU", 0) != 0) continue;
      std::fprintf(stderr, "  [%s] %s\n", cells_[job.cell].name.c_str(), line.c_str());
    }
  }

  // Seconds a cell takes, from the cells done so far (this run's and earlier runs'), else
  // from a running cell's progress; 0 when nothing tells yet.
  double cell_seconds_estimate() const {
    if (!done_seconds_.empty()) {
      double s = 0;
      for (double v : done_seconds_) s += v;
      return s / static_cast<double>(done_seconds_.size());
    }
    for (const Job& j : jobs_)
      if (j.stage == Job::Train && j.fraction > 0.05)
        return std::chrono::duration<double>(Clock::now() - j.started).count() / j.fraction;
    return 0;
  }

  std::string eta() const {
    const double per_cell = cell_seconds_estimate();
    if (per_cell <= 0) return "ETA after the first cell";
    double remaining = static_cast<double>(queue_.size() - next_);
    for (const Job& j : jobs_) remaining += j.stage == Job::Eval ? 0.05 : 1 - j.fraction;
    return "ETA " + duration_text(per_cell * remaining / std::max(1, options_.parallel));
  }

  // A job's program ended with `status` (waitpid's).
  void finished(Job& job, int wstatus) {
    echo(job);
    const StudyCell& c = cells_[job.cell];
    const fs::path dir = out_ / c.name;
    nlohmann::json status = read_status(dir);
    const double secs = std::chrono::duration<double>(Clock::now() - job.started).count();
    status["seconds"] = status.value("seconds", 0.0) + secs;
    const bool ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
    if (ok && job.stage == Job::Train) {
      // Trained: the evaluation follows in the same slot.
      write_status(dir, status);
      Job next;
      next.cell = job.cell;
      next.stage = Job::Eval;
      next.started = Clock::now();
      next.slot_env = job.slot_env;
      const std::vector<std::string> args = eval_args(c, dir);
      next.log_start = next.log_read = log_size(dir / "train.log");
      append_header(dir / "train.log", status.value("attempts", 1), args);
      const std::vector<std::string> env = child_env(next);
      next.pid = spawn(args, env, dir / "train.log");
      job = std::move(next);
      return;
    }
    job.pid = -1;
    // vimoe-train checkpoints and exits 128 + the signal; vimoe-eval simply ends by it.
    auto stop_signal = [](int s) { return s == SIGINT || s == SIGTERM; };
    const bool signalled_stop =
        (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) > 128 && stop_signal(WEXITSTATUS(wstatus) - 128)) ||
        (WIFSIGNALED(wstatus) && stop_signal(WTERMSIG(wstatus)) && g_interrupted);
    if (ok) {
      status["state"] = "done";
      ++done_;
      done_seconds_.push_back(status["seconds"].get<double>());
      std::string score;
      try {
        const nlohmann::json s = nlohmann::json::parse(read_text(dir / "eval" / "summary.json"));
        char buf[64];
        if (s.contains("top1")) std::snprintf(buf, sizeof buf, ", top-1 %.2f%%", 100 * s["top1"].get<double>());
        else if (s.contains("miou")) std::snprintf(buf, sizeof buf, ", mIoU %.2f%%", 100 * s["miou"].get<double>());
        else buf[0] = '\0';
        score = buf;
      } catch (const std::exception&) {
      }
      write_status(dir, status);
      std::fprintf(stderr, "[%zu/%zu] %s: done in %s%s; %zu of %zu cells done, %zu failed; %s\n", job.cell + 1,
                   cells_.size(), c.name.c_str(), duration_text(status["seconds"].get<double>()).c_str(),
                   score.c_str(), done_, cells_.size(), failed_, eta().c_str());
    } else if (signalled_stop) {
      status["state"] = "interrupted";
      write_status(dir, status);
      std::fprintf(stderr, "[%zu/%zu] %s: interrupted (its checkpoint is kept; a rerun resumes it)\n",
                   job.cell + 1, cells_.size(), c.name.c_str());
    } else {
      const fs::path log = dir / "train.log";
      std::string reason = failure_reason(log, job.log_start);
      if (WIFSIGNALED(wstatus))
        reason = std::string("killed by signal ") + std::to_string(WTERMSIG(wstatus)) + " (" +
                 strsignal(WTERMSIG(wstatus)) + ")" + (reason.empty() ? "" : "; last output: " + reason);
      status["state"] = "failed";
      status["exit_status"] = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
      status["error"] = (job.stage == Job::Train ? "vimoe-train: " : "vimoe-eval: ") + reason;
      write_status(dir, status);
      ++failed_;
      std::fprintf(stderr, "[%zu/%zu] %s: FAILED (%s); see %s. The study goes on.\n", job.cell + 1,
                   cells_.size(), c.name.c_str(), status["error"].get<std::string>().c_str(), log.c_str());
    }
  }

  void loop() {
    int forwarded = 0;
    while (next_ < queue_.size() || !jobs_.empty()) {
      const int sig = g_interrupted;
      if (sig && sig != forwarded) {
        // The cells may not have had the signal (a `kill` of this process alone): pass it on.
        for (const Job& j : jobs_) if (j.pid > 0) ::kill(j.pid, SIGTERM);
        forwarded = sig;
      }
      while (!sig && jobs_.size() < static_cast<size_t>(options_.parallel) && next_ < queue_.size())
        start(queue_[next_++]);
      for (Job& j : jobs_) echo(j);
      for (size_t i = 0; i < jobs_.size();) {
        int wstatus = 0;
        const pid_t r = ::waitpid(jobs_[i].pid, &wstatus, WNOHANG);
        if (r == jobs_[i].pid) {
          finished(jobs_[i], wstatus);
          if (jobs_[i].pid > 0 && g_interrupted) ::kill(jobs_[i].pid, SIGTERM);  // an evaluation just started
        }
        if (jobs_[i].pid < 0) jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(i));
        else ++i;
      }
      if (sig && jobs_.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  const StudySpec& spec_;
  StudyRunOptions options_;
  std::vector<StudyCell> cells_;
  fs::path out_;
  std::string train_bin_, eval_bin_;
  int lock_fd_ = -1;
  int gpus_ = -1;  // CUDA devices, counted when first needed
  std::vector<size_t> queue_;  // cells to run, in order
  size_t next_ = 0;            // the next of queue_ to start
  std::vector<Job> jobs_;
  size_t done_ = 0, failed_ = 0, started_ = 0;
  std::vector<double> done_seconds_;
};

}  // namespace

int run_study(const StudySpec& spec, const StudyRunOptions& options) {
  VIMOE_CHECK(options.parallel >= 1, "--parallel must be at least 1, found ", options.parallel);
  return StudyRunner(spec, options).run();
}

}  // namespace vimoe::app
