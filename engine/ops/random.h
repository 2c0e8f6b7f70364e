// Counter-based random numbers (Philox-4x32-10, kernels/philox.h), dropout and drop_path.
//
// Every draw is a pure function of (seed, offset, element index): element i of a tensor
// (row-major over its shape, whatever its strides) uses the Philox counter (i, offset).
// Nothing depends on the device, the launch shape or the thread count, so:
//   - rand() is bit-identical on the CPU and the GPU for one seed, in every floating dtype
//     (the uniform is drawn in f32 with 24 random bits and converted);
//   - randn()/normal_()/trunc_normal_() run the same arithmetic on both, but the f32 normal
//     goes through logf/cosf (and the truncated normal through log/erfc/exp), which the CPU
//     and CUDA math libraries round differently in the last ulp;
//   - a prefix is stable: rand({10}, s) equals the first ten values of rand({20}, s).
// `offset` selects an independent stream under one seed (e.g. one per step or per layer).
//
// Seeds are explicit. A Generator hands out fresh, reproducible sub-seeds: seed it once
// with manual_seed() and take next_seed() for every random op.
//
// CPU reference: engine/cpu/random.cpp; CUDA: kernels/random.cu; shared recipes:
// kernels/random.h.
#pragma once
#include <cstdint>
#include <mutex>

#include "engine/tensor.h"

namespace vimoe {

// ---- seeds ---------------------------------------------------------------------------

// A reproducible sequence of 64-bit sub-seeds: call k after manual_seed(s) returns 64 bits
// of the Philox block of counter k under key s (distinct blocks for distinct k; after k
// calls two sub-seeds coincide with probability about k^2 / 2^65). Thread-safe: concurrent
// callers each get a different call of the one sequence, in some order.
class Generator {
 public:
  struct State {
    uint64_t seed = 0;
    uint64_t calls = 0;  // next_seed() calls since manual_seed(seed)
    friend bool operator==(const State&, const State&) = default;
  };

  explicit Generator(uint64_t seed = 0) : state_{seed, 0} {}
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Restarts the sequence at call 0 of `seed`.
  void manual_seed(uint64_t seed);
  // The next sub-seed of the sequence.
  uint64_t next_seed();
  // For checkpoints: state() now and set_state() later resume the same sequence.
  State state() const;
  void set_state(const State& s);

 private:
  mutable std::mutex mutex_;
  State state_;
};

// The process-wide generator; it starts as manual_seed(0).
Generator& default_generator();
inline void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }
inline uint64_t next_seed() { return default_generator().next_seed(); }

// ---- factories -----------------------------------------------------------------------

// Uniform on [0, 1) in a floating dtype. A bf16/f16 value that would round up to 1 becomes
// the largest value below 1 in that dtype (1 - 2^-8 for bf16, 1 - 2^-11 for f16).
Tensor rand(const Shape& shape, uint64_t seed, TensorOptions opts = {}, uint64_t offset = 0);
// Standard normal (Box-Muller in f32 on two words of one Philox block).
Tensor randn(const Shape& shape, uint64_t seed, TensorOptions opts = {}, uint64_t offset = 0);

// ---- in-place initialisers -----------------------------------------------------------
// Fill a floating tensor of any non-overlapping layout (a transposed or sliced view fills
// in place: element i of the view in row-major order takes counter i). Like
// torch.nn.init they write into leaves that require grad (parameters) without recording
// anything; a tensor produced by a recorded op is refused, as is an expanded view.

// Uniform on [lo, hi): lo + (hi - lo) * u in double, rounded once to the dtype; a value that
// rounds up to hi becomes the largest dtype value below hi. Needs finite lo < hi.
Tensor& uniform_(Tensor& t, double lo, double hi, uint64_t seed, uint64_t offset = 0);
// mean + std * z, z as in randn(). Needs std >= 0.
Tensor& normal_(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset = 0);
// N(0, std^2) truncated to [a, b], by inverse CDF (no redraws): one uniform per element
// (32 bits) is mapped into [Phi(a/std), Phi(b/std)] and through the normal quantile, so
// every element costs the same (no loop, no divergence on the GPU), no value is ever outside
// [a, b] (in f32/f64; bf16/f16 round the bounds themselves), and CPU and GPU run the same
// double-precision arithmetic: they differ only where the few-ulp differences of the two
// math libraries' log/erfc/exp straddle a rounding boundary of the dtype (~1e-8 per f32
// element), never in which draw an element gets.
// a and b are absolute values, as in torch.nn.init.trunc_normal_ (not multiples of std):
// the ViT initialisation "std 0.02 truncated at 2 std" is trunc_normal_(w, 0.02, -0.04,
// 0.04, seed), while timm's default a = -2, b = 2 is, at std 0.02, an untruncated normal.
// Infinite bounds are allowed; the interval must not lie wholly beyond 30 std (its
// probability underflows). The std argument is that of the parent normal: truncation
// shrinks the actual standard deviation (to 0.88 std at +-2 std).
Tensor& trunc_normal_(Tensor& t, double std, double a, double b, uint64_t seed,
                      uint64_t offset = 0);

// ---- regularisers --------------------------------------------------------------------
// Both are differentiable. The backward regenerates the mask from the seed (nothing is
// saved), so it is the same op applied to the incoming gradient: d/dx = mask / (1 - p).
// p must lie in [0, 1]; p == 1 gives zeros (and zero gradients). When !training or p == 0
// they return x itself.

// Zeroes element i (row-major over x's shape) when rand(x.shape(), seed)[i] < p (the f32
// draw, whatever x's dtype; so the drop rate is p rounded up to a multiple of 2^-24) and
// scales the survivors by 1 / (1 - p) (one multiply in f32, f64 for f64). A dropped element
// is an exact 0 even where x is inf or NaN. The result is contiguous.
Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed);
// Stochastic depth: one draw per sample along dim 0, sample b dropped when
// rand({x.size(0)}, seed)[b] < p; the decision covers all of that sample's elements.
// x needs at least one dimension.
Tensor drop_path(const Tensor& x, double p, bool training, uint64_t seed);

}  // namespace vimoe
