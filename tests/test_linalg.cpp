// matmul and linear on the CPU reference: values against a naive triple loop written here
// (2-D, batched, broadcast batch, transposed and sliced views, 1-D operands, every floating
// dtype), the operand-layout decisions, finite-difference gradients in f64, and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/cpu/linalg.h"
#include "engine/ops/linalg.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;
using vimoe::testing::uniform;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// a [..., m, k] @ b [..., k, n] in double with numpy batch broadcasting, computed from the
// logical (row-major) values, so it knows nothing of strides or the BLAS. Returns f64.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  const Shape sa = a.shape(), sb = b.shape();
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  const int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
  EXPECT_EQ(k, sb[sb.size() - 2]);
  const size_t nd = std::max(sa.size(), sb.size()) - 2;
  // Batch shapes right-aligned and padded with 1s.
  Shape ba(nd, 1), bb(nd, 1), batch(nd);
  for (size_t i = 0; i < sa.size() - 2; ++i) ba[nd - (sa.size() - 2) + i] = sa[i];
  for (size_t i = 0; i < sb.size() - 2; ++i) bb[nd - (sb.size() - 2) + i] = sb[i];
  int64_t total = 1;
  for (size_t i = 0; i < nd; ++i) {
    batch[i] = std::max(ba[i], bb[i]);
    total *= batch[i];
  }
  std::vector<double> out(static_cast<size_t>(total * m * n), 0.0);
  for (int64_t t = 0; t < total; ++t) {
    // Split t into a batch index, then find the matching entries of a and b.
    int64_t rest = t, ia = 0, ib = 0, stride_a = 1, stride_b = 1;
    for (int64_t d = static_cast<int64_t>(nd) - 1; d >= 0; --d) {
      const int64_t idx = rest % batch[d];
      rest /= batch[d];
      ia += (ba[d] == 1 ? 0 : idx) * stride_a;
      ib += (bb[d] == 1 ? 0 : idx) * stride_b;
      stride_a *= ba[d];
      stride_b *= bb[d];
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p) acc += va[(ia * m + i) * k + p] * vb[(ib * k + p) * n + j];
        out[(t * m + i) * n + j] = acc;
      }
  }
  Shape shape = batch;
  shape.push_back(m);
  shape.push_back(n);
  return Tensor::from_vector(out, shape);
}

// x [..., in] @ w[out, in]^T + bias, naively.
Tensor naive_linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t in = w.size(1), out = w.size(0);
  const Tensor y = naive_matmul(x.reshape({-1, in}), w.t().contiguous());
  std::vector<double> v = y.to_vector<double>();
  if (bias.defined()) {
    const std::vector<double> bv = bias.to_vector<double>();
    for (size_t i = 0; i < v.size(); ++i) v[i] += bv[i % out];
  }
  Shape shape(x.shape().begin(), x.shape().end() - 1);
  shape.push_back(out);
  return Tensor::from_vector(v, shape);
}

}  // namespace

TEST(Linalg, MatmulHandComputed) {
  const Tensor a = Tensor::from_vector<double>({1, 2, 3, 4}, {2, 2});
  const Tensor b = Tensor::from_vector<double>({5, 6, 7, 8}, {2, 2});
  EXPECT_TRUE(all_close(matmul(a, b), Tensor::from_vector<double>({19, 22, 43, 50}, {2, 2}), 0, 0));
  // [2, 3] @ [3, 1] in f32: 2 - 2 + 1.5 and 8 - 5 + 3.
  const Tensor c = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor d = Tensor::from_vector<float>({2, -1, 0.5f}, {3, 1});
  EXPECT_TRUE(all_close(matmul(c, d), Tensor::from_vector<float>({1.5f, 6}, {2, 1}), 0, 0));
}

TEST(Linalg, Matmul2DMatchesNaive) {
  for (DType dt : {DType::F64, DType::F32}) {
    const Tensor a = uniform({5, 7}, 1, -1, 1, dt), b = uniform({7, 3}, 2, -1, 1, dt);
    const Tensor c = matmul(a, b);
    EXPECT_EQ(c.dtype(), dt);
    const double tol = dt == DType::F64 ? 1e-12 : 1e-5;
    EXPECT_TRUE(all_close(c, naive_matmul(a, b), tol, tol)) << dtype_name(dt);
  }
}

TEST(Linalg, MatmulBatched) {
  const Tensor a = uniform({2, 3, 4}, 3, -1, 1, DType::F64),
               b = uniform({2, 4, 5}, 4, -1, 1, DType::F64);
  const Tensor c = matmul(a, b);
  EXPECT_EQ(c.shape(), (Shape{2, 3, 5}));
  EXPECT_TRUE(all_close(c, naive_matmul(a, b), 1e-12, 1e-12));
}

TEST(Linalg, MatmulBroadcastBatch) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 1, 3, 4}, {5, 4, 6}},     // needs a host loop over the leading 2
      {{2, 1, 3, 4}, {1, 5, 4, 6}},  // same, b padded explicitly
      {{3, 4}, {2, 4, 5}},           // a shared by every entry (batch stride 0)
      {{2, 3, 4}, {4, 5}},           // b shared: one tall GEMM
      {{2, 2, 3, 4}, {4, 5}},        // b shared over two batch dims
      {{1, 3, 4}, {2, 1, 4, 2}},     // size-1 batch dims on both sides
  };
  for (const auto& [sa, sb] : cases) {
    const Tensor a = uniform(sa, 5, -1, 1, DType::F64), b = uniform(sb, 6, -1, 1, DType::F64);
    const Tensor c = matmul(a, b);
    EXPECT_TRUE(all_close(c, naive_matmul(a, b), 1e-12, 1e-12))
        << shape_str(sa) << " @ " << shape_str(sb);
  }
  EXPECT_EQ(matmul(uniform({2, 1, 3, 4}, 1), uniform({5, 4, 6}, 2)).shape(), (Shape{2, 5, 3, 6}));
}

TEST(Linalg, MatmulTransposedViews) {
  const Tensor x = uniform({3, 4}, 7, -1, 1, DType::F64), w = uniform({6, 4}, 8, -1, 1, DType::F64);
  EXPECT_TRUE(all_close(matmul(x, w.t()), naive_matmul(x, w.t().contiguous()), 1e-12, 1e-12));
  // Both operands transposed, batched, and a shared transposed right-hand side.
  const Tensor p = uniform({2, 4, 3}, 9, -1, 1, DType::F64),
               q = uniform({2, 5, 4}, 10, -1, 1, DType::F64);
  const Tensor pt = p.transpose(-1, -2), qt = q.transpose(-1, -2);
  EXPECT_TRUE(
      all_close(matmul(pt, qt), naive_matmul(pt.contiguous(), qt.contiguous()), 1e-12, 1e-12));
  const Tensor r = uniform({2, 3, 4}, 11, -1, 1, DType::F64);
  EXPECT_TRUE(all_close(matmul(r, w.t()), naive_matmul(r, w.t().contiguous()), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(matmul(pt, w.t()), naive_matmul(pt.contiguous(), w.t().contiguous()), 1e-12,
                        1e-12));
  // Square transposed entries: their batch stride equals m * ld, yet they cannot be stacked
  // into one tall GEMM.
  const Tensor sq = uniform({2, 4, 4}, 18, -1, 1, DType::F64).transpose(-1, -2);
  EXPECT_TRUE(all_close(matmul(sq, w.t()), naive_matmul(sq.contiguous(), w.t().contiguous()), 1e-12,
                        1e-12));
  // A batch-first permutation: batch strides that are not the matrix size.
  const Tensor s = uniform({3, 2, 4}, 12, -1, 1, DType::F64).permute({1, 0, 2});
  EXPECT_TRUE(all_close(matmul(s, q.transpose(-1, -2)),
                        naive_matmul(s.contiguous(), qt.contiguous()), 1e-12, 1e-12));
}

TEST(Linalg, MatmulSlicedOperands) {
  const Tensor base = uniform({6, 10}, 13, -1, 1, DType::F64);
  const Tensor b = uniform({5, 3}, 14, -1, 1, DType::F64);
  // Rows with a gap (leading dimension 10 > 5 columns): used in place.
  const Tensor rows = base.slice(1, 2, 7);
  EXPECT_TRUE(all_close(matmul(rows, b), naive_matmul(rows.contiguous(), b), 1e-12, 1e-12));
  // Every other column: no BLAS layout, copied.
  const Tensor cols = base.slice(1, 0, 10, 2);
  EXPECT_TRUE(all_close(matmul(cols, b), naive_matmul(cols.contiguous(), b), 1e-12, 1e-12));
  // A column-major view whose columns are 20 apart, and a stepped batch.
  const Tensor tr = base.t().slice(0, 1, 6).slice(1, 0, 6, 2);  // [5, 3], strides (1, 20)
  const Tensor lhs = uniform({4, 5}, 17, -1, 1, DType::F64);
  EXPECT_TRUE(all_close(matmul(lhs, tr), naive_matmul(lhs, tr.contiguous()), 1e-12, 1e-12));
  const Tensor batched = uniform({4, 3, 8}, 15, -1, 1, DType::F64).slice(0, 0, 4, 2).slice(2, 1, 6);
  EXPECT_TRUE(all_close(matmul(batched, b), naive_matmul(batched.contiguous(), b), 1e-12, 1e-12));
  // An expanded (stride 0) matrix dim is copied, not handed to the BLAS.
  const Tensor row = uniform({1, 5}, 16, -1, 1, DType::F64).expand({4, 5});
  EXPECT_TRUE(all_close(matmul(row, b), naive_matmul(row.contiguous(), b), 1e-12, 1e-12));
}

TEST(Linalg, OperandLayouts) {
  using detail::gemm_operand;
  const Tensor m = uniform({3, 4}, 1);
  auto g = gemm_operand(m);
  EXPECT_FALSE(g.copy);
  EXPECT_FALSE(g.transposed);
  EXPECT_EQ(g.ld, 4);
  g = gemm_operand(m.t());  // the transpose is passed as a flag, not copied
  EXPECT_FALSE(g.copy);
  EXPECT_TRUE(g.transposed);
  EXPECT_EQ(g.ld, 4);
  g = gemm_operand(uniform({2, 3, 4}, 2).transpose(-1, -2));
  EXPECT_TRUE(!g.copy && g.transposed && g.ld == 4);
  const Tensor wide = uniform({6, 10}, 3);
  g = gemm_operand(wide.slice(1, 2, 7));
  EXPECT_TRUE(!g.copy && !g.transposed && g.ld == 10);
  g = gemm_operand(wide.slice(1, 2, 7).t());
  EXPECT_TRUE(!g.copy && g.transposed && g.ld == 10);
  EXPECT_TRUE(gemm_operand(wide.slice(1, 0, 10, 2)).copy);
  EXPECT_TRUE(gemm_operand(uniform({1, 5}, 4).expand({4, 5})).copy);
  EXPECT_TRUE(gemm_operand(uniform({4, 1}, 4).expand({4, 5})).copy);
  // A single strided row or column needs no copy either way round.
  g = gemm_operand(wide.slice(1, 3, 4));  // [6, 1], row stride 10
  EXPECT_TRUE(!g.copy && !g.transposed && g.ld == 10);
  g = gemm_operand(wide.t().slice(0, 3, 4));  // [1, 6], column stride 10
  EXPECT_TRUE(!g.copy && g.transposed && g.ld == 10);
  // Broadcast batch dims do not matter, only the matrix dims.
  g = gemm_operand(m.expand({5, 3, 4}));
  EXPECT_TRUE(!g.copy && !g.transposed && g.ld == 4);
}

// Inputs are rounded to the dtype first and the naive product uses those rounded values,
// so the only errors are the f32 accumulation (~K * 2^-24 * sum|a||b|, covered by atol)
// and, for bf16 / f16, the one final rounding: at most half an ulp, i.e. 2^-8 (bf16) or
// 2^-11 (f16) relative, covered by rtol.
TEST(Linalg, MatmulDtypes) {
  struct Case {
    DType dt;
    double atol, rtol;
  };
  for (const Case& c : {Case{DType::F64, 1e-12, 1e-12}, Case{DType::F32, 1e-5, 1e-5},
                        Case{DType::BF16, 1e-4, 1.0 / 256}, Case{DType::F16, 1e-4, 1.0 / 2048}}) {
    const Tensor a = uniform({2, 1, 3, 16}, 21, -1, 1, c.dt),
                 b = uniform({5, 16, 6}, 22, -1, 1, c.dt);
    const Tensor out = matmul(a, b);
    EXPECT_EQ(out.dtype(), c.dt);
    EXPECT_TRUE(all_close(out, naive_matmul(a, b), c.atol, c.rtol)) << dtype_name(c.dt);
    const Tensor bt = uniform({6, 16}, 23, -1, 1, c.dt).t();
    EXPECT_TRUE(all_close(matmul(a, bt), naive_matmul(a, bt.contiguous()), c.atol, c.rtol))
        << dtype_name(c.dt);
  }
}

TEST(Linalg, MatmulVectors) {
  const Tensor v = Tensor::from_vector<double>({1, 2, 3}, {3});
  const Tensor m = Tensor::from_vector<double>({1, 0, 2, 1, 0, -1}, {3, 2});
  // [3] @ [3, 2] -> [2]: (1 + 4 + 0, 0 + 2 - 3)
  EXPECT_TRUE(all_close(matmul(v, m), Tensor::from_vector<double>({5, -1}, {2}), 0, 0));
  // [2, 3] @ [3] -> [2]
  EXPECT_TRUE(all_close(matmul(m.t(), v), Tensor::from_vector<double>({5, -1}, {2}), 0, 0));
  // [3] @ [3] -> 0-d: 1 + 4 + 9
  const Tensor dot = matmul(v, v);
  EXPECT_EQ(dot.dim(), 0);
  EXPECT_EQ(dot.item<double>(), 14.0);
  // Batched matrix @ vector, vector @ batched matrix.
  const Tensor bm = uniform({2, 4, 3}, 31, -1, 1, DType::F64);
  EXPECT_TRUE(all_close(matmul(bm, v), naive_matmul(bm, v.unsqueeze(1)).squeeze(-1), 1e-12, 1e-12));
  const Tensor bn = uniform({2, 3, 4}, 32, -1, 1, DType::F64);
  EXPECT_TRUE(all_close(matmul(v, bn), naive_matmul(v.unsqueeze(0), bn).squeeze(-2), 1e-12, 1e-12));
  EXPECT_EQ(matmul(v, bn).shape(), (Shape{2, 4}));
}

TEST(Linalg, MatmulEmpty) {
  // K == 0: an empty sum is zero, whatever the output buffer held.
  const Tensor z = matmul(Tensor::ones({2, 0}), Tensor::ones({0, 3}));
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_TRUE(all_close(z, Tensor::zeros({2, 3}), 0, 0));
  EXPECT_EQ(matmul(Tensor::ones({0, 3}), Tensor::ones({3, 2})).shape(), (Shape{0, 2}));
  EXPECT_EQ(matmul(Tensor::ones({0, 2, 3}), Tensor::ones({3, 4})).shape(), (Shape{0, 2, 4}));
  const Tensor lb = linear(Tensor::ones({2, 0}), Tensor::ones({3, 0}),
                           Tensor::from_vector<float>({1, 2, 3}, {3}));
  EXPECT_TRUE(all_close(lb, Tensor::from_vector<float>({1, 2, 3, 1, 2, 3}, {2, 3}), 0, 0));
}

TEST(Linalg, MatmulBadInputs) {
  EXPECT_VIMOE_ERROR(matmul(Tensor::ones({2, 3}), Tensor::ones({4, 5})),
                     "matmul: inner dimensions differ: a is [2, 3], b is [4, 5]");
  EXPECT_VIMOE_ERROR(matmul(Tensor::ones({3}), Tensor::ones({4})), "matmul: inner dimensions",
                     "[3]", "[4]");
  EXPECT_VIMOE_ERROR(matmul(Tensor::ones({2, 3, 4}), Tensor::ones({3, 4, 5})),
                     "matmul: batch dimensions do not broadcast", "[2, 3, 4]", "[3, 4, 5]");
  EXPECT_VIMOE_ERROR(matmul(Tensor::ones({2, 3}), Tensor::ones({3, 4}, DType::F64)),
                     "matmul: dtypes differ", "[2, 3] f32", "[3, 4] f64");
  EXPECT_VIMOE_ERROR(matmul(Tensor::ones({2, 3}, DType::I32), Tensor::ones({3, 4}, DType::I32)),
                     "matmul", "floating", "[2, 3] i32");
  EXPECT_VIMOE_ERROR(matmul(Tensor::scalar(2), Tensor::ones({3, 4})), "matmul",
                     "at least one dimension", "[]", "[3, 4]");
  EXPECT_VIMOE_ERROR(matmul(Tensor(), Tensor::ones({3, 4})), "matmul", "undefined");
  // The reference backend refuses integers on its own too.
  std::vector<int32_t> ia(4, 1), ic(4, 0);
  EXPECT_VIMOE_ERROR(cpu::gemm(DType::I32, false, false, 2, 2, 2, 1.0, ia.data(), 2, 0, ia.data(),
                               2, 0, 0.0, ic.data(), 2, 0, 1),
                     "gemm", "i32");
}

// The reference GEMM with alpha, beta, transposes and a shared (stride 0) operand, which
// the op front-ends use only partly.
TEST(Linalg, CpuGemmAlphaBetaStrides) {
  for (DType dt : {DType::F64, DType::F32, DType::BF16}) {
    // Two entries of op(A) [2, 3] = A^T with A stored [3, 2]; B [3, 2] shared.
    const Tensor a =
        Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 0, 1, 1, 0, 2, 2}, {2, 3, 2}).to(dt);
    const Tensor b = Tensor::from_vector<double>({1, 0, 0, 1, 1, 1}, {3, 2}).to(dt);
    const Tensor c = Tensor::from_vector<double>({1, 1, 1, 1, 2, 2, 2, 2}, {2, 2, 2}).to(dt);
    cpu::gemm(dt, true, false, 2, 2, 3, 2.0, a.data_ptr(), 2, 6, b.data_ptr(), 2, 0, 0.5,
              c.data_ptr(), 2, 4, 2);
    // Entry 0: A^T = [[1, 3, 5], [2, 4, 6]] -> A^T B = [[6, 8], [8, 10]]; 2x + 0.5.
    // Entry 1: A^T = [[0, 1, 2], [1, 0, 2]] -> [[2, 3], [3, 2]]; 2x + 1.
    EXPECT_TRUE(all_close(
        c, Tensor::from_vector<double>({12.5, 16.5, 16.5, 20.5, 5, 7, 7, 5}, {2, 2, 2}), 0, 0))
        << dtype_name(dt);
  }
}

TEST(Linalg, MatmulGradPlain) {
  const Tensor a = leaf64({3, 4}, 41), b = leaf64({4, 2}, 42);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b}));
}

TEST(Linalg, MatmulGradTransposed) {
  const Tensor a = leaf64({4, 3}, 43), b = leaf64({2, 4}, 44);
  EXPECT_TRUE(
      grad_ok([](const std::vector<Tensor>& in) { return matmul(in[0].t(), in[1].t()); }, {a, b}));
  const Tensor p = leaf64({2, 3, 2}, 45), q = leaf64({2, 3, 4}, 46);
  EXPECT_TRUE(
      grad_ok([](const std::vector<Tensor>& in) { return matmul(in[0].transpose(-1, -2), in[1]); },
              {p, q}));
}

TEST(Linalg, MatmulGradBroadcastBatch) {
  const Tensor a = leaf64({2, 1, 2, 3}, 47), b = leaf64({3, 3, 2}, 48);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b}));
  // A shared right-hand side (its gradient is one GEMM over all rows), and a shared left one.
  const Tensor x = leaf64({2, 3, 4}, 49), w = leaf64({4, 2}, 50);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {x, w}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return matmul(in[1].t(), in[0]); },
                      {leaf64({2, 4, 3}, 51), leaf64({4, 2}, 52)}));
  // A shared right-hand side seen through a permuted (non-flattenable) left operand.
  EXPECT_TRUE(grad_ok(
      [](const std::vector<Tensor>& in) {
        return matmul(in[0].permute({1, 0, 2}), in[1]);
      },
      {leaf64({3, 2, 4}, 53), leaf64({4, 2}, 54)}));
}

TEST(Linalg, MatmulGradVectorsAndSlices) {
  const Fn mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  EXPECT_TRUE(grad_ok(mm, {leaf64({3}, 55), leaf64({3, 2}, 56)}));
  EXPECT_TRUE(grad_ok(mm, {leaf64({2, 3}, 57), leaf64({3}, 58)}));
  EXPECT_TRUE(grad_ok(mm, {leaf64({3}, 59), leaf64({3}, 60)}));
  EXPECT_TRUE(grad_ok(mm, {leaf64({2, 2, 3}, 61), leaf64({3}, 62)}));
  EXPECT_TRUE(grad_ok(
      [](const std::vector<Tensor>& in) {
        return matmul(in[0].slice(1, 0, 6, 2), in[1].slice(0, 1, 4));
      },
      {leaf64({2, 6}, 63), leaf64({5, 2}, 64)}));
}

TEST(Linalg, LinearMatchesNaive) {
  const Tensor x = uniform({2, 3, 4}, 71, -1, 1, DType::F64);
  const Tensor w = uniform({5, 4}, 72, -1, 1, DType::F64), b = uniform({5}, 73, -1, 1, DType::F64);
  Tensor y = linear(x, w, b);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 5}));
  EXPECT_TRUE(all_close(y, naive_linear(x, w, b), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(linear(x, w), naive_linear(x, w, {}), 1e-12, 1e-12));
  // 1-D x, a transposed x (copied when it cannot be flattened), and a weight that is itself
  // a transposed view of an [in, out] matrix.
  const Tensor v = uniform({4}, 74, -1, 1, DType::F64);
  EXPECT_EQ(linear(v, w, b).shape(), (Shape{5}));
  EXPECT_TRUE(all_close(linear(v, w, b), naive_linear(v, w, b), 1e-12, 1e-12));
  const Tensor xt = uniform({3, 2, 4}, 75, -1, 1, DType::F64).transpose(0, 1);
  EXPECT_TRUE(all_close(linear(xt, w, b), naive_linear(xt.contiguous(), w, b), 1e-12, 1e-12));
  const Tensor wt = uniform({4, 5}, 76, -1, 1, DType::F64).t();
  EXPECT_TRUE(all_close(linear(x, wt, b), naive_linear(x, wt.contiguous(), b), 1e-12, 1e-12));
  // bf16: the bias is added in f32 before the single rounding (see MatmulDtypes).
  const Tensor xb = x.to(DType::BF16), wb = w.to(DType::BF16), bb = b.to(DType::BF16);
  y = linear(xb, wb, bb);
  EXPECT_EQ(y.dtype(), DType::BF16);
  EXPECT_TRUE(all_close(y, naive_linear(xb, wb, bb), 1e-4, 1.0 / 256));
}

TEST(Linalg, LinearGrad) {
  const Fn with_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  const Fn no_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
  EXPECT_TRUE(grad_ok(with_bias, {leaf64({2, 3, 4}, 81), leaf64({2, 4}, 82), leaf64({2}, 83)}));
  EXPECT_TRUE(grad_ok(no_bias, {leaf64({2, 3, 4}, 84), leaf64({3, 4}, 85)}));
  EXPECT_TRUE(grad_ok(with_bias, {leaf64({4}, 86), leaf64({3, 4}, 87), leaf64({3}, 88)}));
  // A permuted x and a transposed weight view.
  EXPECT_TRUE(grad_ok(
      [](const std::vector<Tensor>& in) { return linear(in[0].transpose(0, 1), in[1].t(), in[2]); },
      {leaf64({3, 2, 4}, 89), leaf64({4, 2}, 90), leaf64({2}, 91)}));
  // Only some inputs need gradients.
  const Tensor w = leaf64({2, 3}, 92);
  const Tensor x = uniform({4, 3}, 93, -1, 1, DType::F64);
  const Tensor b = uniform({2}, 94, -1, 1, DType::F64);
  sum(linear(x, w, b)).backward();
  // d/dw sum(x w^T + b) = column sums of x, repeated for each output.
  const Tensor xs = sum(x, {0});
  EXPECT_TRUE(all_close(w.grad(), xs.unsqueeze(0).expand({2, 3}).contiguous(), 1e-12, 1e-12));
}

TEST(Linalg, LinearBadInputs) {
  EXPECT_VIMOE_ERROR(linear(Tensor::ones({2, 3}), Tensor::ones({4, 5})),
                     "linear: in_features differ: x is [2, 3], weight is [4, 5]");
  EXPECT_VIMOE_ERROR(linear(Tensor::ones({2, 3}), Tensor::ones({3})), "linear", "weight", "2-D",
                     "[3]");
  EXPECT_VIMOE_ERROR(linear(Tensor::ones({2, 3}), Tensor::ones({4, 3}), Tensor::ones({5})),
                     "linear: bias must be [4]", "[4, 3]", "[5]");
  EXPECT_VIMOE_ERROR(linear(Tensor::ones({2, 3}), Tensor::ones({4, 3}), Tensor::ones({1, 4})),
                     "linear: bias", "[1, 4]");
  EXPECT_VIMOE_ERROR(linear(Tensor::ones({2, 3}), Tensor::ones({4, 3}, DType::BF16)),
                     "linear: dtypes differ", "[2, 3] f32", "[4, 3] bf16");
  EXPECT_VIMOE_ERROR(
      linear(Tensor::ones({2, 3}), Tensor::ones({4, 3}), Tensor::ones({4}, DType::F64)),
      "linear: dtypes differ", "bias", "[4] f64");
  EXPECT_VIMOE_ERROR(linear(Tensor::ones({2, 3}, DType::I64), Tensor::ones({4, 3}, DType::I64)),
                     "linear", "floating", "[2, 3] i64");
  EXPECT_VIMOE_ERROR(linear(Tensor::scalar(1), Tensor::ones({4, 3})), "linear", "x", "[]");
}
