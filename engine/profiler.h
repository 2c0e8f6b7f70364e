// A lightweight op profiler: time and call counts per named scope.
//
// Off by default; on when the environment variable VIMOE_PROFILE is set (to anything but
// "0") at start-up, or after profiler::set_enabled(true). A disabled scope costs one load
// and one branch.
//
// Scopes nest: each keeps its total (inclusive) time and its self time (total less the
// scopes opened inside it), so the self times of all scopes add up to the profiled time
// without counting anything twice. Op front-ends open a scope named after the op ("linear");
// the autograd engine opens one per backward node ("backward:linear").
//
// Scopes measure wall time, or with VIMOE_PROFILE=cpu (or set_clock(ProfileClock::ThreadCpu))
// the CPU time of the thread that opened them: on a machine shared with other work the latter
// does not swing with the load, but it misses what other threads (the pool's workers) do for
// the scope. On the GPU an op's scope covers the launch, not the kernel.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vimoe::profiler {

namespace detail {
extern bool g_enabled;
}

inline bool enabled() { return detail::g_enabled; }
void set_enabled(bool on);

enum class ProfileClock { Wall, ThreadCpu };
void set_clock(ProfileClock clock);
ProfileClock clock();
// Forgets everything recorded so far.
void reset();

struct Entry {
  std::string name;
  int64_t calls = 0;
  double total_s = 0;  // inclusive of nested scopes
  double self_s = 0;   // exclusive of nested scopes
};
// Everything recorded since the last reset, largest self time first.
std::vector<Entry> entries();
// A table of entries(): name, calls, self and total milliseconds divided by `per` (e.g. the
// number of steps, for per-step figures), and each self time's share; at most `top` rows.
std::string report(double per = 1.0, size_t top = 40);

// Times its own lifetime under `name`, or under prefix + name; both must outlive the scope
// (a literal, a node's name). Does nothing, not even read the clock, when the profiler is off.
class Scope {
 public:
  explicit Scope(const char* name) {
    if (enabled()) begin(name, nullptr);
  }
  Scope(const char* prefix, const std::string& name) {
    if (enabled()) begin(prefix, &name);
  }
  ~Scope() {
    if (active_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  void begin(const char* name, const std::string* suffix);
  void end();
  bool active_ = false;
  const char* name_ = nullptr;
  const std::string* suffix_ = nullptr;
  double start_ = 0;  // seconds on the profiler's clock
  double child_s_ = 0;  // time spent in scopes nested directly inside this one
  Scope* parent_ = nullptr;
};

}  // namespace vimoe::profiler

#define VIMOE_PROFILE_CONCAT_(a, b) a##b
#define VIMOE_PROFILE_CONCAT(a, b) VIMOE_PROFILE_CONCAT_(a, b)
// VIMOE_PROFILE_SCOPE("op"): profile the rest of the enclosing block as "op".
#define VIMOE_PROFILE_SCOPE(...) \
  ::vimoe::profiler::Scope VIMOE_PROFILE_CONCAT(vimoe_profile_scope_, __LINE__)(__VA_ARGS__)
