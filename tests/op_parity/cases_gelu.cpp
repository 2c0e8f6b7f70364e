// GELU (exact erf) and bias + GELU.
//
// Tolerances of CUDA against the CPU: both evaluate kernels/gelu_math.h in the same compute
// type, but the device's erff/expf and the host's libm differ by an ulp or two.
//  f32: 1e-6 absolute (values near gelu's and gelu''s zeros), 1e-5 relative. The bias
//       gradient sums `rows` terms of size < 1.2 in different orders: 1e-6 absolute per row.
//  bf16 / f16: an f32 difference can move the rounded value by one ulp, 2^-7 / 2^-10
//       relative; the bias gradient rounds a sum once.
#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

Tol gelu_tol(DType dt, int64_t rows_summed = 0) {
  const double per_row = dt == DType::F64 ? 1e-13 : dt == DType::F32 ? 1e-6 : 1e-4;
  const double r = static_cast<double>(rows_summed);
  switch (dt) {
    case DType::F64: return {1e-13 + per_row * r, 1e-12, 0};
    case DType::F32: return {1e-6 + per_row * r, 1e-5, 0};
    case DType::F16: return {1e-4 + per_row * r, 2e-3, 0};
    default: return {1e-4 + per_row * r, 1e-2, 0};
  }
}

OpCase bias_gelu_row(int64_t rows, int64_t cols, DType dt, View view = View::Contiguous) {
  OpCase c;
  c.name = "bias_gelu";
  // [-4, 4) covers both tails and the region where gelu' changes sign (near -0.75).
  c.inputs = {in({rows, cols}, dt, -4, 4, view), in({cols}, dt)};
  c.fn = [](const std::vector<Tensor>& a) { return std::vector<Tensor>{bias_gelu(a[0], a[1])}; };
  c.fwd = gelu_tol(dt);
  c.bwd = gelu_tol(dt, rows);  // the bias gradient sums the rows
  return c;
}

OpCase gelu_row(int64_t rows, int64_t cols, DType dt, View view = View::Contiguous) {
  OpCase c;
  c.name = "gelu";
  c.inputs = {in({rows, cols}, dt, -4, 4, view)};
  c.fn = [](const std::vector<Tensor>& a) { return std::vector<Tensor>{gelu(a[0])}; };
  c.fwd = c.bwd = gelu_tol(dt);
  return c;
}

}  // namespace

VIMOE_OP_CASES(gelu) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c) {
    rows.push_back(std::move(c));
  };
  // Widths that are whole 16-byte packs (384, 768, 1024, 1536) take the packed kernels; 1, 3
  // and 385 take the one-element ones (for gelu without bias: when rows * cols is not a
  // whole number of packs).
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t r : {1, 3, 257})
      for (int64_t cols : {1, 3, 384, 385, 768, 1024, 1536}) {
        add(bias_gelu_row(r, cols, dt));
        add(gelu_row(r, cols, dt));
      }
  for (DType dt : {DType::F16, DType::F64})
    for (int64_t cols : {3, 384, 385}) add(bias_gelu_row(257, cols, dt));
  // Views: one element past a 16-byte boundary takes the element path; a transposed input
  // (and its gradient) the strided one.
  for (DType dt : {DType::F32, DType::BF16}) {
    add(bias_gelu_row(33, 384, dt, View::Misaligned));
    add(gelu_row(33, 384, dt, View::Misaligned));
  }
  add(bias_gelu_row(65, 384, DType::F32, View::Transposed));
  // The ViT-S/14 MLP hidden activation at batch 256: 65792 rows x 1536, bias fused; the bias
  // gradient reduces over 170 row parts.
  for (DType dt : {DType::F32, DType::BF16}) {
    OpCase c = bias_gelu_row(256 * 257, 1536, dt);
    c.large = true;
    add(std::move(c));
  }
  return rows;
}

}  // namespace vimoe::parity
