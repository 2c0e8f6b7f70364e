// The benchmarks' one way to time device work.
#pragma once
#include <functional>

namespace vimoe::app {

// Mean milliseconds per call of `fn` over `iters` calls after `warmup` untimed ones, measured
// between two synchronisations of the engine's stream (it runs in order, so host time across
// them is device time; on the CPU the synchronisations do nothing).
double time_ms(const std::function<void()>& fn, int warmup, int iters);

}  // namespace vimoe::app
