#include "data/random_stream.h"

#include <cmath>
#include <limits>

#include "engine/error.h"

namespace vimoe::data {

namespace {
constexpr uint64_t kBlockBits = 28;
}

RandomStream::RandomStream(uint64_t seed, StreamPurpose purpose, uint64_t epoch, uint64_t index)
    : seed_(seed),
      index_(index),
      high_((epoch << 32) | (static_cast<uint64_t>(purpose) << kBlockBits)) {
  VIMOE_CHECK(epoch < (uint64_t{1} << 32), "RandomStream: epoch ", epoch, " is >= 2^32");
}

uint32_t RandomStream::next_u32() {
  if (used_ == 4) {
    // 2^28 blocks (2^30 words) per stream: far beyond what one sample or batch draws.
    VIMOE_CHECK(block_ < (uint64_t{1} << kBlockBits), "RandomStream: stream exhausted");
    buf_ = kernels::philox4x32(seed_, index_, high_ | block_++);
    used_ = 0;
  }
  return buf_.v[used_++];
}

uint64_t RandomStream::next_u64() {
  const uint64_t hi = next_u32();
  return (hi << 32) | next_u32();
}

double RandomStream::uniform() {
  return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);  // / 2^53
}

int64_t RandomStream::randint(int64_t lo, int64_t hi) {
  VIMOE_CHECK(lo < hi, "RandomStream::randint: empty range [", lo, ", ", hi, ")");
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  // Accept only draws below the largest multiple of `range`, so every residue is equally likely.
  const uint64_t limit = std::numeric_limits<uint64_t>::max() -
                         std::numeric_limits<uint64_t>::max() % range;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return static_cast<int64_t>(static_cast<uint64_t>(lo) + x % range);
}

double RandomStream::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

double RandomStream::gamma(double shape) {
  VIMOE_CHECK(shape > 0 && std::isfinite(shape), "RandomStream::gamma: shape must be > 0, got ",
              shape);
  if (shape < 1) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a).
    const double u = 1.0 - uniform();
    return gamma(shape + 1.0) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = normal();
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = 1.0 - uniform();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

double RandomStream::beta(double a, double b) {
  const double x = gamma(a), y = gamma(b);
  // Tiny shapes can underflow both draws to 0; the limit puts all mass at the ends.
  if (x + y == 0) return bernoulli(a / (a + b)) ? 1.0 : 0.0;
  return x / (x + y);
}

}  // namespace vimoe::data
