// bf16 autocast: which ops change type, that gradients reach f32 leaves as f32, that the
// backward runs without autocast, and that a whole ViMoE under autocast stays close to f32.
#include <gtest/gtest.h>

#include "tests/tiny_vimoe.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::cosine;
using vimoe::testing::uniform;

namespace {

Tensor leaf(const Shape& shape, uint64_t seed, DType dtype = DType::F32) {
  Tensor t = uniform(shape, seed, -1, 1, dtype);
  t.set_requires_grad(true);
  return t;
}

}  // namespace

TEST(Autocast, GuardSetsNestsAndRestoresTheState) {
  EXPECT_FALSE(autocast_dtype().has_value());
  {
    AutocastGuard outer(DType::BF16);
    EXPECT_EQ(autocast_dtype(), DType::BF16);
    {
      AutocastGuard off(DType::BF16, /*enabled=*/false);
      EXPECT_FALSE(autocast_dtype().has_value());
      AutocastGuard half(DType::F16);
      EXPECT_EQ(autocast_dtype(), DType::F16);
    }
    EXPECT_EQ(autocast_dtype(), DType::BF16);
  }
  EXPECT_FALSE(autocast_dtype().has_value());
  EXPECT_VIMOE_ERROR(AutocastGuard(DType::F32), "AutocastGuard", "bf16 or f16", "f32");
}

TEST(Autocast, LinearRunsInBf16AndSendsF32GradientsToF32Leaves) {
  const Tensor x = leaf({5, 7}, 1), w = leaf({3, 7}, 2), b = leaf({3}, 3);
  Tensor y;
  {
    AutocastGuard autocast(DType::BF16);
    y = linear(x, w, b);
  }
  ASSERT_EQ(y.dtype(), DType::BF16);
  {
    NoGradGuard no_grad;
    // Exactly the bf16 op on the rounded operands.
    EXPECT_TRUE(all_close(y, linear(x.to(DType::BF16), w.to(DType::BF16), b.to(DType::BF16)), 0, 0));
  }
  sum(y.to(DType::F32)).backward();
  for (const Tensor* t : {&x, &w, &b}) {
    ASSERT_TRUE(t->grad().defined());
    EXPECT_EQ(t->grad().dtype(), DType::F32);
  }
  // Against the f32 gradients: d/dx sum(xW^T + b) = column sums of W, etc.
  const Tensor x32 = leaf({5, 7}, 1), w32 = leaf({3, 7}, 2), b32 = leaf({3}, 3);
  sum(linear(x32, w32, b32)).backward();
  EXPECT_TRUE(all_close(x.grad(), x32.grad(), 2e-2, 1e-2));
  EXPECT_TRUE(all_close(w.grad(), w32.grad(), 2e-2, 1e-2));
  EXPECT_TRUE(all_close(b.grad(), b32.grad(), 0, 0));  // a sum of ones is exact in bf16
}

TEST(Autocast, MatmulAndAttentionRunInBf16) {
  AutocastGuard autocast(DType::BF16);
  EXPECT_EQ(matmul(uniform({4, 5}, 1), uniform({5, 6}, 2)).dtype(), DType::BF16);
  const Tensor q = uniform({1, 2, 9, 8}, 3), k = uniform({1, 2, 9, 8}, 4), v = uniform({1, 2, 9, 8}, 5);
  const Tensor out = attention(q, k, v);
  EXPECT_EQ(out.dtype(), DType::BF16);
  AutocastGuard off(DType::BF16, false);
  EXPECT_GE(cosine(out, attention(q, k, v)), 0.999);
}

TEST(Autocast, F64IsNeverCast) {
  AutocastGuard autocast(DType::BF16);
  const Tensor x = uniform({2, 3}, 1, -1, 1, DType::F64), w = uniform({4, 3}, 2, -1, 1, DType::F64);
  EXPECT_EQ(linear(x, w).dtype(), DType::F64);
  EXPECT_EQ(matmul(x, w.t()).dtype(), DType::F64);
}

TEST(Autocast, LossesAndSoftmaxRunInF32) {
  const Tensor logits = uniform({4, 5}, 1, -2, 2, DType::BF16);
  const Tensor target = Tensor::from_vector(std::vector<int64_t>{0, 4, 2, 1}, {4});
  EXPECT_EQ(cross_entropy(logits, target).dtype(), DType::BF16);  // outside a scope: as given
  AutocastGuard autocast(DType::BF16);
  const Tensor loss = cross_entropy(logits, target);
  EXPECT_EQ(loss.dtype(), DType::F32);
  EXPECT_TRUE(all_close(loss, cross_entropy(logits.to(DType::F32), target), 0, 0));
  EXPECT_EQ(softmax(logits, 1).dtype(), DType::F32);
  EXPECT_EQ(log_softmax(logits, 1).dtype(), DType::F32);
}

TEST(Autocast, NormAndGeluParametersFollowTheActivationType) {
  const Tensor x = uniform({3, 8}, 1, -2, 2, DType::BF16);
  const Tensor gamma = uniform({8}, 2), beta = uniform({8}, 3);
  // Outside a scope mixed types are an error naming both...
  EXPECT_VIMOE_ERROR(layer_norm(x, gamma, beta, 1e-6), "layer_norm", "bf16", "f32");
  EXPECT_VIMOE_ERROR(bias_gelu(x, beta), "bias_gelu", "bf16", "f32");
  // ...inside one the f32 parameters are cast to the activation's type.
  AutocastGuard autocast(DType::BF16);
  const Tensor y = layer_norm(x, gamma, beta, 1e-6);
  EXPECT_EQ(y.dtype(), DType::BF16);
  EXPECT_TRUE(all_close(y, layer_norm(x, gamma.to(DType::BF16), beta.to(DType::BF16), 1e-6), 0, 0));
  const Tensor g = bias_gelu(x, beta);
  EXPECT_EQ(g.dtype(), DType::BF16);
  EXPECT_TRUE(all_close(g, bias_gelu(x, beta.to(DType::BF16)), 0, 0));
}

TEST(Autocast, BackwardRunsWithAutocastOff) {
  const Tensor x = leaf({3}, 1);
  Tensor y = x * 2.0;
  bool seen = false, was_on = true;
  autograd::record("probe", y, {x}, [&](const Tensor& g) {
    seen = true;
    was_on = autocast_dtype().has_value();
    return std::vector<Tensor>{g};
  });
  AutocastGuard autocast(DType::BF16);
  sum(y).backward();
  EXPECT_TRUE(seen);
  EXPECT_FALSE(was_on);
  EXPECT_EQ(autocast_dtype(), DType::BF16);  // restored after the backward
}

// A tiny ViMoE (both routing levels, shared expert) under bf16 autocast against the same
// f32 model: the same routing decisions, logits and parameter gradients close in direction,
// every gradient f32.
TEST(Autocast, TinyViMoEStaysCloseToF32) {
  using namespace vimoe::models;
  for (const RoutingLevel level : {RoutingLevel::Image, RoutingLevel::Token}) {
    SCOPED_TRACE(level == RoutingLevel::Image ? "image-level" : "token-level");
    const auto [v, m] = vimoe::testing::tiny_vimoe(level);
    VisionTransformer model(v, m);
    model.init_weights(21);
    const vimoe::testing::Pass f32 = vimoe::testing::run_pass(model, Device::cpu(), false);
    const vimoe::testing::Pass mixed = vimoe::testing::run_pass(model, Device::cpu(), true);
    vimoe::testing::expect_tracks_f32(mixed, f32);
  }
}
