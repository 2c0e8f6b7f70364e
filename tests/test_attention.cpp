// Fused attention on the CPU: values against an explicit softmax matrix built here, the
// log-sum-exp, gradients by finite differences, numerical stability and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/ops/attention.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;
using vimoe::testing::uniform;

namespace {

// The textbook computation, independent of the engine's: for every (batch, head) build the
// full S x S probability matrix P = softmax(scale Q K^T) row by row, then O = P V and
// dO-driven gradients by the matrix formulas.
struct Naive {
  int64_t bh, s, d;
  std::vector<double> Q, K, V;
  std::vector<double> P;    // [bh, s, s]
  std::vector<double> out;  // [bh, s, d]
  std::vector<double> lse;  // [bh, s]

  Naive(const Tensor& q, const Tensor& k, const Tensor& v, double scale)
      : bh(q.size(0) * q.size(1)), s(q.size(2)), d(q.size(3)), Q(q.to_vector<double>()),
        K(k.to_vector<double>()), V(v.to_vector<double>()), P(bh * s * s), out(bh * s * d, 0.0),
        lse(bh * s) {
    for (int64_t b = 0; b < bh; ++b)
      for (int64_t i = 0; i < s; ++i) {
        double* row = &P[(b * s + i) * s];
        for (int64_t j = 0; j < s; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < d; ++c) acc += Q[(b * s + i) * d + c] * K[(b * s + j) * d + c];
          row[j] = scale * acc;
        }
        const double mx = *std::max_element(row, row + s);
        double sum = 0;
        for (int64_t j = 0; j < s; ++j) sum += std::exp(row[j] - mx);
        lse[b * s + i] = mx + std::log(sum);
        for (int64_t j = 0; j < s; ++j) row[j] = std::exp(row[j] - mx) / sum;
        for (int64_t j = 0; j < s; ++j)
          for (int64_t c = 0; c < d; ++c) out[(b * s + i) * d + c] += row[j] * V[(b * s + j) * d + c];
      }
  }

  // dV = P^T dO; dP = dO V^T; dS = P * (dP - rowsum(P * dP)); dQ = scale dS K; dK = scale dS^T Q.
  // With `saved_out`, rowsum(P * dP) is taken as rowsum(dO * saved_out) instead, as a
  // backward that reads a rounded saved output does.
  void grads(const Tensor& dout, double scale, std::vector<double>& dq, std::vector<double>& dk,
             std::vector<double>& dv, const Tensor& saved_out = {}) const {
    const std::vector<double> G = dout.to_vector<double>();
    const std::vector<double> O = saved_out.defined() ? saved_out.to_vector<double>() : out;
    dq.assign(bh * s * d, 0.0);
    dk.assign(bh * s * d, 0.0);
    dv.assign(bh * s * d, 0.0);
    for (int64_t b = 0; b < bh; ++b) {
      std::vector<double> dP(s * s), dS(s * s);
      for (int64_t i = 0; i < s; ++i)
        for (int64_t j = 0; j < s; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < d; ++c) acc += G[(b * s + i) * d + c] * V[(b * s + j) * d + c];
          dP[i * s + j] = acc;
        }
      for (int64_t i = 0; i < s; ++i) {
        double rowdot = 0;
        if (saved_out.defined()) {
          for (int64_t c = 0; c < d; ++c) rowdot += G[(b * s + i) * d + c] * O[(b * s + i) * d + c];
        } else {
          for (int64_t j = 0; j < s; ++j) rowdot += P[(b * s + i) * s + j] * dP[i * s + j];
        }
        for (int64_t j = 0; j < s; ++j)
          dS[i * s + j] = P[(b * s + i) * s + j] * (dP[i * s + j] - rowdot);
      }
      for (int64_t i = 0; i < s; ++i)
        for (int64_t j = 0; j < s; ++j)
          for (int64_t c = 0; c < d; ++c) {
            dv[(b * s + j) * d + c] += P[(b * s + i) * s + j] * G[(b * s + i) * d + c];
            dq[(b * s + i) * d + c] += scale * dS[i * s + j] * K[(b * s + j) * d + c];
            dk[(b * s + j) * d + c] += scale * dS[i * s + j] * Q[(b * s + i) * d + c];
          }
    }
  }
};

Tensor as_tensor(const std::vector<double>& v, const Shape& shape) {
  return Tensor::from_vector(v, shape);
}

}  // namespace

TEST(Attention, MatchesExplicitSoftmax) {
  const std::vector<Shape> shapes{{2, 3, 1, 3}, {1, 2, 17, 8}, {2, 2, 5, 3}, {1, 1, 17, 3}};
  uint64_t seed = 1;
  for (const Shape& shape : shapes)
    for (DType dt : {DType::F64, DType::F32}) {
      const Tensor q = uniform(shape, seed++, -2, 2, dt), k = uniform(shape, seed++, -2, 2, dt),
                   v = uniform(shape, seed++, -1, 1, dt);
      const double scale = 0.7;
      const AttentionOutput r = attention_with_lse(q, k, v, scale);
      const Naive n(q, k, v, scale);
      // f64: same math in another order; f32: one rounding of the stored result.
      const double tol = dt == DType::F64 ? 1e-12 : 2e-6;
      ASSERT_EQ(r.out.shape(), shape);
      ASSERT_EQ(r.out.dtype(), dt);
      EXPECT_TRUE(all_close(r.out, as_tensor(n.out, shape), tol, tol)) << shape_str(shape);
      EXPECT_TRUE(all_close(r.lse, as_tensor(n.lse, {shape[0], shape[1], shape[2]}), tol, tol))
          << shape_str(shape);
    }
}

TEST(Attention, SingleKeyReturnsItsValue) {
  // With one key the softmax is exactly 1: out = v, lse = scale * q . k.
  const Tensor q = Tensor::from_vector<double>({1, 2, 3}, {1, 1, 1, 3});
  const Tensor k = Tensor::from_vector<double>({0.5, -1, 2}, {1, 1, 1, 3});
  const Tensor v = Tensor::from_vector<double>({7, -8, 9}, {1, 1, 1, 3});
  const AttentionOutput r = attention_with_lse(q, k, v, 0.5);
  EXPECT_EQ(r.out.to_vector<double>(), (std::vector<double>{7, -8, 9}));
  EXPECT_DOUBLE_EQ(r.lse.item<double>(), 0.5 * (0.5 - 2 + 6));
}

TEST(Attention, HandComputedTwoKeys) {
  // q . k0 = 0 and q . k1 = log 3 with scale 1: P = [1/4, 3/4], lse = log 4.
  const double l3 = std::log(3.0);
  const Tensor q = Tensor::from_vector<double>({1, 0, 0, 0}, {1, 1, 2, 2});
  const Tensor k = Tensor::from_vector<double>({0, 5, l3, 5}, {1, 1, 2, 2});
  const Tensor v = Tensor::from_vector<double>({4, 0, 0, 8}, {1, 1, 2, 2});
  const AttentionOutput r = attention_with_lse(q, k, v, 1.0);
  // Row 0: 1/4 [4, 0] + 3/4 [0, 8] = [1, 6]. Row 1 (q = 0): uniform, [2, 4].
  EXPECT_TRUE(all_close(r.out, Tensor::from_vector<double>({1, 6, 2, 4}, {1, 1, 2, 2}), 1e-14, 0));
  EXPECT_TRUE(all_close(r.lse, Tensor::from_vector<double>({std::log(4.0), std::log(2.0)}, {1, 1, 2}),
                        1e-14, 0));
}

TEST(Attention, DefaultScaleIsInverseSqrtHeadDim) {
  const Shape shape{1, 2, 5, 8};
  const Tensor q = uniform(shape, 11, -2, 2, DType::F64), k = uniform(shape, 12, -2, 2, DType::F64),
               v = uniform(shape, 13, -1, 1, DType::F64);
  const Naive n(q, k, v, 1.0 / std::sqrt(8.0));
  EXPECT_TRUE(all_close(attention(q, k, v), as_tensor(n.out, shape), 1e-12, 1e-12));
}

TEST(Attention, BackwardMatchesMatrixFormulas) {
  for (const Shape& shape : std::vector<Shape>{{1, 2, 17, 8}, {2, 1, 1, 3}, {1, 1, 6, 3}}) {
    const Tensor q = uniform(shape, 21, -2, 2, DType::F64), k = uniform(shape, 22, -2, 2, DType::F64),
                 v = uniform(shape, 23, -1, 1, DType::F64), g = uniform(shape, 24, -1, 1, DType::F64);
    const double scale = 0.6;
    const AttentionOutput r = attention_with_lse(q, k, v, scale);
    const AttentionGrads gr = attention_backward(q, k, v, r.out, r.lse, g, scale);
    std::vector<double> dq, dk, dv;
    Naive(q, k, v, scale).grads(g, scale, dq, dk, dv);
    EXPECT_TRUE(all_close(gr.dq, as_tensor(dq, shape), 1e-12, 1e-10)) << shape_str(shape);
    EXPECT_TRUE(all_close(gr.dk, as_tensor(dk, shape), 1e-12, 1e-10)) << shape_str(shape);
    EXPECT_TRUE(all_close(gr.dv, as_tensor(dv, shape), 1e-12, 1e-10)) << shape_str(shape);
  }
}

TEST(Attention, GradcheckQKV) {
  const Tensor q = leaf64({1, 2, 3, 4}, 31, -2, 2), k = leaf64({1, 2, 3, 4}, 32, -2, 2),
               v = leaf64({1, 2, 3, 4}, 33);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& x) { return attention(x[0], x[1], x[2], 0.8); },
                      {q, k, v}));
  // One query row: the softmax is over a single key, dq and dk are exactly zero.
  const Tensor q1 = leaf64({2, 1, 1, 3}, 34), k1 = leaf64({2, 1, 1, 3}, 35), v1 = leaf64({2, 1, 1, 3}, 36);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& x) { return attention(x[0], x[1], x[2]); },
                      {q1, k1, v1}));
}

// The composed path (CUDA's fallback for head dims the fused kernels lack) computes the same
// function: forward against the fused reference, gradients by finite differences.
TEST(Attention, ComposedPathMatchesTheFusedOne) {
  const Tensor q = uniform({2, 3, 5, 7}, 41, -2, 2), k = uniform({2, 3, 5, 7}, 42, -2, 2),
               v = uniform({2, 3, 5, 7}, 43);
  EXPECT_TRUE(all_close(attention_composed(q, k, v, 0.4), attention(q, k, v, 0.4), 1e-6, 1e-5));
  const Tensor q64 = leaf64({1, 2, 3, 5}, 44, -2, 2), k64 = leaf64({1, 2, 3, 5}, 45, -2, 2),
               v64 = leaf64({1, 2, 3, 5}, 46);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& x) { return attention_composed(x[0], x[1], x[2], 0.7); },
                      {q64, k64, v64}));
  EXPECT_VIMOE_ERROR(attention_composed(q, k, v.narrow(3, 0, 6), 0.4), "attention", "one shape");
}

TEST(Attention, GradcheckPermutedInputs) {
  // The usual ViT layout: projections come out [B, S, H, Dh] and are viewed as [B, H, S, Dh].
  const Shape bshd{2, 3, 2, 3};
  const Tensor q = leaf64(bshd, 41, -2, 2), k = leaf64(bshd, 42, -2, 2), v = leaf64(bshd, 43);
  EXPECT_TRUE(grad_ok(
      [](const std::vector<Tensor>& x) {
        return attention(x[0].permute({0, 2, 1, 3}), x[1].permute({0, 2, 1, 3}),
                         x[2].permute({0, 2, 1, 3}));
      },
      {q, k, v}));
  // The forward on the views equals the forward on contiguous copies.
  NoGradGuard no_grad;
  const Tensor qp = q.permute({0, 2, 1, 3}), kp = k.permute({0, 2, 1, 3}), vp = v.permute({0, 2, 1, 3});
  ASSERT_FALSE(qp.is_contiguous());
  EXPECT_TRUE(all_close(attention(qp, kp, vp),
                        attention(qp.contiguous(), kp.contiguous(), vp.contiguous()), 0, 0));
}

TEST(Attention, LargeLogitsStayFinite) {
  // Scores of order +-1000 overflow a naive exp() in any precision; the max-subtracted
  // softmax must stay finite and pick the winning key.
  const Shape shape{1, 2, 9, 8};
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor q = uniform(shape, 51, -40, 40, dt).detach(), k = uniform(shape, 52, -40, 40, dt).detach();
    const Tensor v = uniform(shape, 53, -1, 1, dt);
    q.set_requires_grad(true);
    k.set_requires_grad(true);
    const double scale = 1.0 / std::sqrt(8.0);
    const Naive n(q, k, v, scale);
    const double biggest = *std::max_element(n.lse.begin(), n.lse.end());
    ASSERT_GT(biggest, 500.0) << "the test needs scores of order 1000";
    const AttentionOutput r = attention_with_lse(q, k, v, scale);
    for (double x : r.out.to_vector<double>()) EXPECT_TRUE(std::isfinite(x));
    // The reference computes in double for f32 inputs too: one rounding of the result.
    const double tol = dt == DType::F64 ? 1e-12 : 1e-6;
    EXPECT_TRUE(all_close(r.out, as_tensor(n.out, shape), tol, tol));
    EXPECT_TRUE(all_close(r.lse, as_tensor(n.lse, {1, 2, 9}), tol, tol));
    sum(r.out * uniform(shape, 54, -1, 1, dt)).backward();
    for (const Tensor& g : {q.grad(), k.grad()})
      for (double x : g.to_vector<double>()) EXPECT_TRUE(std::isfinite(x));
  }
}

TEST(Attention, Bf16ComputesInHigherPrecision) {
  const Shape shape{1, 2, 17, 8};
  const Tensor q = uniform(shape, 61, -2, 2, DType::BF16), k = uniform(shape, 62, -2, 2, DType::BF16),
               v = uniform(shape, 63, -1, 1, DType::BF16);
  const AttentionOutput r = attention_with_lse(q, k, v, 0.5);
  EXPECT_EQ(r.out.dtype(), DType::BF16);
  EXPECT_EQ(r.lse.dtype(), DType::F32);
  // The same bf16 values in f64: the bf16 result is that, rounded once (2^-9 relative).
  const Naive n(q, k, v, 0.5);
  EXPECT_TRUE(all_close(r.out, as_tensor(n.out, shape), 1e-6, 1.0 / 256));
  EXPECT_TRUE(all_close(r.lse, as_tensor(n.lse, {1, 2, 17}), 1e-6, 1e-6));
  // And the backward in bf16 against the f64 matrix formulas on the same values.
  const Tensor g = uniform(shape, 64, -1, 1, DType::BF16);
  const AttentionGrads gr = attention_backward(q, k, v, r.out, r.lse, g, 0.5);
  // The backward's D_i = rowsum(dO * O) reads the saved (bf16-rounded) output; with that
  // D_i the f64 matrix formulas give the result up to its final bf16 rounding (2^-9).
  std::vector<double> dq, dk, dv;
  n.grads(g, 0.5, dq, dk, dv, r.out);
  EXPECT_TRUE(all_close(gr.dq, as_tensor(dq, shape), 1e-6, 1.0 / 256));
  EXPECT_TRUE(all_close(gr.dk, as_tensor(dk, shape), 1e-6, 1.0 / 256));
  EXPECT_TRUE(all_close(gr.dv, as_tensor(dv, shape), 1e-6, 1.0 / 256));
  // Against the exact rowsum(P * dP) the difference stays within that perturbation:
  // |scale * dD * sum_j P_ij k_j| with |dD| <= 2^-9 sum_d |dO_id O_id|, about 1e-2 here.
  n.grads(g, 0.5, dq, dk, dv);
  EXPECT_TRUE(all_close(gr.dq, as_tensor(dq, shape), 1e-2, 1.0 / 64));
  EXPECT_TRUE(all_close(gr.dk, as_tensor(dk, shape), 1e-2, 1.0 / 64));
}

TEST(Attention, LseDtypeFollowsTheInput) {
  const Shape shape{1, 1, 2, 3};
  EXPECT_EQ(attention_with_lse(uniform(shape, 1, -1, 1, DType::F64), uniform(shape, 2, -1, 1, DType::F64),
                               uniform(shape, 3, -1, 1, DType::F64), 1.0).lse.dtype(),
            DType::F64);
  EXPECT_EQ(attention_with_lse(uniform(shape, 1), uniform(shape, 2), uniform(shape, 3), 1.0).lse.dtype(),
            DType::F32);
}

TEST(Attention, EmptyBatchAndNoGradRecording) {
  const Tensor e = Tensor::zeros({0, 2, 3, 4});
  EXPECT_EQ(attention(e, e, e).shape(), (Shape{0, 2, 3, 4}));
  const Tensor q = uniform({1, 1, 3, 4}, 1);
  EXPECT_FALSE(attention(q, q, q).requires_grad());
}

TEST(Attention, RejectsBadInput) {
  const Tensor q = uniform({1, 2, 3, 4}, 1);
  EXPECT_VIMOE_ERROR(attention(uniform({2, 3, 4}, 1), q, q), "attention", "'q'", "[2, 3, 4]");
  EXPECT_VIMOE_ERROR(attention(q, uniform({1, 2, 4, 4}, 2), q), "attention", "[1, 2, 3, 4]",
                     "[1, 2, 4, 4]");
  EXPECT_VIMOE_ERROR(attention(q, q, uniform({1, 2, 3, 5}, 2)), "attention", "[1, 2, 3, 5]");
  EXPECT_VIMOE_ERROR(attention(q, q, q.to(DType::F64)), "attention", "dtype", "f32", "f64");
  const Tensor qi = Tensor::zeros({1, 2, 3, 4}, DType::I32);
  EXPECT_VIMOE_ERROR(attention(qi, qi, qi), "attention", "floating", "i32");
  const Tensor z = Tensor::zeros({1, 2, 3, 0});
  EXPECT_VIMOE_ERROR(attention(z, z, z), "attention", "head dim", "[1, 2, 3, 0]");
  EXPECT_VIMOE_ERROR(attention(q, q, q, std::nan("")), "attention", "scale");
  EXPECT_VIMOE_ERROR(attention(Tensor(), q, q), "attention", "'q'");

  const AttentionOutput r = attention_with_lse(q, q, q, 1.0);
  EXPECT_VIMOE_ERROR(attention_backward(q, q, q, r.out, r.lse.view({1, 2, 3, 1}), q, 1.0),
                     "attention_backward", "lse", "[1, 2, 3]", "[1, 2, 3, 1]");
  EXPECT_VIMOE_ERROR(attention_backward(q, q, q, r.out, r.lse.to(DType::F64), q, 1.0),
                     "attention_backward", "lse", "f64");
  EXPECT_VIMOE_ERROR(attention_backward(q, q, q, r.out, r.lse, uniform({1, 2, 3, 3}, 4), 1.0),
                     "attention_backward", "'dout'", "[1, 2, 3, 3]");
}
