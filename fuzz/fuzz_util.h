// What every fuzz target shares: the input as a file (the readers take paths, as users give
// them), and the rule that bad bytes may only ever be rejected with a vimoe::Error -- any
// other exception escaping a reader is a finding, like a crash or a sanitizer report.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>

#include "engine/error.h"

namespace vimoe::fuzz {

// Writes `size` bytes to `path` (replacing it); aborts when it cannot.
inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

// Writes the input to this process's scratch file with `suffix` (in /dev/shm when there is
// one, so each execution costs no disk write) and returns its path.
inline std::string write_input(const char* suffix, const uint8_t* data, size_t size) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = dir + "/vimoe_fuzz_" + std::to_string(getpid()) + suffix;
  write_file(path, data, size);
  return path;
}

// Runs `read`; a vimoe::Error is an accepted rejection, any other exception aborts (a finding).
template <typename F>
void reject_only_with_vimoe_errors(F&& read) {
  try {
    read();
  } catch (const vimoe::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: a reader let a non-vimoe exception escape: %s\n", e.what());
    std::abort();
  }
}

}  // namespace vimoe::fuzz
