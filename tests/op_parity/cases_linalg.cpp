// matmul and linear (kernels/gemm.cu: cuBLAS strided-batched GEMMs, and cuBLASLt with a bias
// epilogue for linear's forward and a bias-gradient epilogue for its weight gradient).
//
// What the rows cover: odd sizes (1, 3, 17, 257, 385) in every dimension, each operand
// row-major or transposed (a transposed operand goes to the GEMM as column-major, with a
// transpose flag), misaligned storage (one element past a 16-byte boundary: cuBLAS takes it,
// linear's cuBLASLt path declines and falls back to cuBLAS), batched matmul with broadcast
// batch dims (stride 0, the host loop, one tall GEMM for a shared b), 1-D operands, sliced
// operands (copied or read in place), linear with and without bias (the bias epilogue, and
// the fused weight + bias gradient), under bf16 autocast, and the ViT-S/14 training GEMMs.
//
// Tolerances (tests/kernels/test_linalg.cpp's reasoning, carried over). Both sides compute
// from bit-identical inputs and accumulate in f32 (f64 for f64); they differ only in
// summation order and, for half types, in where the final rounding lands. With inputs and
// upstream gradients in [-1, 1), a K-term dot product has magnitude ~ sqrt(K) / 3, so the
// absolute tolerance grows with sqrt(K):
//  - f32: no TF32 (which would err by ~5e-4 |y|), so only order effects ~ 2^-24 sqrt(K) |y|
//    remain: atol = 1e-5 sqrt(K), rtol = 1e-5. TF32 would fail this at K >= 257.
//  - bf16: the f32 sums may round to neighbouring bf16 values (1 ulp = 2^-7 relative), and
//    cuBLAS may reduce split-K partials in bf16: atol = 2^-7 sqrt(K), rtol = 2^-6, a few ulps
//    at the typical magnitude. An indexing error would be off by ~|y| and still fail.
//  - f16: likewise with 2^-10 for 2^-7 (rtol 2^-9).
//  - f64: 1e-12 sqrt(K), 1e-12.
// K is the length of the sum behind each compared value: K (+ 1 for the bias) for the output,
// N for dA, M times the summed batch entries for dB; for linear, out_features for dx and the
// flattened row count for dw and the bias gradient. One row has one backward tolerance for
// all its gradients, so it takes the longest of their sums: conservative for the shorter
// ones, but an indexing error (~sqrt(K_short) / 3) still stands far above it while
// K_long / K_short stays below a few hundred, as it does in every row here.
#include <algorithm>
#include <cmath>
#include <string>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

Tol gemm_tol(DType dt, int64_t k) {
  const double r = std::sqrt(static_cast<double>(std::max<int64_t>(k, 1)));
  switch (dt) {
    case DType::F64: return {1e-12 * r, 1e-12, 0};
    case DType::BF16: return {r / 128, 1.0 / 64, 0};
    case DType::F16: return {r / 1024, 1.0 / 512, 0};
    default: return {1e-5 * r, 1e-5, 0};
  }
}

// The f64 gradient check costs two forward passes per input element; a product is linear in
// each operand, so rows whose outputs are large (a [385, 3] @ [3, 257]) add run time but no
// coverage over the smaller shapes of the same layouts, and skip it.
constexpr int64_t kGradcheckMaxOutput = 20000;

Shape with_matrix(Shape batch, int64_t rows, int64_t cols) {
  batch.push_back(rows);
  batch.push_back(cols);
  return batch;
}

struct MatmulSpec {
  Shape ba, bb;  // batch dims of a and b
  int64_t m, k, n;
  DType dt = DType::F32;
  View va = View::Contiguous, vb = View::Contiguous;
  int64_t a_sum = 1, b_sum = 1;  // batch entries summed into dA / dB (where it broadcast)
};

OpCase matmul_row(const MatmulSpec& s) {
  OpCase c;
  c.name = "matmul";
  c.inputs = {in(with_matrix(s.ba, s.m, s.k), s.dt, -1, 1, s.va),
              in(with_matrix(s.bb, s.k, s.n), s.dt, -1, 1, s.vb)};
  c.fn = [](const std::vector<Tensor>& a) { return std::vector<Tensor>{matmul(a[0], a[1])}; };
  c.fwd = gemm_tol(s.dt, s.k);
  c.bwd = gemm_tol(s.dt, std::max(s.n * s.a_sum, s.m * s.b_sum));
  c.gradcheck = s.m * s.n <= kGradcheckMaxOutput;
  return c;
}

struct LinearSpec {
  Shape x;  // [..., in]
  int64_t out;
  bool bias = true;
  DType dt = DType::F32;
  View vx = View::Contiguous, vw = View::Contiguous, vb = View::Contiguous;
};

int64_t rows_of(const Shape& x) {
  int64_t r = 1;
  for (size_t d = 0; d + 1 < x.size(); ++d) r *= x[d];
  return r;
}

OpCase linear_row(const LinearSpec& s) {
  OpCase c;
  c.name = s.bias ? "linear_bias" : "linear";
  const int64_t in_f = s.x.back();
  c.inputs = {in(s.x, s.dt, -1, 1, s.vx), in({s.out, in_f}, s.dt, -1, 1, s.vw)};
  if (s.bias) c.inputs.push_back(in({s.out}, s.dt, -1, 1, s.vb));
  c.fn = [](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{a.size() == 3 ? linear(a[0], a[1], a[2]) : linear(a[0], a[1])};
  };
  // The bias adds one term of the same size to each output's sum.
  c.fwd = gemm_tol(s.dt, in_f + (s.bias ? 1 : 0));
  c.bwd = gemm_tol(s.dt, std::max(s.out, rows_of(s.x)));
  c.gradcheck = rows_of(s.x) * s.out <= kGradcheckMaxOutput;
  return c;
}

}  // namespace

VIMOE_OP_CASES(linalg) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c) {
    rows.push_back(std::move(c));
  };
  const int64_t sizes[] = {1, 3, 17, 257, 385};
  const DType f32 = DType::F32, bf16 = DType::BF16;

  // ---- matmul, 2-D, every odd size in every dimension ----------------------------------------
  // Each (M, K, N) gets one of the four layouts in rotation (the same one in both dtypes, so
  // the f64 gradient check sees each shape once); all four appear for every size.
  for (DType dt : {f32, bf16}) {
    int layout = 0;
    for (int64_t m : sizes)
      for (int64_t k : sizes)
        for (int64_t n : sizes) {
          MatmulSpec s{{}, {}, m, k, n, dt};
          s.va = (layout & 1) ? View::Transposed : View::Contiguous;
          s.vb = (layout & 2) ? View::Transposed : View::Contiguous;
          layout = (layout + 1) % 4;
          add(matmul_row(s));
        }
  }

  // ---- matmul, batched and broadcast ---------------------------------------------------------
  const MatmulSpec batched[] = {
      {{3}, {3}, 257, 3, 385},
      {{3}, {3}, 3, 385, 257, f32, View::Transposed, View::Transposed},
      // [2, 1] against [3]: a host loop over 2, batch stride 0 for a.
      {{2, 1}, {3}, 257, 385, 3, f32, View::Contiguous, View::Transposed, 3, 2},
      {{2, 1}, {3}, 1, 257, 385, f32, View::Transposed, View::Contiguous, 3, 2},
      // A shared b: one tall GEMM over all of a's rows.
      {{4}, {}, 257, 385, 3, f32, View::Contiguous, View::Contiguous, 1, 4},
      {{4}, {}, 3, 257, 385, f32, View::Contiguous, View::Transposed, 1, 4},
      // A shared a: batch stride 0.
      {{}, {4}, 385, 3, 257, f32, View::Transposed, View::Contiguous, 4, 1},
      {{2, 3}, {2, 3}, 3, 257, 1},
      {{5, 1, 2}, {1, 3, 1}, 17, 17, 17, f32, View::Contiguous, View::Contiguous, 3, 10},
  };
  for (DType dt : {f32, bf16})
    for (MatmulSpec s : batched) {
      s.dt = dt;
      add(matmul_row(s));
    }
  // A broadcast (stride-0) batch dim of a stored once: its gradient sums the 4 entries.
  {
    MatmulSpec s{{4}, {4}, 17, 257, 3, f32, View::Broadcast, View::Contiguous, 4, 1};
    add(matmul_row(s));
  }

  // ---- matmul, the other dtypes, misaligned, 1-D and sliced operands ---------------------------
  for (DType dt : {DType::F64, DType::F16}) {
    add(matmul_row({{2}, {}, 257, 3, 385, dt, View::Transposed, View::Contiguous, 1, 2}));
    add(matmul_row({{}, {}, 17, 385, 257, dt}));
  }
  for (DType dt : {f32, bf16}) {
    add(matmul_row({{}, {}, 257, 385, 17, dt, View::Misaligned, View::Contiguous}));
    add(matmul_row({{}, {}, 17, 257, 385, dt, View::Contiguous, View::Misaligned}));
  }
  for (DType dt : {f32, bf16}) {
    // [K] @ [2, K, N]: a acts as [1, K]; [M, K] @ [K]; [K] @ [K] gives a 0-d result.
    OpCase v = matmul_row({{}, {2}, 1, 385, 3, dt, View::Contiguous, View::Contiguous, 2, 1});
    v.inputs[0] = in({385}, dt);
    add(std::move(v));
    OpCase mv = matmul_row({{}, {}, 257, 17, 1, dt});
    mv.inputs[1] = in({17}, dt);
    add(std::move(mv));
    OpCase dot = matmul_row({{}, {}, 1, 257, 1, dt});
    dot.inputs = {in({257}, dt), in({257}, dt)};
    add(std::move(dot));
  }
  for (DType dt : {f32, bf16}) {
    // A column slice with a step has no BLAS layout and is copied; a row slice (any row
    // stride) goes in place.
    OpCase c;
    c.name = "matmul_sliced";
    c.inputs = {in({3, 514}, dt), in({257, 300}, dt)};
    c.fn = [](const std::vector<Tensor>& a) {
      return std::vector<Tensor>{matmul(a[0].slice(1, 0, 514, 2), a[1].slice(1, 1, 258))};
    };
    c.fwd = gemm_tol(dt, 257);
    c.bwd = gemm_tol(dt, 257);
    add(std::move(c));
  }

  // ---- linear ----------------------------------------------------------------------------------
  // Rows 1, 17 and 257 (the bias gradient sums them), in_features 3 and 385, out_features 1, 17
  // and 385 (odd output leading dimensions for the epilogue), with and without bias.
  for (DType dt : {f32, bf16})
    for (int64_t r : {1, 17, 257})
      for (int64_t in_f : {3, 385})
        for (int64_t out : {1, 17, 385})
          for (bool bias : {true, false}) add(linear_row({{r, in_f}, out, bias, dt}));
  for (DType dt : {f32, bf16}) {
    // Leading dims flattened: x [2, 3, 257] -> 385 features; a 1-D x.
    add(linear_row({{2, 3, 257}, 385, true, dt}));
    add(linear_row({{17}, 3, true, dt}));
    // Transposed x (column-major rows: the GEMM's A with a transpose flag) and transposed
    // weight storage (w.t() then row-major): the epilogue path under both operand flags.
    add(linear_row({{257, 385}, 17, true, dt, View::Transposed}));
    add(linear_row({{17, 385}, 257, true, dt, View::Contiguous, View::Transposed}));
    add(linear_row({{257, 17}, 385, true, dt, View::Transposed, View::Transposed}));
    // Misaligned x, weight or bias: cuBLASLt declines, cuBLAS with a copied bias takes over.
    add(linear_row({{257, 385}, 17, true, dt, View::Misaligned}));
    add(linear_row({{17, 385}, 257, true, dt, View::Contiguous, View::Misaligned}));
    add(linear_row({{257, 384}, 384, true, dt, View::Contiguous, View::Contiguous,
                    View::Misaligned}));
    // x permuted inside the op: [3, 257, 385] seen as [257, 3, 385] has no row layout, so it
    // is copied first.
    OpCase p = linear_row({{3, 257, 385}, 1, true, dt});
    p.name = "linear_permuted_x";
    p.fn = [](const std::vector<Tensor>& a) {
      return std::vector<Tensor>{linear(a[0].transpose(0, 1), a[1], a[2])};
    };
    add(std::move(p));
  }
  // f16 through the epilogues; f64 through cuBLAS only.
  for (DType dt : {DType::F16, DType::F64}) {
    add(linear_row({{257, 385}, 17, true, dt}));
    add(linear_row({{17, 3}, 385, true, dt}));
  }
  // Under bf16 autocast: f32 x, weight and bias are all lowered, so the bias epilogue sees a
  // bf16 bias for a bf16 output; the gradients come back to the f32 leaves through the casts.
  // The values are bf16 ones: bf16 tolerances.
  for (int64_t r : {17, 257}) {
    OpCase c = linear_row({{r, 385}, 384, true, f32});
    c.name = "linear_bias_autocast_bf16";
    c.fn = [](const std::vector<Tensor>& a) {
      AutocastGuard guard(DType::BF16);
      return std::vector<Tensor>{linear(a[0], a[1], a[2])};
    };
    c.fwd = gemm_tol(bf16, 386);
    c.bwd = gemm_tol(bf16, std::max<int64_t>(384, r));
    add(std::move(c));
  }

  // ---- ViT-S/14 at batch 256 (256 x 257 tokens, width 384) --------------------------------------
  // The block's four linears: qkv [1152, 384], attention projection [384, 384], MLP fc1
  // [1536, 384] and fc2 [384, 1536], all with bias. dw and the bias gradient sum 65792 rows.
  // The CPU reference of these runs on the GPU host's cores; six rows keep it to seconds.
  const int64_t tokens = 256 * 257;
  struct Large {
    int64_t in_f, out;
    DType dt;
  };
  for (const Large& l : {Large{384, 1152, f32}, Large{384, 1152, bf16}, Large{384, 384, bf16},
                         Large{384, 1536, bf16}, Large{1536, 384, f32}, Large{1536, 384, bf16}}) {
    OpCase c = linear_row({{tokens, l.in_f}, l.out, true, l.dt});
    c.large = true;
    add(std::move(c));
  }
  return rows;
}

}  // namespace vimoe::parity
