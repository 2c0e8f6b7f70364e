// Counter-based random numbers (kernels/random.cu, kernels/random.h, kernels/philox.h;
// engine/ops/random.h): rand, uniform_, randn, normal_, trunc_normal_, dropout, drop_path.
//
// The CPU and CUDA share one stream: both call the host + device recipes of kernels/random.h,
// element i (row-major over the tensor's shape, whatever its strides) drawing the Philox
// counter (i, offset), and a mask element i / group with group 1 (dropout) or the sample's
// size (drop_path). So their results compare element by element. The factories and fills have
// no tensor input: each row's one input is a constant that only lends its shape, dtype and
// device (a fill's target is made inside the op, or cloned from that input where the row
// checks that a view's other elements stay as they were). They have nothing to
// differentiate: backward off. dropout and drop_path are differentiable (and linear in x for
// a fixed seed): backward compared, and the small rows take the f64 gradient check.
//
// Tolerances of CUDA against the CPU:
//   rand, uniform_: exact. The same 24 Philox bits, an explicit fma in double, one rounding
//     to the dtype and the same clamp below hi on both.
//   dropout, drop_path, forward and backward (the backward is the same op applied to the
//     upstream gradient): exact. The keep test compares the same 24 bits with an integer
//     threshold; survivors are one multiply in f32 (f64 for f64) on both sides. compare()
//     counts -0 equal to +0, so these rows also return whether each output element is
//     negative or -0 (1 / out < 0, an integer output compared exactly): a dropped element must
//     be +0 on both devices (x * 0 would give -0 for negative x, NaN for NaN).
//   randn, normal_: z = sqrt(-2 log u1) cos(2 pi u2) in f32, with logf and cosf within 1 ulp
//     (glibc) and 1-2 ulp (CUDA): a few f32 ulps apart, atol 1e-6 + rtol 4e-6 (the f64 rows
//     convert the same f32 z). bf16 (f16): a difference that small can still flip the final
//     rounding by one ulp, <= 2^-7 (2^-10) relative: rtol 8e-3 (2e-3).
//   trunc_normal_: double arithmetic on both sides whose log, erfc and exp differ by a few
//     double ulps, rounded once: at most one f32 ulp apart, atol 1e-12 + rtol 3e-7 (f32 ulp
//     <= 1.2e-7 relative); bf16 one bf16 ulp, rtol 8e-3.
// Not here: how rarely those roundings flip and that the truncated normal stays within its
// bounds on the GPU (tests/kernels/test_random.cpp), and the streams' statistics (moments,
// histograms, the drop rate, one decision per sample: tests/test_random.cpp on the CPU; the
// GPU draws the same values, which these rows check).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

const int64_t kSizes[] = {1, 257, 385 * 3, 3000017};  // one element, odd, a multi-block size

OpCase fill_row(std::string name, Shape shape, DType dt, Tol tol,
                std::function<Tensor(const Tensor& like)> fill) {
  OpCase c;
  c.name = std::move(name);
  c.inputs = {constant(std::move(shape), dt)};
  c.fn = [fill](const std::vector<Tensor>& a) { return std::vector<Tensor>{fill(a[0])}; };
  c.fwd = tol;
  c.backward = false;  // no tensor input to differentiate
  c.gradcheck = false;
  return c;
}

TensorOptions options_of(const Tensor& t) { return TensorOptions(t.dtype(), t.device()); }

Tol normal_tol(DType dt) {
  switch (dt) {
    case DType::BF16: return {1e-6, 8e-3, 0};
    case DType::F16: return {1e-6, 2e-3, 0};
    default: return {1e-6, 4e-6, 0};
  }
}

Tol trunc_normal_tol(DType dt) {
  return dt == DType::BF16 ? Tol{1e-12, 8e-3, 0} : Tol{1e-12, 3e-7, 0};
}

// ---- dropout / drop_path ------------------------------------------------------------------------

std::string p_tag(double p) {
  return "_p" + std::to_string(static_cast<int>(std::lround(p * 100)));
}

// `permuted`: the op sees the input through permute({1, 0, 2}) (drop_path's samples along
// the leaf's dim 1).
OpCase mask_row(bool path, Shape shape, DType dt, double p, View view = View::Contiguous,
                bool permuted = false) {
  OpCase c;
  c.name = std::string(path ? "drop_path" : "dropout") + p_tag(p) + (permuted ? "_permuted" : "");
  c.inputs = {in(std::move(shape), dt, -2, 2, view)};
  c.fn = [path, p, permuted](const std::vector<Tensor>& a) {
    const Tensor x = permuted ? a[0].permute({1, 0, 2}) : a[0];
    const Tensor out = path ? drop_path(x, p, true, 777) : dropout(x, p, true, 4242);
    const Tensor sign = lt(1.0 / out.detach(), scalar_like(0.0, out));  // -0 and negatives
    return std::vector<Tensor>{out, sign};
  };
  c.fwd = c.bwd = kExact;
  return c;
}

}  // namespace

VIMOE_OP_CASES(random) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c, bool large = false) {
    c.large = large;
    rows.push_back(std::move(c));
  };
  const DType f32 = DType::F32, bf16 = DType::BF16;
  const double inf = std::numeric_limits<double>::infinity();

  // ---- rand: every floating dtype, two offsets of one seed --------------------------------------
  for (DType dt : {f32, bf16, DType::F16, DType::F64})
    for (int64_t n : kSizes)
      for (uint64_t offset : {uint64_t{0}, uint64_t{7}})
        add(fill_row("rand_offset" + std::to_string(offset), {n}, dt, kExact,
                     [n, offset](const Tensor& like) {
                       return rand(like.shape(), 0x1234567890abcdefull + static_cast<uint64_t>(n),
                                   options_of(like), offset);
                     }));
  add(fill_row("rand", {385, 3}, bf16, kExact,
               [](const Tensor& like) { return rand(like.shape(), 5, options_of(like)); }));

  // ---- uniform_ in place on views ---------------------------------------------------------------
  for (DType dt : {f32, bf16}) {
    // A transposed view: element i of the view in row-major order takes counter i.
    add(fill_row("uniform_transposed", {3, 385}, dt, kExact, [](const Tensor& like) {
      Tensor w = Tensor::zeros(like.shape(), options_of(like));
      Tensor v = w.t();
      uniform_(v, -0.3, 0.7, 17);
      return w;
    }));
    // Three middle columns of a [257, 5]: the other two keep the input's values.
    add(fill_row("uniform_narrow", {257, 5}, dt, kExact, [](const Tensor& like) {
      Tensor s = like.clone();
      Tensor cols = s.narrow(1, 1, 3);
      uniform_(cols, 2.0, 3.0, 18, 4);
      return s;
    }));
  }
  // Many bf16 draws round up to hi and are clamped below it.
  add(fill_row("uniform_clamped", {1 << 16}, bf16, kExact, [](const Tensor& like) {
    Tensor t = Tensor::empty(like.shape(), options_of(like));
    uniform_(t, -1.0, 1.0, 19);
    return t;
  }));

  // ---- randn / normal_ --------------------------------------------------------------------------
  for (DType dt : {f32, bf16})
    for (int64_t n : kSizes)
      add(fill_row("randn", {n}, dt, normal_tol(dt), [](const Tensor& like) {
        return randn(like.shape(), 99, options_of(like), 2);
      }));
  for (DType dt : {DType::F16, DType::F64})
    add(fill_row("randn", {385 * 3}, dt, normal_tol(dt), [](const Tensor& like) {
      return randn(like.shape(), 99, options_of(like), 2);
    }));
  for (DType dt : {f32, bf16})
    add(fill_row("normal_transposed", {3, 385}, dt, normal_tol(dt), [](const Tensor& like) {
      Tensor w = Tensor::zeros(like.shape(), options_of(like));
      Tensor v = w.t();
      normal_(v, 3.0, 0.5, 7);
      return w;
    }));

  // ---- trunc_normal_ ----------------------------------------------------------------------------
  struct Trunc {
    const char* tag;
    double std, a, b;
  };
  // ViT's init (std 0.02 cut at 2 std), a one-sided tail (folded), a far tail.
  for (const Trunc& t : {Trunc{"vit", 0.02, -0.04, 0.04}, Trunc{"tail", 1.0, 1.0, inf},
                         Trunc{"far", 2.0, 10.0, 12.0}})
    for (int64_t n : kSizes)
      add(fill_row(std::string("trunc_normal_") + t.tag, {n}, f32, trunc_normal_tol(f32),
                   [t](const Tensor& like) {
                     Tensor x = Tensor::empty(like.shape(), options_of(like));
                     trunc_normal_(x, t.std, t.a, t.b, 123);
                     return x;
                   }));
  add(fill_row("trunc_normal_vit", {385, 3}, bf16, trunc_normal_tol(bf16), [](const Tensor& like) {
    Tensor x = Tensor::empty(like.shape(), options_of(like));
    trunc_normal_(x, 0.02, -0.04, 0.04, 124);
    return x;
  }));

  // ---- dropout ----------------------------------------------------------------------------------
  for (DType dt : {f32, bf16, DType::F16, DType::F64})
    for (double p : {0.1, 0.5, 1.0}) {
      for (int64_t n : kSizes) add(mask_row(false, {n}, dt, p));
      add(mask_row(false, {385, 3}, dt, p));
      add(mask_row(false, {385, 3}, dt, p, View::Transposed));
    }

  // ---- drop_path --------------------------------------------------------------------------------
  for (DType dt : {f32, bf16})
    for (double p : {0.1, 0.5}) {
      add(mask_row(true, {1, 5}, dt, p));
      add(mask_row(true, {257, 3}, dt, p));
      add(mask_row(true, {385, 3, 3}, dt, p));
      add(mask_row(true, {3, 385, 3}, dt, p, View::Contiguous, /*permuted=*/true));
      // Many samples of 197 tokens x 3: the kernel's per-element sample index.
      add(mask_row(true, {2053, 197, 3}, dt, p));
    }

  // ---- ViT-S/14 at batch 256 --------------------------------------------------------------------
  // drop_path (rate 0.1) on a block's [256, 257, 384] residual branch, dropout on the same
  // activations, and the ViT init of the 8 experts' fc1 weights [8, 1536, 384] (each tensor at
  // its own offset, as models/vit.cpp draws them).
  for (DType dt : {f32, bf16}) {
    add(mask_row(true, {256, 257, 384}, dt, 0.1), true);
    add(mask_row(false, {256, 257, 384}, dt, 0.1), true);
    add(fill_row("trunc_normal_vit", {8, 1536, 384}, dt, trunc_normal_tol(dt),
                 [](const Tensor& like) {
                   Tensor x = Tensor::empty(like.shape(), options_of(like));
                   trunc_normal_(x, 0.02, -0.04, 0.04, 125, uint64_t{3} << 32);
                   return x;
                 }),
        true);
  }
  return rows;
}

}  // namespace vimoe::parity
