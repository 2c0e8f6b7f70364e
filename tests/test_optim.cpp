#include <gtest/gtest.h>

#include <cmath>

#include "engine/optim/adamw.h"
#include "engine/optim/schedule.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;

namespace {

Tensor param(std::vector<double> v, DType dt = DType::F64) {
  Tensor t = Tensor::from_vector(v, {static_cast<int64_t>(v.size())}).to(dt);
  t.set_requires_grad(true);
  return t;
}

// Scalar AdamW written out independently of the engine.
struct RefAdamW {
  double p, m = 0, v = 0;
  int t = 0;
  void step(double g, double lr, double wd, double b1 = 0.9, double b2 = 0.999, double eps = 1e-8) {
    ++t;
    p -= lr * wd * p;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double mh = m / (1 - std::pow(b1, t)), vh = v / (1 - std::pow(b2, t));
    p -= lr * mh / (std::sqrt(vh) + eps);
  }
};

}  // namespace

TEST(AdamW, MatchesTheFormulaWithGroupsAndDecay) {
  Tensor a = param({1.0, -2.0}), b = param({0.5});
  optim::AdamW opt({{{a}, 1.0, 0.1}, {{b}, 0.5, 0.0}}, {.lr = 0.01});
  RefAdamW ra0{1.0}, ra1{-2.0}, rb{0.5};
  for (int step = 0; step < 5; ++step) {
    // loss = sum(a^2) + 3 b  ->  grads 2a, 3
    (sum(a * a) + sum(b * 3.0)).backward();
    const std::vector<double> ga = a.grad().to_vector<double>();
    ra0.step(ga[0], 0.01, 0.1);
    ra1.step(ga[1], 0.01, 0.1);
    rb.step(3.0, 0.005, 0.0);
    opt.step();
    opt.zero_grad();
  }
  EXPECT_NEAR(a.to_vector<double>()[0], ra0.p, 1e-12);
  EXPECT_NEAR(a.to_vector<double>()[1], ra1.p, 1e-12);
  EXPECT_NEAR(b.item<double>(), rb.p, 1e-12);
  EXPECT_EQ(opt.steps(), 5);
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  Tensor a = param({1.0}), b = param({2.0});
  optim::AdamW opt({{{a, b}}}, {.lr = 0.1});
  sum(a * 2.0).backward();
  opt.step();
  EXPECT_NE(a.item<double>(), 1.0);
  EXPECT_EQ(b.item<double>(), 2.0);
}

TEST(AdamW, StateDictResumesExactly) {
  auto run = [](int split) {
    Tensor p = param({0.3, -0.7, 1.1}, DType::F32);
    auto opt = std::make_unique<optim::AdamW>(std::vector<optim::ParamGroup>{{{p}, 1.0, 0.05}},
                                              optim::AdamW::Options{.lr = 0.05});
    for (int s = 0; s < 6; ++s) {
      if (s == split) {  // rebuild from a saved state, as a resumed run would
        const auto st = opt->state_dict();
        std::map<std::string, Tensor> copy;
        for (const auto& [k, t] : st) copy.emplace(k, t.clone());
        opt = std::make_unique<optim::AdamW>(std::vector<optim::ParamGroup>{{{p}, 1.0, 0.05}},
                                             optim::AdamW::Options{.lr = 0.05});
        opt->load_state_dict(copy);
      }
      sum(p * p * p).backward();
      opt->step();
      opt->zero_grad();
    }
    return p.to_vector<float>();
  };
  EXPECT_EQ(run(-1), run(3));
}

TEST(AdamW, RejectsBadParametersAndState) {
  Tensor i = Tensor::zeros({2}, DType::BF16);
  i.set_requires_grad(true);
  EXPECT_VIMOE_ERROR(optim::AdamW({{{i}}}, {}), "AdamW", "f32 or f64", "bf16");
  EXPECT_VIMOE_ERROR(optim::AdamW({{{Tensor::zeros({2})}}}, {}), "AdamW", "requires grad");
  Tensor p = param({1, 2});
  Tensor q = param({3, 4});
  EXPECT_VIMOE_ERROR(optim::AdamW({{{p, q}}, {{q}}}, {}), "AdamW", "parameter 0 of group 1",
                     "parameter 1 of group 0", "once");
  optim::AdamW opt({{{p}}}, {});
  auto st = opt.state_dict();
  st["exp_avg.0.0"] = Tensor::zeros({3}, DType::F64);
  EXPECT_VIMOE_ERROR(opt.load_state_dict(st), "exp_avg.0.0", "[3]", "[2]");
  st.erase("exp_avg.0.0");
  EXPECT_VIMOE_ERROR(opt.load_state_dict(st), "missing", "exp_avg.0.0");
}

TEST(ClipGradNorm, ScalesToTheMaximumNorm) {
  Tensor a = param({3.0}), b = param({4.0});
  sum(a * a * 0.5 + b * b * 0.5).backward();  // grads 3 and 4: norm 5
  EXPECT_NEAR(optim::clip_grad_norm({a, b}, 1.0).item<double>(), 5.0, 1e-12);
  EXPECT_NEAR(a.grad().item<double>(), 0.6, 1e-6);
  EXPECT_NEAR(b.grad().item<double>(), 0.8, 1e-6);
  EXPECT_NEAR(optim::clip_grad_norm({a, b}, 10.0).item<double>(), 1.0, 1e-5);  // below the limit: unchanged
  EXPECT_NEAR(a.grad().item<double>(), 0.6, 1e-6);
}

// sqrt of the sum of every element's square, across tensors of any shape and floating dtype;
// undefined and empty entries add nothing, and nothing is clipped.
TEST(GradNorm, IsTheNormOfAllTensorsTogether) {
  const Tensor a = Tensor::from_vector(std::vector<double>{3, -4}, {2});             // 25
  const Tensor b = Tensor::from_vector(std::vector<double>{1, 2, -2, 4}, {2, 2}).to(DType::F32);  // 25
  const Tensor c = Tensor::from_vector(std::vector<double>{0.5, -1.5}, {2}).to(DType::BF16);      // 2.5
  const Tensor e = Tensor::zeros({0, 3});
  const Tensor n = optim::grad_norm({a, Tensor(), b, e, c});
  EXPECT_EQ(n.dim(), 0);
  EXPECT_EQ(n.dtype(), DType::F64);
  EXPECT_DOUBLE_EQ(n.item<double>(), std::sqrt(52.5));
  EXPECT_TRUE(all_close(b, Tensor::from_vector(std::vector<double>{1, 2, -2, 4}, {2, 2}).to(DType::F32), 0, 0))
      << "grad_norm must not scale its inputs";
  // A transposed view has the same elements, so the same norm.
  const Tensor m = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_DOUBLE_EQ(optim::grad_norm({m.transpose(0, 1)}).item<double>(), std::sqrt(91.0));
  // Nothing to measure: 0.
  EXPECT_EQ(optim::grad_norm({}).item<double>(), 0.0);
  EXPECT_EQ(optim::grad_norm({Tensor()}).item<double>(), 0.0);
}

// The norm clip_grad_norm returns is grad_norm's, and the clip factor max_norm / (norm + 1e-6)
// reaches gradients of every dtype.
TEST(GradNorm, IsWhatClipGradNormMeasures) {
  Tensor a = param({3.0, -4.0}), b = param({1.0, 2.0, -2.0, 4.0}, DType::F32);
  a.set_grad(a.detach().clone());
  b.set_grad(b.detach().clone());
  const double before = optim::grad_norm({a.grad(), b.grad()}).item<double>();
  EXPECT_DOUBLE_EQ(before, std::sqrt(50.0));
  EXPECT_DOUBLE_EQ(optim::clip_grad_norm({a, b}, 1.0).item<double>(), before);
  const double f = 1.0 / (std::sqrt(50.0) + 1e-6);
  EXPECT_NEAR(a.grad().to_vector<double>()[1], -4.0 * f, 1e-15);
  EXPECT_FLOAT_EQ(b.grad().to_vector<float>()[3], static_cast<float>(4.0f * static_cast<float>(f)));
  EXPECT_NEAR(optim::grad_norm({a.grad(), b.grad()}).item<double>(), 1.0, 1e-6);
}

TEST(GradNorm, RejectsIntegerGradients) {
  EXPECT_VIMOE_ERROR(optim::grad_norm({Tensor::zeros({2}), Tensor::zeros({3}, DType::I64)}),
                     "grad_norm", "floating", "i64", "position 1");
}

TEST(WarmupCosine, Shape) {
  const optim::WarmupCosine s{.base_lr = 1.0, .min_lr = 0.1, .warmup_steps = 4, .total_steps = 14};
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_NEAR(s.at(9), 0.55, 1e-12);  // halfway down the cosine
  EXPECT_NEAR(s.at(14), 0.1, 1e-12);
  EXPECT_NEAR(s.at(100), 0.1, 1e-12);
  for (int i = 5; i < 14; ++i) EXPECT_LT(s.at(i), s.at(i - 1));
  EXPECT_VIMOE_ERROR((optim::WarmupCosine{.warmup_steps = 5, .total_steps = 3}.at(0)), "WarmupCosine");
}
