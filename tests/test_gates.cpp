// Router gates (models/gates.h): the linear, cosine and l2 gates' values on hand-made cases,
// their gradients (f64 finite differences, inputs and every parameter), the temperature
// clamp, parameter counts and names, and bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/autocast.h"
#include "models/gates.h"
#include "tests/test_util.h"

using namespace vimoe;
using namespace vimoe::models;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;

namespace {

// Sets every parameter of a gate to fixed values (f64), so that tests can compute by hand.
void set_projected(ProjectedGate& g, const std::vector<double>& w, const std::vector<double>& b,
                   const std::vector<double>& e, double log_scale) {
  g.to(DType::F64);
  NoGradGuard no_grad;
  g.proj->weight.copy_(Tensor::from_vector<double>(w, g.proj->weight.shape()));
  g.proj->bias.copy_(Tensor::from_vector<double>(b, g.proj->bias.shape()));
  g.experts.copy_(Tensor::from_vector<double>(e, g.experts.shape()));
  g.log_scale.fill_(log_scale);
}

}  // namespace

TEST(Gates, NamesRoundTripAndUnknownNamesAreErrors) {
  for (GateKind k : {GateKind::Linear, GateKind::Cosine, GateKind::L2}) EXPECT_EQ(parse_gate(gate_name(k)), k);
  EXPECT_VIMOE_ERROR(parse_gate("Cosine"), "Cosine", "linear, cosine, l2");
  EXPECT_VIMOE_ERROR(parse_gate("dot"), "dot", "linear, cosine, l2");
}

TEST(Gates, ParameterNamesAndCounts) {
  // The linear gate keeps an nn::Linear's names, so "router.weight" still loads.
  const auto lin = make_gate(GateKind::Linear, 12, 5);
  std::vector<std::string> names;
  for (const auto& [n, t] : lin->named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(lin->num_parameters(), gate_params(GateKind::Linear, 12, 5));
  EXPECT_EQ(gate_params(GateKind::Linear, 12, 5), 12 * 5 + 5);
  for (GateKind k : {GateKind::Cosine, GateKind::L2}) {
    const auto g = make_gate(k, 12, 5);  // P = min(12 / 2, 256) = 6
    names.clear();
    for (const auto& [n, t] : g->named_parameters()) names.push_back(n);
    EXPECT_EQ(names, (std::vector<std::string>{"experts", "log_scale", "proj.weight", "proj.bias"}))
        << gate_name(k);
    EXPECT_EQ(g->num_parameters(), 12 * 6 + 6 + 5 * 6 + 1);
    EXPECT_EQ(g->num_parameters(), gate_params(k, 12, 5));
    EXPECT_EQ(make_gate(k, 12, 5, 3)->num_parameters(), gate_params(k, 12, 5, 3));
    EXPECT_EQ(g->kind(), k);
  }
  EXPECT_EQ(resolved_proj_dim(12, 0), 6);
  EXPECT_EQ(resolved_proj_dim(1024, 0), 256);
  EXPECT_EQ(resolved_proj_dim(1, 0), 1);
  EXPECT_EQ(resolved_proj_dim(12, 9), 9);
}

TEST(Gates, CosineValuesByHand) {
  // D = 2, P = 2, N = 3; proj is the identity, so h = x.
  CosineGate g(2, 3, 2);
  set_projected(g, {1, 0, 0, 1}, {0, 0}, {1, 0, 0, 2, -1, -1}, std::log(4.0));
  const Tensor x = Tensor::from_vector<double>({3, 4, 0, 0, -2, 0}, {3, 2});
  const std::vector<double> got = g.forward(x).to_vector<double>();
  const double s = 4;
  const std::vector<double> want = {s * 3 / 5.0,  s * 4 / 5.0, s * -7 / (5 * std::sqrt(2.0)),
                                    0,            0,           0,  // a zero row gives zero logits
                                    s * -1,       0,           s * 2 / (2 * std::sqrt(2.0))};
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
  // Scaling a row does not change its logits (proj's bias is 0).
  const Tensor scaled = g.forward(x * 7.5);
  EXPECT_LT(vimoe::testing::max_abs_diff(scaled, g.forward(x)), 1e-12);
}

TEST(Gates, L2ValuesByHand) {
  L2Gate g(2, 2, 2);
  set_projected(g, {1, 0, 0, 1}, {0.5, 0}, {0, 0, 3, 4}, std::log(2.0));
  // h = x + (0.5, 0): (0.5, 0) and (3.5, 4); the second coincides with no code.
  const Tensor x = Tensor::from_vector<double>({0, 0, 3, 4}, {2, 2});
  const std::vector<double> got = g.forward(x).to_vector<double>();
  const std::vector<double> want = {-2 * 0.5, -2 * std::hypot(2.5, 4.0), -2 * std::hypot(3.5, 4.0),
                                    -2 * 0.5};
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
}

TEST(Gates, L2AtACodeIsFiniteWithAFiniteGradient) {
  L2Gate g(2, 2, 2);
  set_projected(g, {1, 0, 0, 1}, {0, 0}, {1, 2, -1, 0}, 0);
  Tensor x = Tensor::from_vector<double>({1, 2}, {1, 2}).set_requires_grad(true);
  const Tensor y = g.forward(x);
  EXPECT_NEAR(y.to_vector<double>()[0], -1e-6, 1e-9);  // sqrt of the 1e-12 floor
  sum(y).backward();
  for (double v : x.grad().to_vector<double>()) EXPECT_TRUE(std::isfinite(v));
}

TEST(Gates, TheTemperatureIsClampedAtAScaleOf100) {
  CosineGate g(4, 3, 2);
  g.to(DType::F64);
  EXPECT_NEAR(g.scale().item<double>(), 2.0, 1e-8);  // init: 1 / 0.5 (log 2 stored in f32)
  {
    NoGradGuard no_grad;
    g.log_scale.fill_(std::log(1e4));
  }
  EXPECT_NEAR(g.scale().item<double>(), 100.0, 1e-9);
  const Tensor x = leaf64({3, 4}, 3);
  sum(g.forward(x)).backward();
  EXPECT_EQ(g.log_scale.grad().item<double>(), 0.0);  // the clamp blocks the gradient
  // Every logit stays within the scale.
  for (double v : g.forward(x).to_vector<double>()) EXPECT_LE(std::abs(v), 100.0 + 1e-9);
}

TEST(Gates, GradientsOfEveryGateAgainstFiniteDifferences) {
  for (GateKind k : {GateKind::Linear, GateKind::Cosine, GateKind::L2}) {
    const auto g = make_gate(k, 5, 4, 3);
    g->to(DType::F64);
    std::vector<Tensor*> params;
    if (auto* lin = dynamic_cast<LinearGate*>(g.get())) {
      params = {&lin->weight, &lin->bias};
    } else {
      auto* p = dynamic_cast<ProjectedGate*>(g.get());
      params = {&p->proj->weight, &p->proj->bias, &p->experts, &p->log_scale};
    }
    std::vector<Tensor> inputs = {leaf64({6, 5}, 40 + static_cast<int>(k))};
    for (size_t i = 0; i < params.size(); ++i) {
      // Draws of the parameters' own scale, but away from 0 for the expert codes.
      Tensor t = leaf64(params[i]->shape(), 50 + i, -1, 1);
      inputs.push_back(t);
    }
    EXPECT_TRUE(grad_ok(
        [&](const std::vector<Tensor>& in) {
          for (size_t i = 0; i < params.size(); ++i) *params[i] = in[i + 1];
          return g->forward(in[0]);
        },
        inputs))
        << gate_name(k);
  }
}

TEST(Gates, ProjectedGatesComputeInF32UnderAutocast) {
  for (GateKind k : {GateKind::Cosine, GateKind::L2, GateKind::Linear}) {
    const auto g = make_gate(k, 8, 4);
    const Tensor x = vimoe::testing::uniform({3, 8}, 9);
    AutocastGuard bf16(DType::BF16, /*enabled=*/true);
    const Tensor y = g->forward(x);
    // The linear gate follows autocast like any Linear; the others stay in f32.
    EXPECT_EQ(y.dtype(), k == GateKind::Linear ? DType::BF16 : DType::F32) << gate_name(k);
  }
}

TEST(Gates, InitWeightsIsKeyedByPathAndSeed) {
  const auto a = make_gate(GateKind::Cosine, 8, 4), b = make_gate(GateKind::Cosine, 8, 4);
  a->init_weights("blocks.1.mlp.router", 7);
  b->init_weights("blocks.1.mlp.router", 7);
  for (const auto& [name, t] : a->state_dict())
    EXPECT_EQ(vimoe::testing::max_abs_diff(t, b->state_dict().at(name)), 0.0) << name;
  b->init_weights("blocks.3.mlp.router", 7);
  auto* pa = dynamic_cast<ProjectedGate*>(a.get());
  auto* pb = dynamic_cast<ProjectedGate*>(b.get());
  EXPECT_GT(vimoe::testing::max_abs_diff(pa->experts, pb->experts), 0.0);
  EXPECT_EQ(pa->proj->bias.to_vector<float>(), std::vector<float>(4, 0.0f));
  EXPECT_NEAR(pa->scale().item<double>(), 2.0, 1e-6);
}

TEST(Gates, BadInputNamesTheGateAndTheShapes) {
  EXPECT_VIMOE_ERROR(make_gate(GateKind::Linear, 8, 4)->forward(Tensor::zeros({3, 7})), "LinearGate", "[R, 8]",
                     "[3, 7]");
  EXPECT_VIMOE_ERROR(make_gate(GateKind::Cosine, 8, 4)->forward(Tensor::zeros({3, 8, 1})), "CosineGate",
                     "[3, 8, 1]");
  EXPECT_VIMOE_ERROR(make_gate(GateKind::L2, 8, 4)->forward(Tensor::zeros({2, 9})), "L2Gate", "[2, 9]");
  EXPECT_VIMOE_ERROR(make_gate(GateKind::L2, 0, 4), "ProjectedGate", "dim 0");
}
