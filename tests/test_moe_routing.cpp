// The MoE layer's routing options (models/moe.h): gates renormalised or not, expert capacity
// with and without Batch Prioritized Routing (which rows are dropped, and what a dropped row
// passes on), Shazeer's importance + load losses as V-MoE trains them (a hand computation and
// the gradient), the router noise only in training, the gate choice, and the layer's size.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "engine/ops/reduce.h"
#include "engine/ops/routing.h"
#include "models/moe.h"
#include "tests/test_util.h"

using namespace vimoe;
using namespace vimoe::models;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;

namespace {

MoEConfig token_moe(int64_t experts, int64_t k) {
  MoEConfig m;
  m.experts = experts;
  m.top_k = k;
  m.routing = RoutingLevel::Token;
  m.blocks = {0};
  return m;
}

// A layer of width 2 whose linear router is the identity: logits = the token itself.
std::unique_ptr<MoEFFN> identity_router_layer(const MoEConfig& m) {
  auto ffn = std::make_unique<MoEFFN>(2, 3, m);
  ffn->init_experts("moe", 0.5, 3);  // distinct experts
  auto* gate = dynamic_cast<LinearGate*>(ffn->router.get());
  NoGradGuard no_grad;
  gate->weight.copy_(Tensor::from_vector<float>({1, 0, 0, 1}, {2, 2}));
  gate->bias.zero_();
  return ffn;
}

std::vector<float> row(const Tensor& y, int64_t r) { return y.reshape({-1, y.size(-1)}).select(0, r).to_vector<float>(); }

double cv2(const std::vector<double>& v) {
  double m = 0, var = 0;
  for (double x : v) m += x / static_cast<double>(v.size());
  for (double x : v) var += (x - m) * (x - m) / static_cast<double>(v.size());
  return var / (m * m + 1e-10);
}

double Phi(double z) { return 0.5 * (1 + std::erf(z / std::numbers::sqrt2)); }

}  // namespace

TEST(MoERouting, GatesAreTheProbabilitiesUnlessRenormalised) {
  MoEConfig m = token_moe(4, 2);
  const Tensor x = vimoe::testing::uniform({1, 5, 2}, 4);
  for (bool renorm : {false, true}) {
    m.renormalize = renorm;
    const MoEFFN ffn(2, 3, m);
    const MoEFFN::Output out = ffn.forward(x, x.reshape({5, 2}));
    const std::vector<float> g = out.routing.gates.to_vector<float>();
    const std::vector<float> p = out.routing.probs.to_vector<float>();
    const std::vector<int32_t> ids = out.routing.expert_ids.to_vector<int32_t>();
    for (int r = 0; r < 5; ++r) {
      const double p0 = p[r * 4 + ids[r * 2]], p1 = p[r * 4 + ids[r * 2 + 1]];
      const double want0 = renorm ? p0 / (p0 + p1) : p0, want1 = renorm ? p1 / (p0 + p1) : p1;
      EXPECT_NEAR(g[r * 2], want0, 1e-6) << "row " << r << " renorm " << renorm;
      EXPECT_NEAR(g[r * 2 + 1], want1, 1e-6);
    }
  }
}

TEST(MoERouting, CapacityDropsRowsInOrderOrByPriorityAndDroppedRowsPassNothing) {
  // Tokens (logits = tokens): rows 0, 1, 3 prefer expert 0 (top probability 0.95, 0.88, 0.99),
  // row 2 prefers expert 1. Capacity ceil(0.5 * 1 * 4 / 2) = 1 per expert.
  const Tensor x = Tensor::from_vector<float>({3, 0, 2, 0, 0, 1, 5, 0}, {1, 4, 2});
  const Tensor rows = x.reshape({4, 2});
  MoEConfig m = token_moe(2, 1);
  const auto dropless = identity_router_layer(m);
  const Tensor full = dropless->forward(x, rows).y;
  m.capacity_factor = 0.5;
  for (bool bpr : {false, true}) {
    m.bpr = bpr;
    const auto ffn = identity_router_layer(m);
    const MoEFFN::Output out = ffn->forward(x, rows);
    // In row order expert 0 keeps row 0; by priority it keeps row 3, the most confident.
    const std::vector<float> want_keep = bpr ? std::vector<float>{0, 0, 1, 1} : std::vector<float>{1, 0, 1, 0};
    ASSERT_TRUE(out.routing.keep.defined());
    EXPECT_EQ(out.routing.keep.to_vector<float>(), want_keep) << "bpr " << bpr;
    for (int64_t r = 0; r < 4; ++r) {
      if (want_keep[r] == 1) {
        EXPECT_EQ(row(out.y, r), row(full, r)) << "kept row " << r;  // as in the dropless layer
      } else {
        EXPECT_EQ(row(out.y, r), (std::vector<float>{0, 0})) << "dropped row " << r;  // the residual carries it
        EXPECT_EQ(out.routing.gates.to_vector<float>()[r], 0.0f);
      }
    }
  }
  // With a shared expert a dropped row still gets the shared expert's output.
  m.shared_expert = true;
  m.bpr = false;
  const auto shared = identity_router_layer(m);
  const MoEFFN::Output out = shared->forward(x, rows);
  const std::vector<float> only_shared = row(shared->shared->forward(x), 1);
  EXPECT_EQ(row(out.y, 1), only_shared);
}

TEST(MoERouting, CapacityCountsTheBatchsRoutedRows) {
  // Image routing: rows are images. Four images, all to expert 0, capacity factor 1 over two
  // experts: capacity 2, so the last two images are dropped.
  MoEConfig m = token_moe(2, 1);
  m.routing = RoutingLevel::Image;
  m.capacity_factor = 1.0;
  const auto ffn = identity_router_layer(m);
  const Tensor x = Tensor::from_vector<float>({1, 0, 1, 0, 2, 0, 2, 0, 3, 0, 3, 0, 4, 0, 4, 0}, {4, 2, 2});
  const MoEFFN::Output out = ffn->forward(x, x.select(1, 0));
  EXPECT_EQ(out.routing.keep.to_vector<float>(), (std::vector<float>{1, 1, 0, 0}));
}

TEST(MoERouting, ImportanceLoadLossByHand) {
  // R = 3 rows, N = 3 experts, k = 1, sigma = 0.5; "noisy" is given, so the value is exact.
  const std::vector<double> clean = {1.0, 0.2, -0.5, 0.1, 0.4, 0.3, -1.0, 0.0, 2.0};
  const std::vector<double> noise = {0.1, -0.2, 0.05, 0.0, 0.3, -0.1, 0.2, 0.1, -0.3};
  std::vector<double> noisy(9);
  for (int i = 0; i < 9; ++i) noisy[i] = clean[i] + noise[i];
  const double sigma = 0.5;
  for (int64_t k : {1, 2}) {
    std::vector<double> importance(3, 0), load(3, 0);
    std::vector<int32_t> ids;
    for (int r = 0; r < 3; ++r) {
      double z = 0;
      for (int i = 0; i < 3; ++i) z += std::exp(noisy[r * 3 + i]);
      for (int i = 0; i < 3; ++i) importance[i] += std::exp(noisy[r * 3 + i]) / z;
      // Experts by descending noisy logit; the k-th is the threshold.
      std::vector<int32_t> order = {0, 1, 2};
      std::sort(order.begin(), order.end(), [&](int a, int b) { return noisy[r * 3 + a] > noisy[r * 3 + b]; });
      for (int j = 0; j < k; ++j) ids.push_back(order[j]);
      const double t = noisy[r * 3 + order[k - 1]];
      for (int i = 0; i < 3; ++i) load[i] += 1 - Phi((t - clean[r * 3 + i]) / sigma);
    }
    const double want = (cv2(importance) + cv2(load)) / 2;
    const Tensor L = Tensor::from_vector<double>(clean, {3, 3}), Nz = Tensor::from_vector<double>(noisy, {3, 3});
    const Tensor got = importance_load_loss(L, Nz, Tensor::from_vector<int32_t>(ids, {3, k}), sigma);
    EXPECT_EQ(got.dim(), 0);
    EXPECT_NEAR(got.item<double>(), want, 1e-12) << "k " << k;
    // The ids route_topk picks are the same ones.
    EXPECT_EQ(route_topk(Nz, k, false, 0).expert_ids.to_vector<int32_t>(), ids);
  }
}

TEST(MoERouting, ImportanceLoadLossIsZeroWhenBalancedAndHasFiniteDifferenceGradients) {
  // Two rows mirroring each other over two experts: equal importance and load, CV 0.
  const Tensor sym = Tensor::from_vector<double>({1, -1, -1, 1}, {2, 2});
  EXPECT_NEAR(importance_load_loss(sym, sym, Tensor::from_vector<int32_t>({0, 1}, {2, 1}), 0.5).item<double>(), 0,
              1e-15);
  for (int64_t k : {1, 2, 3}) {
    const Tensor logits = leaf64({5, 4}, 30 + k, -1, 1);
    const Tensor noisy = leaf64({5, 4}, 40 + k, -1, 1);
    const Tensor ids = route_topk(noisy.detach(), k, false, 0).expert_ids;
    EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) { return importance_load_loss(in[0], in[1], ids, 0.25); },
                        {logits, noisy}))
        << "k " << k;
  }
  EXPECT_VIMOE_ERROR(importance_load_loss(Tensor::zeros({2, 3}), Tensor::zeros({2, 4}),
                                          Tensor::zeros({2, 1}, DType::I32), 0.5),
                     "importance_load_loss", "[2, 3]", "[2, 4]");
  EXPECT_VIMOE_ERROR(importance_load_loss(Tensor::zeros({2, 3}), Tensor::zeros({2, 3}),
                                          Tensor::zeros({2, 4}, DType::I32), 0.5),
                     "importance_load_loss", "1 <= k <= 3");
}

TEST(MoERouting, TheRouterNoiseIsOnlyInTrainingAndTheLossFollowsTheChoice) {
  MoEConfig m = token_moe(4, 1);
  m.balance = BalanceLoss::ImportanceLoad;
  m.aux_alpha = 0.5;
  MoEFFN ffn(6, 8, m);
  const Tensor logits = vimoe::testing::uniform({16, 4}, 8);
  ffn.eval();
  const Routing a = ffn.route(logits), b = ffn.route(logits);
  EXPECT_EQ(a.aux_loss.item<double>(), b.aux_loss.item<double>());
  // Without noise, the loss is importance_load_loss(logits, logits) * alpha.
  EXPECT_NEAR(a.aux_loss.item<double>(), 0.5 * importance_load_loss(logits, logits, a.expert_ids, 0.25).item<double>(),
              1e-7);
  ffn.train();
  const Routing c = ffn.route(logits), d = ffn.route(logits);
  EXPECT_NE(c.aux_loss.item<double>(), d.aux_loss.item<double>());
  // The switch loss, and none.
  m.balance = BalanceLoss::Switch;
  MoEFFN sw(6, 8, m);
  EXPECT_NEAR(sw.route(logits).aux_loss.item<double>(), route_topk(logits, 1, false, 0.5).aux_loss.item<double>(),
              1e-7);
  m.balance = BalanceLoss::None;
  MoEFFN none(6, 8, m);
  EXPECT_EQ(none.route(logits).aux_loss.item<double>(), 0.0);
}

TEST(MoERouting, TheGateIsSelectableAndCounted) {
  for (GateKind g : {GateKind::Linear, GateKind::Cosine, GateKind::L2}) {
    MoEConfig m = token_moe(4, 2);
    m.gate = g;
    m.gate_dim = g == GateKind::Linear ? 0 : 5;
    MoEFFN ffn(12, 24, m);
    EXPECT_EQ(ffn.router->kind(), g);
    const MoELayerSize size = moe_layer_size(12, 24, m);
    EXPECT_EQ(size.total_params, ffn.num_parameters()) << gate_name(g);
    EXPECT_EQ(size.total_params - size.active_params, 2 * mlp_params(12, 24));
    EXPECT_EQ(size.router_macs, g == GateKind::Linear ? 12 * 4 : 12 * 5 + 5 * 4);
    const Tensor x = vimoe::testing::uniform({2, 3, 12}, 1);
    const MoEFFN::Output out = ffn.forward(x, x.reshape({6, 12}));
    EXPECT_EQ(out.y.shape(), x.shape());
    if (g != GateKind::Linear) EXPECT_EQ(ffn.state_dict().count("router.proj.weight"), 1u);
    else EXPECT_EQ(ffn.state_dict().count("router.weight"), 1u);
  }
}

TEST(MoERouting, BadCapacityOptions) {
  MoEConfig m = token_moe(4, 1);
  m.bpr = true;
  EXPECT_VIMOE_ERROR(MoEFFN(4, 8, m), "MoEFFN", "BPR needs a capacity");
  m.capacity_factor = -1;
  EXPECT_VIMOE_ERROR(MoEFFN(4, 8, m), "MoEFFN", "capacity factor -1");
}
