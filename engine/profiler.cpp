#include "engine/profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <unordered_map>

namespace vimoe::profiler {

namespace {
// VIMOE_PROFILE: unset, empty or "0" is off; "cpu" is on with the thread-CPU clock.
const char* setting() {
  const char* v = std::getenv("VIMOE_PROFILE");
  return v != nullptr ? v : "";
}
}  // namespace

namespace detail {
bool g_enabled = setting()[0] != '\0' && std::strcmp(setting(), "0") != 0;
}  // namespace detail

namespace {

struct Totals {
  int64_t calls = 0;
  double total_s = 0, self_s = 0;
};

// Scopes may close on several threads: one lock around the table (taken only when enabled).
std::mutex g_mutex;
std::unordered_map<std::string, Totals>& table() {
  static std::unordered_map<std::string, Totals> t;
  return t;
}

// The innermost open scope of this thread.
thread_local Scope* t_current = nullptr;

std::atomic<ProfileClock> g_clock{std::strcmp(setting(), "cpu") == 0 ? ProfileClock::ThreadCpu
                                                                     : ProfileClock::Wall};

double now() {
  if (g_clock.load(std::memory_order_relaxed) == ProfileClock::ThreadCpu) {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void set_enabled(bool on) { detail::g_enabled = on; }
void set_clock(ProfileClock c) { g_clock.store(c); }
ProfileClock clock() { return g_clock.load(); }

void reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  table().clear();
}

void Scope::begin(const char* name, const std::string* suffix) {
  active_ = true;
  name_ = name;
  suffix_ = suffix;
  parent_ = t_current;
  t_current = this;
  start_ = now();
}

void Scope::end() {
  const double s = now() - start_;
  t_current = parent_;
  if (parent_) parent_->child_s_ += s;
  std::string key = name_;
  if (suffix_) key += *suffix_;
  std::lock_guard<std::mutex> lock(g_mutex);
  Totals& t = table()[key];
  ++t.calls;
  t.total_s += s;
  t.self_s += s - child_s_;
}

std::vector<Entry> entries() {
  std::vector<Entry> out;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& [name, t] : table()) out.push_back({name, t.calls, t.total_s, t.self_s});
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return a.self_s != b.self_s ? a.self_s > b.self_s : a.name < b.name;
  });
  return out;
}

std::string report(double per, size_t top) {
  const std::vector<Entry> all = entries();
  double self_sum = 0;
  for (const Entry& e : all) self_sum += e.self_s;
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-34s %10s %11s %11s %7s\n", "scope", "calls", "self ms",
                "total ms", "self %");
  out += line;
  for (size_t i = 0; i < all.size() && i < top; ++i) {
    const Entry& e = all[i];
    std::snprintf(line, sizeof line, "%-34s %10.1f %11.3f %11.3f %6.1f%%\n", e.name.c_str(),
                  static_cast<double>(e.calls) / per, 1e3 * e.self_s / per,
                  1e3 * e.total_s / per, self_sum > 0 ? 100.0 * e.self_s / self_sum : 0.0);
    out += line;
  }
  if (all.size() > top) {
    double rest = 0;
    for (size_t i = top; i < all.size(); ++i) rest += all[i].self_s;
    std::snprintf(line, sizeof line, "%-34s %10s %11.3f %11s %6.1f%%\n", "(others)", "",
                  1e3 * rest / per, "", self_sum > 0 ? 100.0 * rest / self_sum : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "%-34s %10s %11.3f\n", "(sum of self times)", "",
                1e3 * self_sum / per);
  out += line;
  return out;
}

}  // namespace vimoe::profiler
