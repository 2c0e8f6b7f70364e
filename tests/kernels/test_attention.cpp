// Fused attention on the GPU beyond the op-parity table: the CUDA-vs-CPU comparisons
// (f32 and bf16 kernels, forward, log-sum-exp, backward alone and through autograd, views,
// the ViT layout, the composed path for other head dims and types) are rows of
// tests/op_parity/cases_attention.cpp. Here: determinism, scores of order 1000, misaligned
// and strided views giving the contiguous result bit for bit, and what the fused entry points
// (and the launchers) refuse.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/ops/attention.h"
#include "tests/op_parity/op_case.h"
#include "tests/test_util.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/attention.h"
#endif

using namespace vimoe;
using vimoe::testing::all_close;
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

}  // namespace

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
  // A view starting one element into its storage is not 16-byte aligned: the f32 kernels
  // read it in place, for bf16 the front-end copies it before the kernels' 16-byte loads.
  const Shape shape{1, 2, 17, 64};
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor flat = uniform({2 * 17 * 64 + 1}, 501, -2, 2, dt, Device::cuda());
    const Tensor q = flat.narrow(0, 1, 2 * 17 * 64).view(shape);
    ASSERT_NE(q.offset(), 0);
    const Tensor qa = q.clone();
    EXPECT_TRUE(all_close(attention(q, q, q).cpu(), attention(qa, qa, qa).cpu(), 0, 0));
  }
}

// The kernels read q, k, v and dout through their strides, and do the same arithmetic
// whatever the layout: views the front-end passes straight through (the ViT's per-head views,
// a packed qkv, rows padded to a multiple of 8 elements) and views it copies first (bf16 rows
// of 65 elements, which the tensor-core loads cannot take) must all give the result of the
// contiguous operands bit for bit, forward and backward.
TEST(AttentionCuda, StridedViewsGiveTheContiguousResultBitForBit) {
  VIMOE_REQUIRE_GPU();
  constexpr int64_t B = 2, H = 3, T = 33, Dh = 64;
  const Device gpu = Device::cuda();
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor proj[3] = {uniform({B, T, H * Dh}, 601, -2, 2, dt, gpu),
                            uniform({B, T, H * Dh}, 602, -2, 2, dt, gpu),
                            uniform({B, T, H * Dh}, 603, -1, 1, dt, gpu)};
    const Tensor packed = uniform({B, T, 3, H, Dh}, 604, -2, 2, dt, gpu);
    const Tensor padded8 = uniform({B, H, T, Dh + 8}, 605, -2, 2, dt, gpu);
    const Tensor padded1 = uniform({B, H, T, Dh + 1}, 606, -2, 2, dt, gpu);
    auto split = [&](const Tensor& x) { return x.view({B, T, H, Dh}).permute({0, 2, 1, 3}); };
    auto part = [&](int64_t i) { return packed.select(2, i).permute({0, 2, 1, 3}); };
    struct Layout {
      const char* name;
      Tensor q, k, v;
    };
    const Layout layouts[] = {
        {"vit", split(proj[0]), split(proj[1]), split(proj[2])},
        {"packed_qkv", part(0), part(1), part(2)},
        {"row_stride_72", padded8.narrow(3, 0, Dh), padded8.narrow(3, 8, Dh),
         padded8.narrow(3, 0, Dh)},
        {"row_stride_65", padded1.narrow(3, 0, Dh), padded1.narrow(3, 1, Dh),
         padded1.narrow(3, 0, Dh)},
    };
    const Tensor g = uniform({B, H, T, Dh}, 607, -1, 1, dt, gpu);
    const Tensor g_view = split(uniform({B, T, H * Dh}, 608, -1, 1, dt, gpu));
    for (const Layout& l : layouts) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + l.name);
      ASSERT_FALSE(l.q.is_contiguous());
      const Tensor qc = l.q.contiguous(), kc = l.k.contiguous(), vc = l.v.contiguous();
      const AttentionOutput got = attention_with_lse(l.q, l.k, l.v, 0.125);
      const AttentionOutput ref = attention_with_lse(qc, kc, vc, 0.125);
      EXPECT_TRUE(all_close(got.out.cpu(), ref.out.cpu(), 0, 0));
      EXPECT_TRUE(all_close(got.lse.cpu(), ref.lse.cpu(), 0, 0));
      for (const Tensor& dout : {g, g_view}) {
        const AttentionGrads a = attention_backward(l.q, l.k, l.v, ref.out, ref.lse, dout, 0.125);
        const AttentionGrads b =
            attention_backward(qc, kc, vc, ref.out, ref.lse, dout.contiguous(), 0.125);
        EXPECT_TRUE(all_close(a.dq.cpu(), b.dq.cpu(), 0, 0));
        EXPECT_TRUE(all_close(a.dk.cpu(), b.dk.cpu(), 0, 0));
        EXPECT_TRUE(all_close(a.dv.cpu(), b.dv.cpu(), 0, 0));
      }
    }
  }
}

// What the fused kernels do not cover, attention() computes through the composed path (the
// table's rows compare it with the CPU); the fused entry point itself refuses it by name.
TEST(AttentionCuda, FusedEntryPointsRefuseWhatTheKernelsDoNotTake) {
  VIMOE_REQUIRE_GPU();
  const Tensor q64 = uniform({1, 2, 17, 64}, 2, -1, 1, DType::F32, Device::cuda());
  const Tensor h64 = q64.to(DType::F16);
  const Tensor q40 = uniform({1, 2, 17, 40}, 1, -1, 1, DType::BF16, Device::cuda());
  EXPECT_VIMOE_ERROR(attention_with_lse(q40, q40, q40, 0.5), "attention", "head dim", "40");
  EXPECT_VIMOE_ERROR(attention_with_lse(h64, h64, h64, 0.5), "attention", "f16");
  EXPECT_VIMOE_ERROR(attention(q64, q64.cpu(), q64), "attention", "cuda", "cpu");
#ifdef VIMOE_WITH_CUDA
  using kernels::AttnLayout;
  // The launchers themselves refuse unsupported head dims rather than misbehave.
  const AttnLayout l40 = kernels::attention_contiguous_layout(2, 17, 40);
  EXPECT_EQ(kernels::attention_forward(DType::BF16, q40.data_ptr(), l40, q40.data_ptr(), l40,
                                       q40.data_ptr(), l40, nullptr, l40, nullptr, 2, 2, 17, 40,
                                       1.f, nullptr),
            cudaErrorInvalidValue);
  // Every pointer the bf16 kernels read or write 16 bytes or a pair at a time is checked:
  // one off its boundary (an output included) is refused before anything is launched.
  // b is [1, 2, 17, 64] (bh = 2 slices of 2 heads).
  const Tensor b = uniform({2, 17, 64}, 3, -1, 1, DType::BF16, Device::cuda());
  const AttnLayout lb = kernels::attention_contiguous_layout(2, 17, 64);
  Tensor o = Tensor::empty({2 * 17 * 64 + 8}, TensorOptions(DType::BF16, Device::cuda()));
  Tensor lse = Tensor::empty({2, 17}, TensorOptions(DType::F32, Device::cuda()));
  Tensor delta = Tensor::empty({2, 17}, TensorOptions(DType::F32, Device::cuda()));
  auto* off = static_cast<char*>(o.data_ptr()) + 2;  // a bf16 element past a 16-byte boundary
  EXPECT_EQ(kernels::attention_forward(DType::BF16, b.data_ptr(), lb, b.data_ptr(), lb,
                                       b.data_ptr(), lb, off, lb, lse.data<float>(), 2, 2, 17, 64,
                                       0.125f, cuda::stream()),
            cudaErrorMisalignedAddress);
  const void* in = b.data_ptr();
  void* ok = o.data_ptr();
  for (int which = 0; which < 3; ++which) {
    void* d[3] = {ok, ok, ok};
    d[which] = off;
    EXPECT_EQ(kernels::attention_backward(DType::BF16, in, lb, in, lb, in, lb, in, lb, in, lb,
                                          lse.data<float>(), delta.data<float>(), d[0], lb, d[1],
                                          lb, d[2], lb, 2, 2, 17, 64, 0.125f, cuda::stream()),
              cudaErrorMisalignedAddress)
        << "gradient " << which;
  }
  // So is every stride: a batch, head or row stride that is not a multiple of 8 elements
  // (16 bytes) moves rows off the boundary even from an aligned base, for any operand (the
  // f32 kernels, which read single elements, take such strides). One head here, so bh = 2
  // batch entries; the launcher checks every stride it is given (the front-end passes 0 for
  // the stride of a size-1 dim).
  const AttnLayout odd[3] = {{17 * 64 + 4, 17 * 64, 64}, {17 * 64, 17 * 64 + 4, 64},
                             {17 * 64, 17 * 64, 65}};
  for (int s = 0; s < 3; ++s) {
    SCOPED_TRACE("stride " + std::to_string(s));
    for (int which = 0; which < 4; ++which) {  // q, k, v, out
      AttnLayout l[4] = {lb, lb, lb, lb};
      l[which] = odd[s];
      EXPECT_EQ(kernels::attention_forward(DType::BF16, in, l[0], in, l[1], in, l[2], ok, l[3],
                                           lse.data<float>(), 2, 1, 17, 64, 0.125f,
                                           cuda::stream()),
                cudaErrorMisalignedAddress)
          << "forward operand " << which;
    }
    for (int which = 0; which < 8; ++which) {  // q, k, v, out, dout, dq, dk, dv
      AttnLayout l[8] = {lb, lb, lb, lb, lb, lb, lb, lb};
      l[which] = odd[s];
      EXPECT_EQ(kernels::attention_backward(DType::BF16, in, l[0], in, l[1], in, l[2], in, l[3],
                                            in, l[4], lse.data<float>(), delta.data<float>(), ok,
                                            l[5], ok, l[6], ok, l[7], 2, 1, 17, 64, 0.125f,
                                            cuda::stream()),
                cudaErrorMisalignedAddress)
          << "backward operand " << which;
    }
  }
  // Heads must be positive and divide bh.
  EXPECT_EQ(kernels::attention_forward(DType::F32, in, lb, in, lb, in, lb, ok, lb,
                                       lse.data<float>(), 2, 0, 17, 64, 0.125f, cuda::stream()),
            cudaErrorInvalidValue);
  EXPECT_EQ(kernels::attention_forward(DType::F32, in, lb, in, lb, in, lb, ok, lb,
                                       lse.data<float>(), 2, 3, 17, 64, 0.125f, cuda::stream()),
            cudaErrorInvalidValue);
  cuda::synchronize();
#endif
}

// The fused kernels write the output through strides into [B, S, H, Dh] storage, so the
// model's head merge (permute back, reshape to [B, S, H * Dh]) is a view of it, not a copy.
TEST(AttentionCuda, OutputMergesHeadsWithoutACopy) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor q = uniform({2, 3, 17, 64}, 11, -1, 1, dt, Device::cuda());
    const Tensor o = attention(q, q, q);
    const Tensor merged = o.permute({0, 2, 1, 3}).reshape({2, 17, 3 * 64});
    EXPECT_TRUE(merged.is_contiguous()) << dtype_name(dt);
    EXPECT_EQ(merged.data_ptr(), o.data_ptr()) << dtype_name(dt) << ": the merge copied";
    EXPECT_TRUE(vimoe::parity::compare(o, attention(q.cpu(), q.cpu(), q.cpu()),
                                dt == DType::F32 ? vimoe::parity::Tol{1e-5, 1e-4, 1e-4} : vimoe::parity::Tol{0, 1e-2, 1e-2},
                                "attention output"));
  }
}
