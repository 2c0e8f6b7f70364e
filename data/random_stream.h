// Counter-based random numbers for the data pipeline.
//
// A RandomStream is a pure function of (seed, purpose, epoch, index): it reads Philox-4x32-10
// blocks (kernels/philox.h) with the key `seed`, the low counter word `index` and the high
// word (epoch, purpose, block number). Two streams that differ in any of the four never share
// a block. The loader gives every sample its own stream, keyed by its dataset index, so
// augmentations do not depend on which worker thread ran them, in what order, or in which
// batch the sample landed.
#pragma once
#include <cstdint>

#include "kernels/philox.h"

namespace vimoe::data {

enum class StreamPurpose : uint32_t {
  Shuffle = 1,  // the epoch's permutation (index 0)
  Sample = 2,   // one sample's augmentation (index = dataset index)
  Batch = 3,    // one batch's mixup / cutmix (index = batch number within the epoch)
  User = 4,     // free for callers (tests, tools)
};

class RandomStream {
 public:
  // Throws vimoe::Error if epoch >= 2^32.
  RandomStream(uint64_t seed, StreamPurpose purpose, uint64_t epoch, uint64_t index);

  uint32_t next_u32();
  uint64_t next_u64();
  // Uniform on [0, 1) with 53 random bits.
  double uniform();
  // Uniform on [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [lo, hi), unbiased (rejection); needs lo < hi.
  int64_t randint(int64_t lo, int64_t hi);
  bool bernoulli(double p) { return uniform() < p; }
  double normal();  // standard normal (Box-Muller)
  // Gamma(shape, 1) for shape > 0 (Marsaglia and Tsang), Beta(a, b) for a, b > 0.
  double gamma(double shape);
  double beta(double a, double b);

 private:
  uint64_t seed_, index_, high_;  // high_: epoch << 32 | purpose << 28
  uint64_t block_ = 0;            // next Philox block (< 2^28)
  kernels::Philox4 buf_{};
  int used_ = 4;                  // words of buf_ consumed
};

}  // namespace vimoe::data
