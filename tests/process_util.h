// Running the built programs from tests, as a user would: started as child processes, their
// output captured, their exit observed (a crash or abort shows as a signal, not a status).
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace vimoe::testing {

// Starts `program` with `args`, its stdout and stderr both going to the file `log`, in the
// working directory `cwd` (empty: this process's).
inline pid_t spawn_program(const std::string& program, const std::vector<std::string>& args, const std::string& log,
                           const std::string& cwd = "") {
  std::vector<std::string> all = {program};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&files, 1, 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&files, cwd.c_str());
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &files, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  EXPECT_EQ(rc, 0) << "cannot start " << program;
  return rc == 0 ? pid : -1;
}

// Waits for the child; its exit status, or -1 (and a test failure) when a signal ended it.
inline int exit_status(pid_t pid) {
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "the program did not exit normally (ended by signal "
                                 << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << ")";
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Reaps a child this test killed (so no zombie is left), whatever ended it.
inline void reap(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `program` to completion; returns its exit status and puts its output in `output`.
inline int run_program(const std::string& program, const std::vector<std::string>& args, const std::string& log,
                       std::string& output, const std::string& cwd = "") {
  const pid_t pid = spawn_program(program, args, log, cwd);
  if (pid < 0) return -1;
  const int status = exit_status(pid);
  output = read_text(log);
  return status;
}

}  // namespace vimoe::testing
