// Fused attention on the GPU against the CPU reference: f32 (CUDA-core kernels) and bf16
// (tensor-core kernels), forward, log-sum-exp and backward, on sequence lengths that hit
// full tiles, partial tiles and a single row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/ops/attention.h"
#include "tests/test_util.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/attention.h"
#endif

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::gpu_close;
using vimoe::testing::scaled_tol_for;
using vimoe::testing::uniform;

namespace {

double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : t.to_vector<double>()) m = std::max(m, std::fabs(x));
  return m;
}

// |got - ref| <= frac * (max|ref| + |ref|) + 1e-5. Attention results are sums over a whole
// row or column, so their rounding error scales with the size of the sums, not of each
// element. The small absolute floor covers results that are exactly zero on the CPU: with
// one key, dq = dk = 0 because dP - rowsum(dO * O) cancels exactly in double, while the GPU
// forms the two terms in f32 in different orders and keeps a ~1e-7 remainder.
::testing::AssertionResult close_to(const Tensor& got, const Tensor& ref, double frac) {
  return all_close(got.cpu(), ref, frac * max_abs(ref) + 1e-5, frac);
}

bool all_finite(const Tensor& t) {
  for (double x : t.to_vector<double>())
    if (!std::isfinite(x)) return false;
  return true;
}

struct Case {
  int64_t b, h, s, d;
};

// Sequence lengths: one row, partial tiles (17, 257 = ViT-S/14 at 224, 1370 = 518 px) and
// an exact multiple of every tile size (64).
std::vector<Case> cases() {
  std::vector<Case> out;
  for (int64_t d : {64, 128})
    for (int64_t s : {1, 17, 64, 257, 1370})
      out.push_back(s > 1000 ? Case{1, 2, s, d} : Case{2, 3, s, d});
  return out;
}

// out_frac bounds the forward and grad_frac the gradients (in close_to's sense).
void compare_with_cpu(DType dt, double out_frac, double grad_frac) {
  uint64_t seed = 100;
  for (const Case& c : cases()) {
    const Shape shape{c.b, c.h, c.s, c.d};
    SCOPED_TRACE(shape_str(shape) + " " + dtype_name(dt));
    // q and k in [-2, 2] give scaled scores with a standard deviation near 1.3: peaked
    // enough that a wrong key or row shows, without saturating the softmax.
    const Tensor q = uniform(shape, seed++, -2, 2, dt), k = uniform(shape, seed++, -2, 2, dt),
                 v = uniform(shape, seed++, -1, 1, dt), g = uniform(shape, seed++, -1, 1, dt);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));

    const AttentionOutput ref = attention_with_lse(q, k, v, scale);
    const AttentionOutput got = attention_with_lse(q.cuda(), k.cuda(), v.cuda(), scale);
    ASSERT_TRUE(got.out.is_cuda());
    ASSERT_EQ(got.out.dtype(), dt);
    EXPECT_TRUE(close_to(got.out, ref.out, out_frac));
    // Scores accumulate in f32 on both sides of the tensor-core path too (bf16 products
    // are exact in f32), so the log-sum-exp agrees to f32 accuracy in either dtype.
    EXPECT_TRUE(all_close(got.lse.cpu(), ref.lse, 1e-4, 1e-5));

    // The backward from the same saved output and lse on both devices: this measures the
    // backward kernels alone.
    const AttentionGrads gref = attention_backward(q, k, v, ref.out, ref.lse, g, scale);
    const AttentionGrads ggot = attention_backward(q.cuda(), k.cuda(), v.cuda(), ref.out.cuda(),
                                                   ref.lse.cuda(), g.cuda(), scale);
    EXPECT_TRUE(close_to(ggot.dq, gref.dq, grad_frac)) << "dq";
    EXPECT_TRUE(close_to(ggot.dk, gref.dk, grad_frac)) << "dk";
    EXPECT_TRUE(close_to(ggot.dv, gref.dv, grad_frac)) << "dv";
  }
}

}  // namespace

TEST(AttentionCuda, F32MatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  // f32 sums of at most 1370 terms against double: ~1e-6 relative; 1e-4 leaves margin.
  compare_with_cpu(DType::F32, 1e-4, 1e-4);
}

TEST(AttentionCuda, Bf16MatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  // Same bf16 inputs on both sides. The GPU rounds P (forward) and P, dS (backward) to bf16
  // before the tensor-core products (2^-9 relative per element, averaging out over the
  // sums) and each side rounds its result to bf16 once (up to one bf16 ulp, 2^-8 relative,
  // between them): 1% of the largest value plus 1% of each element forward, 2% backward.
  compare_with_cpu(DType::BF16, 1e-2, 2e-2);
}

TEST(AttentionCuda, AutogradWithPermutedInputsMatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  // [B, S, H, Dh] projections viewed as [B, H, S, Dh], as a ViT block does; 197 tokens.
  const Shape bshd{2, 197, 3, 64};
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    std::vector<Tensor> cpu_leaves, gpu_leaves;
    for (uint64_t i = 0; i < 3; ++i) {
      Tensor c = uniform(bshd, 200 + i, i < 2 ? -2 : -1, i < 2 ? 2 : 1, dt);
      Tensor d = c.cuda();
      c.set_requires_grad(true);
      d.set_requires_grad(true);
      cpu_leaves.push_back(c);
      gpu_leaves.push_back(d);
    }
    const Tensor w = uniform({2, 3, 197, 64}, 210, -1, 1, dt);
    auto run = [&](const std::vector<Tensor>& x, const Tensor& weight) {
      const Tensor out = attention(x[0].permute({0, 2, 1, 3}), x[1].permute({0, 2, 1, 3}),
                                   x[2].permute({0, 2, 1, 3}));
      sum(out * weight).backward();
      return out;
    };
    const Tensor ref = run(cpu_leaves, w);
    const Tensor got = run(gpu_leaves, w.cuda());
    // Here the GPU backward uses its own forward's output, so bf16 adds that rounding.
    const double out_frac = dt == DType::F32 ? 1e-4 : 1e-2;
    const double grad_frac = dt == DType::F32 ? 1e-4 : 3e-2;
    EXPECT_TRUE(close_to(got, ref, out_frac));
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(gpu_leaves[i].grad().defined());
      EXPECT_EQ(gpu_leaves[i].grad().shape(), bshd);
      EXPECT_TRUE(close_to(gpu_leaves[i].grad(), cpu_leaves[i].grad(), grad_frac)) << "input " << i;
    }
  }
}

TEST(AttentionCuda, BackwardIsDeterministic) {
  VIMOE_REQUIRE_GPU();
  // No atomics: dK/dV and dQ come from separate passes, each element written by one thread.
  const Shape shape{2, 3, 257, 64};
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor q = uniform(shape, 301, -2, 2, dt, Device::cuda()),
                 k = uniform(shape, 302, -2, 2, dt, Device::cuda()),
                 v = uniform(shape, 303, -1, 1, dt, Device::cuda()),
                 g = uniform(shape, 304, -1, 1, dt, Device::cuda());
    const AttentionOutput f = attention_with_lse(q, k, v, 0.125);
    const AttentionGrads a = attention_backward(q, k, v, f.out, f.lse, g, 0.125);
    const AttentionGrads b = attention_backward(q, k, v, f.out, f.lse, g, 0.125);
    EXPECT_EQ(a.dq.to_vector<float>(), b.dq.to_vector<float>());
    EXPECT_EQ(a.dk.to_vector<float>(), b.dk.to_vector<float>());
    EXPECT_EQ(a.dv.to_vector<float>(), b.dv.to_vector<float>());
  }
}

TEST(AttentionCuda, LargeLogitsStayFinite) {
  VIMOE_REQUIRE_GPU();
  // q, k in [-40, 40] with Dh = 64: scaled scores of order +-1000.
  const Shape shape{1, 2, 70, 64};
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor q = uniform(shape, 401, -40, 40, dt), k = uniform(shape, 402, -40, 40, dt),
                 v = uniform(shape, 403, -1, 1, dt), g = uniform(shape, 404, -1, 1, dt);
    const AttentionOutput ref = attention_with_lse(q, k, v, 0.125);
    ASSERT_GT(max_abs(ref.lse), 500.0) << "the test needs scores of order 1000";
    const AttentionOutput got = attention_with_lse(q.cuda(), k.cuda(), v.cuda(), 0.125);
    EXPECT_TRUE(all_finite(got.out));
    EXPECT_TRUE(all_finite(got.lse));
    // f32 scores of size ~1000 carry ~1e-3 absolute error (a 0.1% change in a probability).
    EXPECT_TRUE(close_to(got.out, ref.out, 2e-2));
    const AttentionGrads gg = attention_backward(q.cuda(), k.cuda(), v.cuda(), got.out, got.lse,
                                                 g.cuda(), 0.125);
    EXPECT_TRUE(all_finite(gg.dq));
    EXPECT_TRUE(all_finite(gg.dk));
    EXPECT_TRUE(all_finite(gg.dv));
  }
}

TEST(AttentionCuda, MisalignedViewsAreHandled) {
  VIMOE_REQUIRE_GPU();
  // A view starting one element into its storage is not 16-byte aligned; the front-end
  // copies it before the kernels' 16-byte loads.
  const Shape shape{1, 2, 17, 64};
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor flat = uniform({2 * 17 * 64 + 1}, 501, -2, 2, dt, Device::cuda());
    const Tensor q = flat.narrow(0, 1, 2 * 17 * 64).view(shape);
    ASSERT_NE(q.offset(), 0);
    const Tensor qa = q.clone();
    EXPECT_TRUE(all_close(attention(q, q, q).cpu(), attention(qa, qa, qa).cpu(), 0, 0));
  }
}

// What the fused kernels do not cover, attention() computes through the composed path (and
// matches the CPU); the fused entry point itself refuses it by name.
TEST(AttentionCuda, OtherHeadDimsAndTypesTakeTheComposedPath) {
  VIMOE_REQUIRE_GPU();
  for (const int64_t dh : {16, 40}) {
    for (const DType dt : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(std::to_string(dh) + " " + dtype_name(dt));
      Tensor qc = uniform({2, 3, 17, dh}, 11, -1, 1, dt), kc = uniform({2, 3, 17, dh}, 12, -1, 1, dt),
             vc = uniform({2, 3, 17, dh}, 13, -1, 1, dt);
      Tensor qg = qc.cuda(), kg = kc.cuda(), vg = vc.cuda();
      for (Tensor* t : {&qc, &kc, &vc, &qg, &kg, &vg}) t->set_requires_grad(true);
      const Tensor dy = uniform({2, 3, 17, dh}, 14, -1, 1, dt);
      const Tensor oc = attention(qc, kc, vc), og = attention(qg, kg, vg);
      EXPECT_TRUE(gpu_close(og, oc, scaled_tol_for(dt)));
      oc.backward(dy);
      og.backward(dy.cuda());
      EXPECT_TRUE(gpu_close(qg.grad(), qc.grad(), scaled_tol_for(dt)));
      EXPECT_TRUE(gpu_close(kg.grad(), kc.grad(), scaled_tol_for(dt)));
      EXPECT_TRUE(gpu_close(vg.grad(), vc.grad(), scaled_tol_for(dt)));
    }
  }
  const Tensor q64 = uniform({1, 2, 17, 64}, 2, -1, 1, DType::F32, Device::cuda());
  const Tensor h64 = q64.to(DType::F16);
  EXPECT_TRUE(gpu_close(attention(h64, h64, h64).to(DType::F32), attention(q64, q64, q64).cpu(),
                        vimoe::testing::ScaledTol{2e-3, 1.0 / 256}));
  const Tensor q40 = uniform({1, 2, 17, 40}, 1, -1, 1, DType::BF16, Device::cuda());
  EXPECT_VIMOE_ERROR(attention_with_lse(q40, q40, q40, 0.5), "attention", "head dim", "40");
  EXPECT_VIMOE_ERROR(attention_with_lse(h64, h64, h64, 0.5), "attention", "f16");
  EXPECT_VIMOE_ERROR(attention(q64, q64.cpu(), q64), "attention", "cuda", "cpu");
#ifdef VIMOE_WITH_CUDA
  // The launchers themselves refuse unsupported head dims rather than misbehave.
  EXPECT_EQ(kernels::attention_forward(DType::BF16, q40.data_ptr(), q40.data_ptr(), q40.data_ptr(),
                                       nullptr, nullptr, 2, 17, 40, 1.f, nullptr),
            cudaErrorInvalidValue);
#endif
}
