// Learning-rate schedules.
#pragma once
#include <cstdint>

namespace vimoe::optim {

// Linear warm-up from 0 to base_lr over warmup_steps, then a half-cosine from base_lr down to
// min_lr at total_steps (and min_lr after). Step counts from 0.
struct WarmupCosine {
  double base_lr = 1e-3, min_lr = 0;
  int64_t warmup_steps = 0, total_steps = 1;
  double at(int64_t step) const;
};

}  // namespace vimoe::optim
