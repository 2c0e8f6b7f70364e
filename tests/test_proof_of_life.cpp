// Proof of life: the engine trains a 2-layer MLP with plain SGD, end to end on the CPU.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/ops/index.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "tests/test_util.h"

using namespace vimoe;

namespace {

// Two concentric rings (class 0 inside radius 1, class 1 between 1.4 and 2): not linearly
// separable, so the hidden layer has to learn a real feature.
void make_rings(int n, Tensor& x, Tensor& y) {
  std::vector<float> pts;
  std::vector<int64_t> labels;
  uint64_t s = 42;
  auto next = [&s] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) / 9007199254740992.0;
  };
  for (int i = 0; i < n; ++i) {
    const int label = i % 2;
    const double r = label == 0 ? next() : 1.4 + 0.6 * next();
    const double a = 6.283185307179586 * next();
    pts.push_back(static_cast<float>(r * std::cos(a)));
    pts.push_back(static_cast<float>(r * std::sin(a)));
    labels.push_back(label);
  }
  x = Tensor::from_vector(pts, {n, 2});
  y = Tensor::from_vector(labels, {n});
}

Tensor init(const Shape& shape, double scale, uint64_t seed) {
  Tensor t = vimoe::testing::uniform(shape, seed, -scale, scale);
  t.set_requires_grad(true);
  return t;
}

}  // namespace

TEST(ProofOfLife, MlpLearnsRingsWithSgd) {
  Tensor x, y;
  make_rings(512, x, y);
  Tensor w1 = init({32, 2}, 0.7, 1), b1 = init({32}, 0.1, 2);
  Tensor w2 = init({2, 32}, 0.18, 3), b2 = init({2}, 0.1, 4);
  std::vector<Tensor> params{w1, b1, w2, b2};
  const double lr = 0.5;
  double first_loss = 0, loss_value = 0;
  for (int step = 0; step < 1500; ++step) {
    const Tensor logits = linear(relu(linear(x, w1, b1)), w2, b2);
    const Tensor loss = cross_entropy(logits, y);
    loss.backward();
    loss_value = loss.item<double>();
    if (step == 0) first_loss = loss_value;
    NoGradGuard no_grad;
    for (Tensor& p : params) {
      p.copy_(p - p.grad() * lr);
      p.zero_grad();
    }
  }
  NoGradGuard no_grad;
  const Tensor pred = argmax(linear(relu(linear(x, w1, b1)), w2, b2), 1);
  const double accuracy = sum(eq(pred, y)).item<double>() / 512.0;
  std::printf("proof of life: loss %.4f -> %.4f, training accuracy %.2f%%\n", first_loss,
              loss_value, 100 * accuracy);
  EXPECT_LT(loss_value, first_loss / 10);
  EXPECT_GE(accuracy, 0.99);
}
