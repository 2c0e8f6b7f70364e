// Expert dispatch for MoE layers (kernels/moe_dispatch.cu, engine/ops/moe_dispatch.h): the
// plan (a stable counting sort of the R*k slots by expert: order, position, segment offsets),
// dispatch_rows (rows gathered into expert order; its backward sums each row's k copies with
// the combine kernel), combine_rows (the gated sum back; its backward is the gather with the
// gates as scales and the gate-gradient dot products), and grouped_linear (each expert's
// linear layer on its segment). grouped_linear's GEMMs are kernels/gemm.cu's, but the op is
// this file's engine op and lives on the plan's segments, so its rows are here.
//
// Expert ids come from custom(make) with the row's seed, skewed on purpose (u^2 * experts):
// low experts get most slots, some experts get none, and a row's k choices may repeat one.
// Shapes: rows 1, 3, 257 (4099 for the plan's multi-tile loop); k 1 and 2; experts 1, 2, 4,
// 8 (64 and 100 for the plan: the warp-table path ends at 64, more take the serial one);
// row widths 3 and 385, whole [3, 5] and [257, 384] images as rows; ViT-S/14 at batch 256
// with 8 experts, top-1 and top-2, both image-level (256 rows of [257, 384]) and token-level
// (65792 rows of [384]) routing.
//
// Tolerances of CUDA against the CPU (values and upstream gradients in [-1, 1), gates in
// [0, 1); u = 2^-24):
//   plan: exact (integers from a deterministic stable sort on both sides).
//   dispatch_rows forward: exact (a copy). Backward (no gates): each row's gradient is the sum
//     of its k <= 2 copies. f32: the GPU's fma(1, b, a) and the CPU's double sum rounded to f32
//     are both the correctly rounded sum of two f32 values (exact in double): exact. bf16: the
//     GPU rounds to f32, then to bf16; the CPU rounds once. The two can differ only when the
//     exact sum needs more than 24 bits (operands 16 binades apart) and the f32 rounding lands
//     on a bf16 tie: one bf16 ulp, <= 2^-7 |cpu|; rtol 2^-6 leaves one ulp of margin.
//   combine_rows forward, f32: y = sum_j g_j v_j with |g_j v_j| < 1. k = 1 is one correctly
//     rounded product on both sides; for k = 2 the GPU rounds the first product and the sum
//     (<= u |g1 v1| + 2u |y| once the CPU's single rounding is counted) <= 5u = 3e-7: atol
//     1e-6, rtol 1e-6. bf16: the f32 result above, rounded once more, may land one bf16 ulp
//     (<= 2^-7 |cpu|) from the CPU's: rtol 2^-6 (two ulps), atol 1e-6.
//   combine_rows backward: the expert-output gradient is g_s * dy (f32: one correctly rounded
//     product on both sides, exact; bf16: f32 then bf16 against one rounding, one ulp). The gate
//     gradient is a dot product over the row width w (98688 for an image row), an f32 sum on the
//     GPU (256 threads' partial sums, then a tree) against double: as for the reductions
//     (cases_reduce.cpp), the partial sums grow like sqrt(w) / 3 and each rounding costs a few u
//     of them: atol 2e-6 sqrt(w) plus rtol 1e-5 (f32) or 2^-6 (bf16, for the expert-output
//     gradient). One tolerance serves both gradients: loose for the exact one, but an indexing
//     error (~|dy| ~ 0.5) stays far above it.
//   grouped_linear: the GEMM tolerances of cases_linalg.cpp (f32 without TF32: 1e-5 sqrt(K),
//     1e-5; bf16: sqrt(K) / 128, 2^-6), K the longest sum behind a compared value: in + 1
//     (bias) forward; backward the larger of out (dx; its dispatch backward adds one rounding,
//     inside rtol) and the rows x tokens an expert may own (dW, the bias gradient).
//   f64 (the gradient check's dtype, through the double-gate kernels): double on both sides,
//     the GPU contracting to fma where the CPU does not: a few double ulps, 1e-14 relative (the
//     gate gradient: 1e-14 sqrt(w) absolute, 1e-12 relative).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

// [rows, k] i32 expert ids in [0, experts), skewed toward low experts.
Input expert_ids(int64_t rows, int64_t k, int64_t experts) {
  Input i = custom([rows, k, experts](uint64_t seed) {
    CaseRng rng(seed);
    std::vector<int32_t> v(static_cast<size_t>(rows * k));
    for (int32_t& id : v) {
      const double u = rng.uniform();
      id = static_cast<int32_t>(u * u * static_cast<double>(experts));  // u < 1: id < experts
    }
    return Tensor::from_vector(v, {rows, k});
  });
  i.shape = {rows, k};
  i.dtype = DType::I32;
  return i;
}

Shape rows_of(int64_t rows, const Shape& row_shape) {
  Shape s{rows};
  s.insert(s.end(), row_shape.begin(), row_shape.end());
  return s;
}

int64_t numel_of(const Shape& s) { return shape_numel(s); }

std::string e_tag(int64_t experts) { return "_e" + std::to_string(experts); }

// ---- plan ---------------------------------------------------------------------------------------

OpCase plan_row(int64_t rows, int64_t k, int64_t experts) {
  OpCase c;
  c.name = "plan" + e_tag(experts);
  c.inputs = {expert_ids(rows, k, experts)};
  c.fn = [experts](const std::vector<Tensor>& a) {
    const DispatchPlan p = plan_dispatch(a[0], experts);
    // The segment offsets (the experts' slot counts) live on the host; put them beside the
    // other outputs so both devices' plans compare alike.
    return std::vector<Tensor>{p.order, p.position,
                               Tensor::from_vector(p.offsets, {experts + 1}, a[0].device())};
  };
  c.fwd = kExact;
  c.backward = false;  // integer outputs
  c.gradcheck = false;
  return c;
}

// ---- dispatch / combine -------------------------------------------------------------------------

Tol dispatch_bwd_tol(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-15, 1e-15, 0};
    case DType::F32: return kExact;
    default: return {0, 1.0 / 64, 0};
  }
}

OpCase dispatch_row(int64_t rows, int64_t k, int64_t experts, const Shape& row_shape, DType dt) {
  OpCase c;
  c.name = "dispatch" + e_tag(experts);
  c.inputs = {in(rows_of(rows, row_shape), dt), expert_ids(rows, k, experts)};
  c.fn = [experts](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{dispatch_rows(a[0], plan_dispatch(a[1], experts))};
  };
  c.fwd = kExact;
  c.bwd = dispatch_bwd_tol(dt);
  return c;
}

Tol combine_fwd_tol(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-15, 1e-14, 0};
    case DType::F32: return {1e-6, 1e-6, 0};
    default: return {1e-6, 1.0 / 64, 0};
  }
}

Tol combine_bwd_tol(DType dt, int64_t width) {
  const double walk = std::sqrt(static_cast<double>(std::max<int64_t>(width, 1)));
  switch (dt) {
    case DType::F64: return {1e-14 * walk, 1e-12, 0};
    case DType::F32: return {2e-6 * walk, 1e-5, 0};
    default: return {2e-6 * walk, 1.0 / 64, 0};
  }
}

OpCase combine_row(int64_t rows, int64_t k, int64_t experts, const Shape& row_shape, DType dt) {
  OpCase c;
  c.name = "combine" + e_tag(experts);
  // Gates are f32 whatever the rows' dtype, as route_topk makes them.
  c.inputs = {in(rows_of(rows * k, row_shape), dt), in({rows, k}, DType::F32, 0, 1),
              expert_ids(rows, k, experts)};
  c.fn = [experts](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{combine_rows(a[0], a[1], plan_dispatch(a[2], experts))};
  };
  c.fwd = combine_fwd_tol(dt);
  c.bwd = combine_bwd_tol(dt, numel_of(row_shape));
  return c;
}

// ---- grouped_linear -----------------------------------------------------------------------------

Tol gemm_tol(DType dt, int64_t k) {
  const double r = std::sqrt(static_cast<double>(std::max<int64_t>(k, 1)));
  switch (dt) {
    case DType::F64: return {1e-12 * r, 1e-12, 0};
    case DType::BF16: return {r / 128, 1.0 / 64, 0};
    default: return {1e-5 * r, 1e-5, 0};
  }
}

// x [rows, tokens..., in] dispatched (k per row) through [experts, out, in] (+ bias).
OpCase grouped_linear_row(int64_t rows, int64_t k, int64_t experts, const Shape& token_shape,
                          int64_t in_f, int64_t out_f, bool bias, DType dt) {
  OpCase c;
  c.name = std::string(bias ? "grouped_linear" : "grouped_linear_nobias") + e_tag(experts);
  Shape xs = rows_of(rows, token_shape);
  xs.push_back(in_f);
  // Weights in [-1, 1) like linalg's rows: dx (a sum over out) then has magnitude
  // sqrt(out) / 3, which a misrouted row would miss by far more than the backward tolerance
  // set by the weight gradient's longer sums.
  c.inputs = {in(xs, dt), in({experts, out_f, in_f}, dt)};
  if (bias) c.inputs.push_back(in({experts, out_f}, dt));
  c.inputs.push_back(expert_ids(rows, k, experts));
  c.fn = [experts, bias](const std::vector<Tensor>& a) {
    const DispatchPlan plan = plan_dispatch(a.back(), experts);
    return std::vector<Tensor>{
        grouped_linear(dispatch_rows(a[0], plan), a[1], bias ? a[2] : Tensor(), plan)};
  };
  const int64_t tokens = numel_of(token_shape);
  c.fwd = gemm_tol(dt, in_f + 1);
  c.bwd = gemm_tol(dt, std::max<int64_t>(out_f, rows * k * tokens));
  return c;
}

}  // namespace

VIMOE_OP_CASES(moe_dispatch) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c, bool large = false) {
    c.large = large;
    rows.push_back(std::move(c));
  };
  const DType f32 = DType::F32, bf16 = DType::BF16;

  // The plan: every combination of rows, k and experts; 4099 rows x 2 are 8198 slots, nine
  // of the sort's 1024-slot tiles.
  for (int64_t r : {1, 3, 257, 4099})
    for (int64_t k : {1, 2})
      for (int64_t e : {1, 2, 4, 8, 64, 100}) add(plan_row(r, k, e));

  // Dispatch and combine on odd rows, k, experts and widths; whole images as rows.
  for (DType dt : {f32, bf16}) {
    for (int64_t r : {1, 3, 257})
      for (int64_t k : {1, 2})
        for (int64_t e : {1, 2, 4, 8})
          for (int64_t w : {3, 385}) {
            add(dispatch_row(r, k, e, {w}, dt));
            add(combine_row(r, k, e, {w}, dt));
          }
    add(dispatch_row(3, 2, 8, {3, 5}, dt));
    add(combine_row(3, 2, 8, {3, 5}, dt));
    add(dispatch_row(1, 1, 8, {257, 384}, dt));
    add(combine_row(1, 1, 8, {257, 384}, dt));
    add(dispatch_row(257, 2, 64, {385}, dt));
    add(combine_row(257, 2, 64, {385}, dt));
  }
  // f64 (the gradient check's dtype) through the double-gate kernels.
  add(dispatch_row(257, 2, 4, {3}, DType::F64));
  add(combine_row(257, 2, 4, {3}, DType::F64));
  add(combine_row(3, 2, 8, {3, 5}, DType::F64));

  // grouped_linear: small rows for the gradient check, image rows (33 x 17 tokens) and token
  // rows (4099), with and without bias.
  for (DType dt : {f32, bf16}) {
    add(grouped_linear_row(3, 2, 4, {5}, 3, 2, true, dt));
    add(grouped_linear_row(257, 1, 2, {}, 3, 5, true, dt));
    add(grouped_linear_row(33, 2, 8, {17}, 64, 96, true, dt));
    add(grouped_linear_row(4099, 2, 8, {}, 64, 96, true, dt));
    add(grouped_linear_row(257, 2, 4, {}, 385, 3, false, dt));
  }

  // ---- ViT-S/14 at batch 256: 8 experts, top-1 and top-2 ----------------------------------------
  const int64_t images = 256, tokens = 257, dim = 384, experts = 8;
  for (int64_t k : {1, 2}) {
    add(plan_row(images, k, experts), true);  // image-level routing
    for (int64_t e : {1, 8, 64, 100}) add(plan_row(images * tokens, k, e), true);  // token-level
    for (DType dt : {f32, bf16}) {
      add(dispatch_row(images, k, experts, {tokens, dim}, dt), true);
      add(combine_row(images, k, experts, {tokens, dim}, dt), true);
      add(dispatch_row(images * tokens, k, experts, {dim}, dt), true);
      add(combine_row(images * tokens, k, experts, {dim}, dt), true);
    }
  }
  // The experts' fc1 under image-level top-1 (the paper's setting): 65792 tokens, 384 -> 1536.
  for (DType dt : {f32, bf16})
    add(grouped_linear_row(images, 1, experts, {tokens}, dim, 4 * dim, true, dt), true);
  return rows;
}

}  // namespace vimoe::parity
