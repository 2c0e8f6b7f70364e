#include "apps/common/run_dir.h"

#include <signal.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "engine/error.h"
#include "engine/io/atomic_file.h"

namespace vimoe::app {

namespace fs = std::filesystem;

namespace {

bool process_exists(long pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

}  // namespace

std::vector<std::string> run_files(const std::string& out) {
  std::vector<std::string> found;
  for (const char* name : {"metrics.jsonl", "config.json", "last.safetensors", "final.safetensors"})
    if (fs::exists(fs::path(out) / name)) found.emplace_back(name);
  return found;
}

std::vector<std::string> prepare_run_dir(const std::string& out, bool resuming, bool overwrite) {
  VIMOE_CHECK(!out.empty(), "--out must name a directory");
  std::error_code ec;
  VIMOE_CHECK(!fs::exists(out, ec) || fs::is_directory(out, ec), "--out ", out, " is a file, not a directory");
  fs::create_directories(out, ec);
  VIMOE_CHECK(!ec, "--out ", out, ": cannot create the directory: ", ec.message());
  const std::vector<std::string> existing = run_files(out);
  if (!resuming && !existing.empty()) {
    std::string names;
    for (const std::string& n : existing) names += (names.empty() ? "" : ", ") + n;
    VIMOE_CHECK(overwrite, "--out ", out, " already holds a run (", names, "); continue it with --resume ",
                (fs::path(out) / "last.safetensors").string(), ", start over with --overwrite, or choose another --out");
    for (const std::string& n : existing) fs::remove(fs::path(out) / n);
    fs::remove_all(fs::path(out) / "eval");
  }
  static const std::regex tmp_re(R"(^.+\.tmp\.(\d+)(\.\d+)?$)");
  std::vector<std::string> removed;
  for (const auto& entry : fs::directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!entry.is_regular_file() || !std::regex_match(name, m, tmp_re) || process_exists(std::stol(m[1].str())))
      continue;
    if (fs::remove(entry.path(), ec)) removed.push_back(name);
  }
  return removed;
}

int64_t truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return 0;
  std::string kept, line;
  int64_t dropped = 0;
  while (std::getline(in, line)) {
    const nlohmann::json r = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (r.is_object() && r.contains("step") && r["step"].is_number_integer() && r["step"].get<int64_t>() <= step) {
      if (r.value("final", false)) {
        // The earlier run's final evaluation stays as the validation of its epoch; the
        // resumed run ends with a final evaluation of its own.
        nlohmann::json v = r;
        v.erase("final");
        kept += v.dump() + "\n";
        ++dropped;  // rewritten, so the file must be
        continue;
      }
      kept += line + "\n";
    } else {
      ++dropped;
    }
  }
  in.close();
  if (dropped > 0) io::write_file_atomic(path, kept, "truncate_metrics");
  return dropped;
}

}  // namespace vimoe::app
