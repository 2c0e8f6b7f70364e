// Counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11), usable on the host
// and the device. Element i of a draw with seed s takes counter i, so the CPU and the GPU
// produce bit-identical uniforms for one seed regardless of how work is split.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/strided.h"  // VIMOE_HOST_DEVICE

namespace vimoe::kernels {

struct Philox4 {
  uint32_t v[4];
};

VIMOE_HOST_DEVICE inline uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Ten rounds of Philox over the 128-bit counter (ctr_lo, ctr_hi) with a 64-bit key.
VIMOE_HOST_DEVICE inline Philox4 philox4x32(uint64_t seed, uint64_t ctr_lo, uint64_t ctr_hi) {
  uint32_t c0 = static_cast<uint32_t>(ctr_lo), c1 = static_cast<uint32_t>(ctr_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(ctr_hi), c3 = static_cast<uint32_t>(ctr_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// A uniform float in [0, 1) from 24 random bits: exact in f32 on host and device.
VIMOE_HOST_DEVICE inline float uint_to_unit_float(uint32_t x) {
  return static_cast<float>(x >> 8) * (1.0f / 16777216.0f);
}

// Uniform [0,1) for element `index` of stream `seed` (`offset` lets one seed feed several
// draws without overlap: the counter is (index, offset)).
VIMOE_HOST_DEVICE inline float philox_uniform(uint64_t seed, uint64_t offset, uint64_t index) {
  return uint_to_unit_float(philox4x32(seed, index, offset).v[0]);
}

// Standard normal for element `index` by Box-Muller on two uniforms of the same counter.
// Host and device may differ in the last ulp because logf/cosf are not correctly rounded.
VIMOE_HOST_DEVICE inline float philox_normal(uint64_t seed, uint64_t offset, uint64_t index) {
  const Philox4 r = philox4x32(seed, index, offset);
  const float u1 = (static_cast<float>(r.v[0] >> 8) + 1.0f) * (1.0f / 16777216.0f);  // (0, 1]
  const float u2 = uint_to_unit_float(r.v[1]);
  const float radius = sqrtf(-2.0f * logf(u1));
  return radius * cosf(6.283185307179586f * u2);
}

}  // namespace vimoe::kernels
