// softmax and log_softmax along any axis, through autograd, and the standalone
// softmax_backward / log_softmax_backward (engine/ops/softmax.h, kernels/softmax.cu).
//
// The front-end makes x contiguous and sees it as [outer, n, inner] around the axis; the rows
// cover each kernel on odd shapes:
//   - warp per row (inner 1, n <= 1024): the last axis of rows 1, 3, 257 by widths 1, 3, 257,
//     384, 385; [3, 1024] (the widest warp row), [3, 1, 257] over dim 2, the attention
//     scores [2, 6, 257, 257];
//   - block per row (inner 1, n > 1024): widths 1025, 1536, 4099;
//   - a thread per strided row (inner > 1): dim 0 of [257, 385], [4099, 3] and [3, 1, 257],
//     dim 1 of [3, 1, 257], and rows of length 1 ([5, 1] over dim 1, [1, 5] over dim 0).
// A transposed x is copied by the front-end; those rows return y transposed back, so the
// upstream gradient reaches the backward non-contiguous too. softmax_backward and
// log_softmax_backward rows take the forward's output y (computed in f64 on the CPU, rounded
// to the row's dtype) and an upstream dy as plain inputs, so they compare the backward
// kernels on the SAME (y, dy) on both devices. The ViT-S/14 rows are the attention
// probabilities at batch 256: 256 x 6 heads x 257 x 257 scores, softmax over the last axis.
//
// Values: x in [-8, 8) (rows of 4099 then reach probabilities of ~1e-10, exercising the
// max subtraction and the rescaling of the running sum), dy in [-1, 1).
//
// Tolerances of CUDA against the CPU, M the largest |CPU| of the compared tensor. The CPU
// takes the max, sums exp(x - max) in double and rounds once. The GPU keeps a running max and
// rescaled sum in f32 (f64 for f64): expf / logf within 2 / 1 ulp, plus one rounding per
// addition and rescale; the sum's relative error is a random walk over the row (the column
// kernel adds up to 4099 terms in sequence).
//   forward, f32: 1e-4 relative plus 1e-5 M. An emulation of each kernel's f32 order (expf
//       given a 1-ulp error) differs from double by at most 6e-6 relative (column kernel, n =
//       4099; 9e-7 for the warp and block kernels). log_softmax's (x - max) - log(sum) adds
//       two non-positive terms, so its error is relative to |y| but for log(sum)'s own
//       (< 1e-6 absolute), which 1e-5 M covers (M >= log n >= log 2 for rows of two or more
//       elements; a one-element row is exactly 0 on both sides).
//   forward, bf16 / f16: both sides round a result that agrees to ~6e-6 relative, so the
//       two roundings land at most one ulp apart: 2^-7 (bf16) or 2^-10 (f16) of the value;
//       rtol 2^-6 / 2^-9 is twice that. 2e-3 M (2.5e-4 M) covers f16's subnormal
//       probabilities and log_softmax values that cancel to near 0.
//   softmax_backward / log_softmax_backward (same y and dy): dx = y (dy - sum(dy y)) or
//       dy - exp(y) sum(dy), with the row sum in f32 against double: the forward's bounds
//       (the emulation stays within 1e-6 M at rtol 1e-5).
//   backward through autograd: each side uses its OWN forward output. f32: the forward's
//       ~6e-6 relative difference in y moves dx = y (dy - t) by ~1e-5 relative and t by
//       ~6e-6 sum(|dy| y) <= 6e-6 (the emulation needs < 1e-6 M at rtol 1e-5); the
//       forward's bounds hold. bf16 / f16: an element whose y rounds one ulp apart (about
//       2^-14 of them: the f32 and double results must straddle a rounding boundary) moves its
//       own dx by one ulp of y relative (2^-7), which with dx's own rounding is up to 2^-6;
//       through the row sum it moves the others by y_i y_j 2^-7 (softmax) or exp(y_i) |t| ulp(y_i)
//       (log_softmax): twice the forward's bounds, 2^-5 and 4e-3 M (f16 2^-8, 5e-4 M).
//   f64: f64 on both sides; only the order of additions differs: 1e-12 relative plus 1e-13 M.
#include <string>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

Tol forward_tol(DType dt) {
  switch (dt) {
    case DType::F64: return {0, 1e-12, 1e-13};
    case DType::BF16: return {0, 1.0 / 64, 2e-3};
    case DType::F16: return {0, 1.0 / 512, 2.5e-4};
    default: return {0, 1e-4, 1e-5};
  }
}

// Through autograd: each device differentiates its own forward output.
Tol autograd_tol(DType dt) {
  switch (dt) {
    case DType::BF16: return {0, 1.0 / 32, 4e-3};
    case DType::F16: return {0, 1.0 / 256, 5e-4};
    default: return forward_tol(dt);
  }
}

std::string dim_tag(int64_t dim) { return dim < 0 ? std::string("dlast") : std::string("d").append(std::to_string(dim)); }

const char* op_name(bool log) { return log ? "log_softmax" : "softmax"; }

// softmax / log_softmax of x along `dim`, backward through autograd. `transpose_out` returns
// y with its last two dims swapped (for a transposed x: y in x's storage order), so the
// upstream gradient reaches the backward transposed.
OpCase softmax_row(Shape shape, int64_t dim, bool log, DType dt, View view = View::Contiguous,
                   bool transpose_out = false) {
  OpCase c;
  c.name = std::string(op_name(log)) + "_" + dim_tag(dim) + (transpose_out ? "_yT" : "");
  c.inputs = {in(std::move(shape), dt, -8, 8, view)};
  c.fn = [dim, log, transpose_out](const std::vector<Tensor>& a) {
    Tensor y = log ? log_softmax(a[0], dim) : softmax(a[0], dim);
    if (transpose_out) y = y.transpose(-1, -2);
    return std::vector<Tensor>{y};
  };
  c.fwd = forward_tol(dt);
  c.bwd = autograd_tol(dt);
  return c;
}

// The forward's output as an input: softmax / log_softmax of x in [-8, 8) along `dim`,
// computed in f64 on the CPU and rounded to `dt` (as the op would store it).
Input forward_output(const Shape& shape, int64_t dim, bool log, DType dt, View view) {
  Input y = custom([shape, dim, log, dt](uint64_t seed) {
    OpCase u;
    u.inputs = {constant(shape, DType::F64, -8, 8)};
    u.seed = seed;
    const Tensor x = make_inputs(u, Device::cpu()).args[0];
    return (log ? log_softmax(x, dim) : softmax(x, dim)).to(dt);
  });
  y.shape = shape;  // for the row's name; the values come from `make`
  y.dtype = dt;
  y.view = view;
  return y;
}

// softmax_backward(dy, y) / log_softmax_backward(dy, y): the backward kernels on the same
// inputs on both devices (not recorded for autograd).
OpCase backward_row(const Shape& shape, int64_t dim, bool log, DType dt,
                    View dy_view = View::Contiguous, View y_view = View::Contiguous) {
  OpCase c;
  c.name = std::string(op_name(log)) + "_backward_" + dim_tag(dim);
  Input dy = constant(shape, dt, -1, 1);
  dy.view = dy_view;
  c.inputs = {dy, forward_output(shape, dim, log, dt, y_view)};
  c.fn = [dim, log](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{log ? log_softmax_backward(a[0], a[1], dim)
                                   : softmax_backward(a[0], a[1], dim)};
  };
  c.fwd = forward_tol(dt);
  c.backward = c.gradcheck = false;
  return c;
}

struct Axis {
  Shape shape;
  int64_t dim;
};

// Beyond the row grid: every strided (inner > 1) layout, the block kernel's limits, rows of
// length 1 along either axis.
const std::vector<Axis> kAxes = {
    {{257, 385}, 0}, {{3, 1, 257}, 0}, {{3, 1, 257}, 1}, {{3, 1, 257}, 2}, {{6, 4099}, 1},
    {{4099, 3}, 0},  {{2, 1025}, 1},   {{3, 1024}, -1},  {{5, 1}, 1},      {{1, 5}, 0}};

}  // namespace

VIMOE_OP_CASES(softmax) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c) {
    rows.push_back(std::move(c));
  };
  for (DType dt : {DType::F32, DType::BF16})
    for (bool log : {false, true}) {
      // The last axis: rows 1, 3, 257 by odd widths, the attention rows (257), the model
      // width (384) and the MLP width (1536, block kernel).
      for (int64_t r : {1, 3, 257})
        for (int64_t n : {1, 3, 257, 384, 385, 1536}) add(softmax_row({r, n}, 1, log, dt));
      for (const Axis& a : kAxes) add(softmax_row(a.shape, a.dim, log, dt));
      // The same kernels' backward on the same (y, dy) on both devices.
      for (const Axis& a : kAxes) add(backward_row(a.shape, a.dim, log, dt));
      add(backward_row({257, 385}, 1, log, dt));
      // A transposed x (and gradient), over either axis; a misaligned one (the kernels read
      // element by element, so this checks the front-end takes it as it is).
      add(softmax_row({257, 385}, 1, log, dt, View::Transposed, /*transpose_out=*/true));
      add(softmax_row({257, 385}, 0, log, dt, View::Transposed, /*transpose_out=*/true));
      add(softmax_row({33, 385}, 1, log, dt, View::Misaligned));
      add(softmax_row({33, 385}, 0, log, dt, View::Misaligned));
      // A transposed dy and a misaligned y reach the backward kernels as copies / in place.
      add(backward_row({65, 385}, 1, log, dt, View::Transposed, View::Misaligned));
    }
  for (DType dt : {DType::F16, DType::F64})
    for (bool log : {false, true}) {
      for (const Axis& a : {Axis{{257, 385}, 1}, Axis{{6, 4099}, 1}, Axis{{4099, 3}, 0}})
        add(softmax_row(a.shape, a.dim, log, dt));
      add(backward_row({257, 385}, 1, log, dt));
    }
  // Attention probabilities: [batch, heads, tokens, tokens] over the last axis, at batch 2
  // and at the ViT-S/14 training batch 256 (101M scores).
  for (DType dt : {DType::F32, DType::BF16}) add(softmax_row({2, 6, 257, 257}, -1, false, dt));
  for (DType dt : {DType::F32, DType::BF16}) {
    OpCase c = softmax_row({256, 6, 257, 257}, -1, false, dt);
    c.large = true;
    add(std::move(c));
  }
  return rows;
}

}  // namespace vimoe::parity
