// Softmax top-k routing (kernels/routing.cu, engine/ops/routing.h): route_topk's gates [R, k],
// load-balancing loss, expert ids [R, k] (with the top-1 expert counts behind the load [N])
// and router probabilities [R, N], forward; the logits' gradient through the gates (plain or
// renormalised over the k) and the loss, backward.
//
// Logits come from custom(make) with the row's seed: each row puts its N experts on distinct
// levels 8 / N apart in a random order (plus a jitter below a quarter level and a per-row
// shift in [-1, 1)), so no two logits of a row are closer than 6 / N, or 4 / N after bf16
// rounding (|logit| < 5, half a bf16 ulp <= 2^-6 each): no two probabilities within a factor
// e^(4 / N) (e^(1/16) at N = 64) of each other. That is far beyond the f32 / f64 difference
// and the gradient check's 1e-6 steps, so top-k picks the same experts everywhere. One family
// of rows has exact ties instead (logits on a grid of 1/2): ties go to the lower expert index
// on both devices; the choice is discontinuous there, so those rows skip the gradient check.
// Shapes: rows 1, 3, 257; experts 1, 2, 4, 8, 33, 64 (the kernel's two experts per lane, half
// and fully used); k 1 and 2; with and without renormalisation; logits f32, bf16 (converted
// to f32 on entry) and f64 (the double kernels). ViT-S/14 at batch 256 with 8 experts,
// top-1 and top-2 (renormalised, as models/vit.cpp routes): image-level (256 rows) and
// token-level (65792 rows, also with 1, 2, 33 and 64 experts).
//
// probs carry no gradient (they are for analysis), and the f64 gradient check sees every
// floating output, so f64 rows leave them out; the f32 and bf16 rows compare them.
//
// Tolerances of CUDA (one warp per row, f32) against the CPU (double, stored in f32):
//   forward, gates and probs: the GPU's logit differences (<= half an ulp of |v - max| < 10,
//     4.8e-7 absolute, so 4.8e-7 relative after exp), expf (2 ulp), a warp sum of <= 64
//     positive terms (6 roundings) and the division come to <= 2e-6 relative in p;
//     renormalising divides by a sum of k such values (<= 4e-6). rtol 1e-5, atol 1e-6. bf16
//     logits reach the kernel as the same f32 values on both sides.
//   aux loss: the mean probabilities sum probabilities 2e-6 apart (relative, as above) in
//     column sums of positive values (no cancellation: a few u per level of the reduction),
//     times the exact load, summed over N: a few 1e-6 relative, inside rtol 1e-5.
//   ids: exact. load: counts / R in f32 on both sides, exact; against atol 1e-6 + 1e-5 |load|
//     a miscount by 1/R (>= 1.5e-5 at 65792 rows) still fails.
//   backward, f32: dlogits_i = p_i (dp_i - s). Each side uses its own probabilities (2e-6
//     apart), which renormalisation divides by their sum S: the difference is a few 1e-6
//     |dg| p_i / S <= a few 1e-6 of the largest gradient, where cancellation in dp_i - s can
//     leave the element itself near zero. atol 1e-6, rtol 1e-5, scaled 1e-5 (of max |dlogits|).
//   backward, bf16: the f32 gradient above rounded once to bf16 on each side, possibly to
//     neighbours: rtol 2^-6 (two ulps).
//   f64: double on both sides (the CPU without fma): 1e-13 absolute, 1e-12 relative.
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

// Router logits [rows, experts] in `dt`: distinct levels per row (see the top), or, with
// `ties`, values on {-1, -1/2, ..., 1} (exact in every dtype) so rows are full of ties.
Input router_logits(int64_t rows, int64_t experts, DType dt, bool ties) {
  Input i = custom(
      [rows, experts, dt, ties](uint64_t seed) {
        CaseRng rng(seed);
        std::vector<double> v(static_cast<size_t>(rows * experts));
        std::vector<int64_t> perm(static_cast<size_t>(experts));
        const double step = 8.0 / static_cast<double>(experts);
        for (int64_t r = 0; r < rows; ++r) {
          double* row = v.data() + r * experts;
          if (ties) {
            for (int64_t e = 0; e < experts; ++e)
              row[e] = 0.5 * static_cast<double>(rng.below(5)) - 1;
            continue;
          }
          std::iota(perm.begin(), perm.end(), 0);
          for (int64_t e = experts - 1; e > 0; --e) std::swap(perm[e], perm[rng.below(e + 1)]);
          const double shift = 2 * rng.uniform() - 1;
          for (int64_t e = 0; e < experts; ++e)
            row[perm[e]] = -4 + shift + step * (static_cast<double>(e) + 0.25 * rng.uniform());
        }
        return Tensor::from_vector(v, {rows, experts}).to(dt);
      },
      /*requires_grad=*/true);
  i.shape = {rows, experts};
  i.dtype = dt;
  return i;
}

Tol fwd_tol(DType dt) { return dt == DType::F64 ? Tol{1e-13, 1e-12, 0} : Tol{1e-6, 1e-5, 0}; }

Tol bwd_tol(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-13, 1e-12, 0};
    case DType::F32: return {1e-6, 1e-5, 1e-5};
    default: return {1e-6, 1.0 / 64, 1e-5};
  }
}

OpCase route_row(int64_t rows, int64_t experts, int64_t k, bool renorm, DType dt,
                 double alpha = 1.0, bool ties = false) {
  OpCase c;
  c.name = std::string(ties ? "route_topk_ties_k" : "route_topk_k") + std::to_string(k) +
           (renorm ? "_renorm" : "");
  c.inputs = {router_logits(rows, experts, dt, ties)};
  c.fn = [k, renorm, alpha](const std::vector<Tensor>& a) {
    const Routing r = route_topk(a[0], k, renorm, alpha);
    std::vector<Tensor> out{r.gates, r.aux_loss, r.expert_ids, r.load};
    if (a[0].dtype() != DType::F64) out.push_back(r.probs);  // see the top
    return out;
  };
  c.fwd = fwd_tol(dt);
  c.bwd = bwd_tol(dt);
  c.gradcheck = !ties;  // at a tie the choice of expert jumps under any perturbation
  return c;
}

}  // namespace

VIMOE_OP_CASES(routing) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c, bool large = false) {
    c.large = large;
    rows.push_back(std::move(c));
  };
  // alpha = 1 keeps the loss's share of the logits' gradient (alpha N f_i / R per unit of
  // upstream gradient) well above the tolerances at these row counts.
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t r : {1, 3, 257})
      for (int64_t n : {1, 2, 4, 8, 33, 64})
        for (int64_t k : {1, 2})
          for (bool renorm : {false, true})
            if (k <= n) add(route_row(r, n, k, renorm, dt));
  for (int64_t n : {3, 64})
    for (bool renorm : {false, true}) add(route_row(3, n, 2, renorm, DType::F64));
  add(route_row(257, 8, 1, false, DType::F64));
  // Exact ties.
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t n : {8, 33})
      for (int64_t k : {1, 2}) add(route_row(257, n, k, k > 1, dt, 1.0, /*ties=*/true));

  // ---- ViT-S/14 at batch 256, the model's aux weight 0.01 ---------------------------------------
  const int64_t images = 256, tokens = 256 * 257;
  for (DType dt : {DType::F32, DType::BF16}) {
    for (int64_t k : {1, 2}) {
      add(route_row(images, 8, k, k > 1, dt, 0.01), true);  // image-level: the CLS tokens
      for (int64_t n : {1, 2, 8, 33, 64})
        for (bool renorm : {false, true})
          if (k <= n) add(route_row(tokens, n, k, renorm, dt, 0.01), true);  // token-level
    }
  }
  return rows;
}

}  // namespace vimoe::parity
