// Scaled-dot-product attention (kernels/attention.cu through engine/ops/attention.cpp):
// attention(q, k, v) and attention(q, k, v, scale) with their autograd backward, the
// log-sum-exp of attention_with_lse, and attention_backward on its own.
//
// Paths on CUDA (the CPU reference, engine/cpu/attention.cpp, always runs the fused
// algorithm in double and rounds each result once to the storage dtype):
//   - head dim 64 or 128, f32: the simt_* kernels (CUDA cores, f32 throughout; tiles of 32
//     rows for Dh = 64, 16 for 128);
//   - head dim 64 or 128, bf16: the tc_* kernels (mma.sync, bf16 operands, f32 accumulators,
//     64-row tiles);
//   - any other head dim, f16 and f64: attention() takes attention_composed() (matmul,
//     softmax in f32 for half scores, matmul), which the rows compare with the CPU's fused
//     reference, as a caller sees it.
// Sequence lengths: 1 (one key: dq = dk = 0), 5 (less than one tile), 17, 64 (whole tiles of
// every size), 257 (ViT-S/14 at 224 px, a partial last tile), 1370 (518 px). Batches 1, 2, 3.
// Views: the kernels read any view whose last dim is contiguous through its strides (bf16:
// with a 16-byte aligned start and strides that are multiples of 8 elements); the front-end
// copies the others contiguous first. Transposed storage (copied), one element past an
// aligned start (read in place in f32, copied in bf16), batch-broadcast k and v (stride 0,
// read in place; the gradient sums over the batch), rows padded past the head dim (row
// stride 72: read in place; 65: in place in f32, copied in bf16), the ViT layout ([B, T,
// H * Dh] projections viewed [B, T, H, Dh] and permuted to [B, H, T, Dh], as models/vit.cpp
// calls it) and q, k, v selected from one packed [B, T, 3, H, Dh] tensor (three strided
// views whose gradients meet in one leaf), both read in place.
//
// Inputs: q, k in [-2, 2) (scaled scores with a standard deviation near 1.3 at the default
// scale: peaked enough that a wrong key or row shows, without saturating the softmax), v and
// the upstream gradient in [-1, 1). The composed-path rows keep q, k in [-1, 1) as their
// tolerances were established there.
//
// Tolerances of CUDA against the CPU, in the driver's terms |cuda - cpu| <= atol + scaled * M
// + rtol * |cpu| (M = max |cpu| of the compared tensor). Every attention result is a sum over
// a whole row or column of keys or queries, so its rounding error scales with the size of
// the sums (M), not of each element.
//   fused f32, forward and gradients: {1e-5, 1e-4, 1e-4}. Scores are f32 dot products of
//       Dh <= 128 terms (error ~ sqrt(Dh) u |q||k| scale ~ 1e-6, a relative 1e-6 in each
//       probability); expf is within 2 ulps; the output, dV and dK are f32 sums of S <= 1370
//       terms weighted by probabilities that sum to 1, whose worst-case rounding is
//       S u max|v| = 8e-5 M (typically sqrt(S) u); dQ and dK go through dS = P (dP - D),
//       dP and D f32 sums of Dh terms. The 1e-5 floor covers results that are exactly zero
//       on the CPU: with one key dq = dk = 0 because dP - rowsum(dO * O) cancels exactly in
//       double, while the GPU forms the two terms in f32 in different orders and keeps a
//       ~1e-7 remainder.
//   fused bf16, forward: {1e-5, 1e-2, 1e-2}. The same bf16 inputs on both sides; bf16
//       products are exact in the f32 accumulators. The GPU rounds P to bf16 before P V
//       (2^-9 relative per element, averaging out over the sum) and each side rounds its
//       result to bf16 once (one bf16 ulp, 2^-8 relative, between them): 2.5x margin.
//   fused bf16, attention_backward alone (the same saved out and lse on both sides):
//       {1e-5, 2e-2, 2e-2}: P and dS are rounded to bf16 before the tensor-core products
//       (2^-9 each, and dS = P (dP - D) rounds a difference), then the result once.
//   fused bf16, autograd gradients: {1e-5, 3e-2, 3e-2}. Here the GPU backward reads its own
//       forward's output, which differs from the CPU's by up to a bf16 ulp: D = rowsum(dO *
//       O) moves by ~2^-8 of its terms, one more 1e-2 on dS.
//   log-sum-exp (f32 for f32 and bf16 inputs): {1e-4, 1e-5, 0}. Scores accumulate in f32 on
//       both GPU paths (bf16 products are exact in f32), the row sum l of <= 1370
//       probabilities in f32 (<= S u relative), so lse = m + log l agrees to f32 accuracy
//       in either dtype.
//   composed f32 (head dims 16, 33, 40): {0, 1e-4, 1e-5}. cuBLAS without TF32 and the f32
//       softmax over 17 keys and <= 40 features: a few f32 ulps of M.
//   composed bf16: {0, 1/64, 2e-3}. The GPU rounds the scores (the bf16 GEMM's output:
//       |score| <= ~6 at 2^-9, so ~2e-3 in a probability after the scale), the
//       probabilities (2^-9) and each product's output (2^-9) to bf16, the CPU only its
//       result: a few bf16 ulps relative (1/64 = 4 ulps) plus 2e-3 M where outputs cancel
//       to near zero.
//   composed f16, forward: {0, 5e-3, 2e-3}. The same roundings at 2^-11; held before to
//       2e-3 M + |ref| / 256 against an f32 CPU result, which the f16 CPU result differs
//       from by one f16 rounding (2^-11 relative): 1/256 + 1/2048 < 5e-3.
//       Gradients: the bf16 bound {0, 1/64, 2e-3}; every error term scales with the unit
//       roundoff, eight times smaller in f16.
//   composed f64: {1e-12, 1e-10, 1e-12}. f64 GEMMs and softmax against the CPU's double:
//       only the order of additions and exp's last ulp differ (~1e-15 relative).
//   Backward rows compare the gradients of every input; the gradient check (f64, CPU) runs
//   on the rows of at most 2048 input elements: one key, five keys, a packed qkv of five
//   tokens, padded rows of five keys, the composed head dims at five keys.
#include <cmath>
#include <string>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

enum class Grad { Autograd, Alone };

bool fused(int64_t head_dim, DType dt) {
  return (head_dim == 64 || head_dim == 128) && (dt == DType::F32 || dt == DType::BF16);
}

Tol fwd_tol(int64_t head_dim, DType dt) {
  if (fused(head_dim, dt))
    return dt == DType::F32 ? Tol{1e-5, 1e-4, 1e-4} : Tol{1e-5, 1e-2, 1e-2};
  switch (dt) {
    case DType::F64: return {1e-12, 1e-10, 1e-12};
    case DType::F16: return {0, 5e-3, 2e-3};
    case DType::BF16: return {0, 1.0 / 64, 2e-3};
    default: return {0, 1e-4, 1e-5};
  }
}

Tol bwd_tol(int64_t head_dim, DType dt, Grad g = Grad::Autograd) {
  if (fused(head_dim, dt)) {
    if (dt == DType::F32) return {1e-5, 1e-4, 1e-4};
    return g == Grad::Alone ? Tol{1e-5, 2e-2, 2e-2} : Tol{1e-5, 3e-2, 3e-2};
  }
  switch (dt) {
    case DType::F64: return {1e-12, 1e-10, 1e-12};
    case DType::F16:
    case DType::BF16: return {0, 1.0 / 64, 2e-3};
    default: return {0, 1e-4, 1e-5};
  }
}

constexpr Tol kLseTol{1e-4, 1e-5, 0};

// The value ranges of q, k (lo, hi) on the fused and composed paths.
double qk_bound(int64_t head_dim, DType dt) { return fused(head_dim, dt) ? 2 : 1; }

std::string scale_tag(double scale) {
  std::string s = std::to_string(scale);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  if (s[0] == '-') s = "neg" + s.substr(1);
  return "scale" + s;
}

// attention(q, k, v) on [B, H, S, Dh] (scale < 0: the default 1 / sqrt(Dh) overload; else
// the explicit one), each input through its view.
OpCase attention_row(Shape shape, DType dt, double scale = -1,
                     std::vector<View> views = {View::Contiguous, View::Contiguous,
                                                View::Contiguous}) {
  OpCase c;
  const int64_t dh = shape[3];
  const double b = qk_bound(dh, dt);
  c.name = scale < 0 ? "attention" : "attention_" + scale_tag(scale);
  c.inputs = {in(shape, dt, -b, b, views[0]), in(shape, dt, -b, b, views[1]),
              in(shape, dt, -1, 1, views[2])};
  c.fn = [scale](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{scale < 0 ? attention(a[0], a[1], a[2])
                                         : attention(a[0], a[1], a[2], scale)};
  };
  c.fwd = fwd_tol(dh, dt);
  c.bwd = bwd_tol(dh, dt);
  return c;
}

double default_scale(const Shape& shape) {
  return 1.0 / std::sqrt(static_cast<double>(shape[3]));
}

// The log-sum-exp attention_with_lse saves (fused path only).
OpCase lse_row(Shape shape, DType dt, double scale = -1) {
  OpCase c;
  const double s = scale < 0 ? default_scale(shape) : scale;
  c.name = scale < 0 ? "attention_lse" : "attention_lse_" + scale_tag(scale);
  c.inputs = {constant(shape, dt, -2, 2), constant(shape, dt, -2, 2), constant(shape, dt, -1, 1)};
  c.fn = [s](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{attention_with_lse(a[0], a[1], a[2], s).lse};
  };
  c.fwd = kLseTol;
  c.backward = c.gradcheck = false;
  return c;
}

// attention_backward on its own, from the CPU's forward output and lse on both devices: the
// backward kernels alone, without the forward's rounding. Outputs dq, dk, dv.
OpCase backward_row(Shape shape, DType dt) {
  OpCase c;
  const double s = default_scale(shape);
  c.name = "attention_backward";
  c.inputs = {constant(shape, dt, -2, 2), constant(shape, dt, -2, 2), constant(shape, dt, -1, 1),
              constant(shape, dt, -1, 1)};  // q, k, v, dout
  c.fn = [s](const std::vector<Tensor>& a) {
    const AttentionOutput ref = attention_with_lse(a[0].cpu(), a[1].cpu(), a[2].cpu(), s);
    const Device dev = a[0].device();
    const AttentionGrads g =
        attention_backward(a[0], a[1], a[2], ref.out.to(dev), ref.lse.to(dev), a[3], s);
    return std::vector<Tensor>{g.dq, g.dk, g.dv};
  };
  c.fwd = bwd_tol(shape[3], dt, Grad::Alone);
  c.backward = c.gradcheck = false;
  return c;
}

// models/vit.cpp's call: q, k, v are [B, T, H * Dh] projections, viewed [B, T, H, Dh] and
// permuted to [B, H, T, Dh]; the default scale.
OpCase vit_layout_row(int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim, DType dt) {
  OpCase c;
  c.name = "vit_layout_h" + std::to_string(heads);
  const Shape shape{batch, tokens, heads * head_dim};
  const double b = qk_bound(head_dim, dt);
  c.inputs = {in(shape, dt, -b, b), in(shape, dt, -b, b), in(shape, dt, -1, 1)};
  c.fn = [batch, tokens, heads, head_dim](const std::vector<Tensor>& a) {
    auto split = [&](const Tensor& x) {
      return x.view({batch, tokens, heads, head_dim}).permute({0, 2, 1, 3});
    };
    return std::vector<Tensor>{attention(split(a[0]), split(a[1]), split(a[2]))};
  };
  c.fwd = fwd_tol(head_dim, dt);
  c.bwd = bwd_tol(head_dim, dt);
  return c;
}

// q, k, v selected from one packed [B, T, 3, H, Dh] tensor (a fused qkv projection viewed
// per head) and permuted to [B, H, T, Dh]: three interleaved strided views of one leaf.
OpCase packed_qkv_row(int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim, DType dt) {
  OpCase c;
  c.name = "packed_qkv";
  // v shares the range of q and k here (one input): [-2, 2) keeps the scores as above.
  c.inputs = {in({batch, tokens, 3, heads, head_dim}, dt, -2, 2)};
  c.fn = [](const std::vector<Tensor>& a) {
    auto part = [&](int64_t i) { return a[0].select(2, i).permute({0, 2, 1, 3}); };
    return std::vector<Tensor>{attention(part(0), part(1), part(2))};
  };
  c.fwd = fwd_tol(head_dim, dt);
  c.bwd = bwd_tol(head_dim, dt);
  return c;
}

// q, k, v narrowed to their first Dh features from [B, H, S, Dh + pad] storage: rows
// Dh + pad elements apart.
OpCase padded_rows_row(Shape shape, int64_t pad, DType dt) {
  OpCase c;
  const int64_t dh = shape[3];
  c.name = "padded_rows_pad" + std::to_string(pad);
  const Shape stored{shape[0], shape[1], shape[2], dh + pad};
  const double b = qk_bound(dh, dt);
  c.inputs = {in(stored, dt, -b, b), in(stored, dt, -b, b), in(stored, dt, -1, 1)};
  c.fn = [dh](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{
        attention(a[0].narrow(3, 0, dh), a[1].narrow(3, 0, dh), a[2].narrow(3, 0, dh))};
  };
  c.fwd = fwd_tol(dh, dt);
  c.bwd = bwd_tol(dh, dt);
  return c;
}

}  // namespace

VIMOE_OP_CASES(attention) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c) {
    rows.push_back(std::move(c));
  };
  constexpr DType kFused[] = {DType::F32, DType::BF16};
  const View C = View::Contiguous, T = View::Transposed, M = View::Misaligned,
             B = View::Broadcast;

  // ---- fused kernels, default scale: forward + autograd backward, lse, backward alone ----
  // [B, H] x S: one key, less than a tile, partial and whole tiles, ViT-S/14's 257 and 1370
  // tokens. [2, 3, 1] at Dh = 64 and [1, 1, 5] at both head dims get the gradient check.
  const Shape bhs[] = {{2, 3, 1}, {1, 1, 5}, {3, 2, 5}, {2, 3, 17}, {2, 3, 64},
                       {1, 1, 257}, {2, 3, 257}, {1, 2, 1370}};
  for (DType dt : kFused)
    for (int64_t dh : {64, 128})
      for (const Shape& s : bhs) {
        const Shape shape{s[0], s[1], s[2], dh};
        add(attention_row(shape, dt));
        add(lse_row(shape, dt));
        add(backward_row(shape, dt));
      }

  // ---- explicit scales (the default is 1 / sqrt(Dh)): sharper, negative, zero (a plain
  // mean of v; dq = dk = 0 exactly) ----
  add(attention_row({1, 1, 5, 64}, DType::F32, 0.3));  // gradient check
  for (DType dt : kFused) {
    add(attention_row({2, 3, 17, 64}, dt, 0.3));
    add(attention_row({1, 2, 257, 128}, dt, 0.3));
    add(lse_row({2, 3, 17, 64}, dt, 0.3));
    add(attention_row({3, 2, 64, 64}, dt, -0.2));
    add(attention_row({1, 2, 17, 64}, dt, 0.0));
  }

  // ---- views ----
  // Transposed storage (the front-end copies to contiguous), misaligned storage (read in
  // place in f32; in bf16 copied to an aligned buffer for the 16-byte loads), k and v shared
  // over the batch (read in place through a zero batch stride).
  add(attention_row({2, 1, 5, 64}, DType::F32, -1, {T, M, B}));  // gradient check
  for (DType dt : kFused) {
    add(attention_row({2, 3, 17, 64}, dt, -1, {T, T, T}));
    add(attention_row({1, 2, 17, 64}, dt, -1, {M, M, M}));
    add(attention_row({3, 1, 5, 128}, dt, -1, {M, C, M}));
    add(attention_row({3, 2, 17, 64}, dt, -1, {C, B, B}));
  }
  add(attention_row({1, 3, 257, 64}, DType::F32, -1, {T, C, T}));
  // Padded rows: row stride 65 (f32 in place, bf16 copied: not a multiple of 8) and 72 (in
  // place in both).
  add(padded_rows_row({1, 1, 5, 64}, 1, DType::F32));  // gradient check
  for (DType dt : kFused) {
    add(padded_rows_row({2, 3, 17, 64}, 1, dt));
    add(padded_rows_row({2, 3, 17, 64}, 8, dt));
    add(padded_rows_row({1, 2, 70, 128}, 1, dt));
  }
  // The ViT layout (197 tokens: 224 px at patch 16) and a packed qkv tensor.
  add(vit_layout_row(1, 5, 1, 64, DType::F32));  // gradient check
  add(packed_qkv_row(1, 5, 1, 64, DType::F32));  // gradient check
  for (DType dt : kFused) {
    add(vit_layout_row(2, 197, 3, 64, dt));
    add(vit_layout_row(3, 5, 2, 128, dt));
    add(packed_qkv_row(3, 17, 2, 64, dt));
    add(packed_qkv_row(2, 257, 6, 64, dt));
    add(packed_qkv_row(1, 5, 2, 128, dt));
  }

  // ---- what the fused kernels do not take: the composed path on CUDA ----
  // Other head dims (16, 40 as before; 33 odd), at 17 keys and, small, with the gradient
  // check; f16 and f64 at the fused head dims.
  for (DType dt : kFused) {
    for (int64_t dh : {16, 33, 40}) add(attention_row({2, 3, 17, dh}, dt));
    add(attention_row({1, 2, 5, 16}, dt));
    add(attention_row({3, 1, 5, 40}, dt));
    add(attention_row({1, 2, 5, 33}, dt));
    add(attention_row({2, 3, 17, 40}, dt, 0.3));
    add(vit_layout_row(2, 17, 2, 40, dt));
  }
  for (DType dt : {DType::F16, DType::F64}) {
    add(attention_row({1, 2, 17, 64}, dt));
    add(attention_row({3, 1, 5, 128}, dt));
    add(attention_row({2, 3, 257, 64}, dt));
  }

  // ---- ViT-S/14 training: batch 256, 257 tokens, 6 heads of 64 (width 384) ----
  for (DType dt : kFused) {
    OpCase c = vit_layout_row(256, 257, 6, 64, dt);
    c.large = true;
    add(std::move(c));
  }
  return rows;
}

}  // namespace vimoe::parity
