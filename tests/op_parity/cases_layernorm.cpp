// LayerNorm over the last dimension (engine/ops/layernorm.h, kernels/layernorm.cu): with
// weight and bias, with either or neither, and with x outside the gradients (the kernels then
// skip dx and compute only dweight / dbias).
//
// The rows cover each kernel path on odd shapes (rows 1, 3, 257; widths 1, 3, 384, 385, 768,
// 1024, 1536):
//   - warp per row: the width a whole number of 16-byte packs and at most 1024 elements (512
//     for f64), every pointer 16-byte aligned (384, 768, 1024); in the backward, dweight and
//     dbias go through per-block partials (one wave of blocks) and a fixed-order column sum;
//   - block per row and the tiled dweight / dbias kernel: everything else (1, 3, 385 are not
//     whole packs, 1536 is over the register budget, a misaligned x or weight).
// A transposed x (and, through the output's transpose, a transposed upstream gradient) is
// copied by the front-end before either path. The ViT-S/14 rows are the pre-norm inputs of a
// block at batch 256: 256 x 257 tokens x 384 (65792 rows, the full partial-row reduction),
// with the model's eps 1e-6; the other rows use 1e-5.
//
// Values: x in [-1, 3) (a non-zero mean exercises the centring; the row variance is about
// 4/3, so rstd ~ 0.87 and eps is negligible), weight in [0.5, 1.5), bias in [-1, 1), the
// upstream gradient in [-1, 1). Three uniform values can nearly coincide (among 257 rows the
// smallest variance would be ~5e-4 at some seeds, rstd ~ 45, which multiplies the rounding
// of the mean), so rows of width 3 add 4 * column to x: the row's extremes are then >= 4
// apart, the variance >= 16/6 and rstd <= 0.62, well-conditioned for the f64 gradient check
// and the f32 comparison alike. Rows of width 1 normalise to exactly 0 (y = bias, dx = 0) on
// both sides.
//
// Tolerances of CUDA against the CPU. The CPU works in double and rounds once to the element
// type; its saved mean and rstd are rounded to f32 like the GPU's (f64 for f64). The GPU
// computes in f32 (f64 for f64) with f32 statistics: a two-pass mean / variance in tree order
// and rsqrtf (2 ulp).
//   y, f32: |y| < 6; the mean and rstd are a few f32 ulps apart, which moves
//       (x - mean) * rstd * w + b by ~2e-6 at most: 1e-5 absolute plus 1e-5 relative.
//   dx, f32: rstd * (dy*w - mean(dy*w) - xhat * mean(dy*w*xhat)) cancels, with terms < 4: the
//       same ~2e-6 absolute before the cancellation; 1e-5 absolute, 1e-4 relative.
//   dweight / dbias, f32: column sums of `rows` terms of size < 2 (dy * xhat) or 1 (dy):
//       the GPU adds them in f32 per lane, then per block, then over the partial rows; the
//       CPU in double, in row order. The rounding errors are a random walk of the partial
//       sums, as are the sums themselves (dy has mean 0), so the error scales with the
//       largest |dweight| / |dbias|, M: an emulation of the GPU's order in f32 gives
//       |error| <= 4e-7 M at 257 and at 65792 rows. `scaled` 1e-5 M covers that 25 times;
//       the same term adds at most 1e-5 * max|dx| < 3e-5 to the dx bound.
//   bf16 / f16: both sides round a wide result that agrees to the ~2e-6 above, so the two
//       roundings can land one ulp apart: at most 2^-7 (bf16) or 2^-10 (f16) of the value;
//       rtol 2^-6 / 2^-9 is twice that, 1e-4 absolute covers results that cancel to near 0
//       (50 times the wide difference). The backward reads the same half x and dy on both
//       sides and f32 statistics, never the forward's rounded y, so its bounds are the same
//       plus the f32 column-sum term (scaled 1e-5 M).
//   f64: the same formulas in f64 on both sides, differing only in order: 1e-12 absolute
//       and relative for y; 1e-10 relative for the cancelling dx; column sums 1e-13 M.
#include <string>
#include <vector>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

constexpr double kEps = 1e-5;
constexpr double kVitEps = 1e-6;  // nn::LayerNorm's default (engine/nn/layers.h)

Tol forward_tol(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-12, 1e-12, 0};
    case DType::BF16: return {1e-4, 1.0 / 64, 0};
    case DType::F16: return {1e-4, 1.0 / 512, 0};
    default: return {1e-5, 1e-5, 0};
  }
}

Tol backward_tol(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-12, 1e-10, 1e-13};
    case DType::BF16: return {1e-4, 1.0 / 64, 1e-5};
    case DType::F16: return {1e-4, 1.0 / 512, 1e-5};
    default: return {1e-5, 1e-4, 1e-5};
  }
}

// Which of weight / bias the row passes, and whether x takes part in the gradients.
enum class Affine { Both, None, WeightOnly, BiasOnly };

struct Spec {
  Shape shape;  // x; the last dim is normalised
  DType dt = DType::F32;
  Affine affine = Affine::Both;
  bool x_grad = true;
  View x_view = View::Contiguous;
  View w_view = View::Contiguous;
  // Return y transposed (last two dims), so the upstream gradient reaches the op transposed.
  bool transpose_out = false;
  double eps = kEps;
};

// x uniform in [-1, 3), plus 4 * column for rows of width 3 (see the top comment).
Input x_input(const Spec& s) {
  if (s.shape.back() != 3)
    return s.x_grad ? in(s.shape, s.dt, -1, 3, s.x_view) : constant(s.shape, s.dt, -1, 3);
  const Shape shape = s.shape;
  const DType dt = s.dt;
  Input x = custom(
      [shape, dt](uint64_t seed) {
        OpCase u;
        u.inputs = {constant(shape, DType::F64, -1, 3)};
        u.seed = seed;
        std::vector<double> v = make_inputs(u, Device::cpu()).args[0].to_vector<double>();
        for (size_t i = 0; i < v.size(); ++i) v[i] += 4.0 * static_cast<double>(i % 3);
        return Tensor::from_vector(v, shape).to(dt);
      },
      s.x_grad);
  x.shape = s.shape;  // for the row's name; the values come from `make`
  x.dtype = s.dt;
  x.view = s.x_view;
  return x;
}

OpCase layer_norm_row(const Spec& s) {
  OpCase c;
  const int64_t cols = s.shape.back();
  const bool has_w = s.affine == Affine::Both || s.affine == Affine::WeightOnly;
  const bool has_b = s.affine == Affine::Both || s.affine == Affine::BiasOnly;
  switch (s.affine) {
    case Affine::Both: c.name = "layer_norm"; break;
    case Affine::None: c.name = "layer_norm_plain"; break;
    case Affine::WeightOnly: c.name = "layer_norm_weight"; break;
    case Affine::BiasOnly: c.name = "layer_norm_bias"; break;
  }
  if (!s.x_grad) c.name += "_params_only";
  if (s.transpose_out) c.name += "_yT";
  if (s.eps != kEps) c.name += "_eps1e6";
  c.inputs.push_back(x_input(s));
  if (has_w) c.inputs.push_back(in({cols}, s.dt, 0.5, 1.5, s.w_view));
  if (has_b) c.inputs.push_back(in({cols}, s.dt, -1, 1));
  c.fn = [has_w, has_b, s](const std::vector<Tensor>& a) {
    const Tensor w = has_w ? a[1] : Tensor();
    const Tensor b = has_b ? a[has_w ? 2 : 1] : Tensor();
    Tensor y = layer_norm(a[0], w, b, s.eps);
    if (s.transpose_out) y = y.transpose(-1, -2);
    return std::vector<Tensor>{y};
  };
  c.fwd = forward_tol(s.dt);
  c.bwd = backward_tol(s.dt);
  return c;
}

}  // namespace

VIMOE_OP_CASES(layernorm) {
  std::vector<OpCase> rows;
  auto add = [&](const Spec& s, bool large = false) {
    OpCase c = layer_norm_row(s);
    c.large = large;
    rows.push_back(std::move(c));
  };
  // Weight and bias on every odd and ViT width: 384, 768 and 1024 take the warp path, 1, 3,
  // 385 and 1536 the block path (f32 packs hold 4 elements, bf16 8).
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t r : {1, 3, 257})
      for (int64_t cols : {1, 3, 384, 385, 768, 1024, 1536}) add({{r, cols}, dt});
  for (DType dt : {DType::F16, DType::F64})
    for (int64_t cols : {3, 384, 385}) add({{257, cols}, dt});
  // [batch, tokens, width] as the model calls it: 4 x 257 rows of 384.
  for (DType dt : {DType::F32, DType::BF16}) add({{4, 257, 384}, dt});
  // No affine, weight only, bias only: the kernels take null pointers for the missing ones
  // (and the warp path's all-ones weight in the backward).
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t r : {3, 257})
      for (int64_t cols : {1, 3, 384, 385, 1536}) add({{r, cols}, dt, Affine::None});
  for (DType dt : {DType::F32, DType::BF16})
    for (Affine a : {Affine::WeightOnly, Affine::BiasOnly})
      for (int64_t r : {3, 257})
        for (int64_t cols : {384, 385}) add({{r, cols}, dt, a});
  // x outside the gradients: only dweight and dbias are computed (dx is null).
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t cols : {384, 385}) add({{257, cols}, dt, Affine::Both, /*x_grad=*/false});
  // One element past a 16-byte boundary, x or weight: 384 would take the 16-byte path, the
  // pointer check sends it to the block path (forward and backward).
  for (DType dt : {DType::F32, DType::BF16}) {
    add({{33, 384}, dt, Affine::Both, true, View::Misaligned});
    add({{33, 384}, dt, Affine::Both, true, View::Contiguous, View::Misaligned});
  }
  // A transposed x, whose gradient arrives transposed as well.
  for (DType dt : {DType::F32, DType::BF16})
    add({{65, 384}, dt, Affine::Both, true, View::Transposed, View::Contiguous,
         /*transpose_out=*/true});
  // ViT-S/14 at batch 256: the backward spreads 65792 rows over one wave of blocks, so
  // dweight / dbias go through the full partial-row reduction.
  for (DType dt : {DType::F32, DType::BF16}) {
    Spec s{{256, 257, 384}, dt};
    s.eps = kVitEps;
    add(s, /*large=*/true);
  }
  return rows;
}

}  // namespace vimoe::parity
