#include "engine/optim/schedule.h"

#include <cmath>

#include "engine/error.h"

namespace vimoe::optim {

double WarmupCosine::at(int64_t step) const {
  VIMOE_CHECK(total_steps > 0 && warmup_steps >= 0 && warmup_steps <= total_steps,
              "WarmupCosine: need 0 <= warmup_steps (", warmup_steps, ") <= total_steps (",
              total_steps, ") and total_steps > 0");
  if (step < warmup_steps) return base_lr * static_cast<double>(step + 1) / warmup_steps;
  if (step >= total_steps) return min_lr;
  const double span = static_cast<double>(total_steps - warmup_steps);
  const double progress = span > 0 ? static_cast<double>(step - warmup_steps) / span : 1.0;
  return min_lr + 0.5 * (base_lr - min_lr) * (1 + std::cos(3.141592653589793 * progress));
}

}  // namespace vimoe::optim
