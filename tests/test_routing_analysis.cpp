// The routing analyses (models/routing_analysis.h) on hand-computed counts, and the token-
// routing size figures they give against the ViMoE and Mobile V-MoE papers.
#include <gtest/gtest.h>

#include <cmath>

#include "models/config.h"
#include "models/routing_analysis.h"
#include "tests/test_util.h"

using namespace vimoe;
using namespace vimoe::models;

namespace {
// Four images over four experts; expert 3 is never used.
ImageExpertCounts hand_counts() {
  ImageExpertCounts c(4);
  c.add_image({4, 2, 0, 0});
  c.add_image({0, 3, 1, 0});
  c.add_image({2, 2, 0, 0});
  c.add_image({0, 0, 5, 0});
  return c;
}
}  // namespace

TEST(RoutingAnalysis, ExpertPairSimilarityOnAHandComputedExample) {
  const ImageExpertCounts c = hand_counts();
  const std::vector<double> s = expert_pair_similarity(c);
  ASSERT_EQ(s.size(), 16u);
  auto S = [&](int i, int j) { return s[i * 4 + j]; };
  // S_01: images 0, 1, 2 hold expert 0 or 1: (4+2-2) + (0+3-3) + (2+2-0) = 8 over 6 + 3 + 4 = 13.
  EXPECT_DOUBLE_EQ(S(0, 1), 8.0 / 13);
  // S_12: (2+0-2) + (3+1-2) + (2+0-2) + (0+5-5) = 2 over 2 + 4 + 2 + 5 = 13.
  EXPECT_DOUBLE_EQ(S(1, 2), 2.0 / 13);
  EXPECT_DOUBLE_EQ(S(0, 2), 0.0) << "experts 0 and 2 never share an image";
  EXPECT_DOUBLE_EQ(S(0, 3), 0.0) << "a used expert against an unused one";
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(S(i, i), 1.0);
  EXPECT_TRUE(std::isnan(S(3, 3))) << "neither expert of the pair ever appears";
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j)
      if (!std::isnan(S(i, j))) {
        EXPECT_DOUBLE_EQ(S(i, j), S(j, i));
      }
}

TEST(RoutingAnalysis, DistinctExpertsAndActivatedParametersPerImage) {
  const ImageExpertCounts a = hand_counts();
  EXPECT_EQ(distinct_experts(a), (std::vector<int64_t>{2, 2, 2, 1}));
  EXPECT_DOUBLE_EQ(mean_distinct_experts(a), 7.0 / 4);
  ImageExpertCounts b(4);  // a second layer: image 0 reaches every expert, the others one
  b.add_image({1, 1, 1, 1});
  b.add_image({0, 0, 4, 0});
  b.add_image({4, 0, 0, 0});
  b.add_image({0, 4, 0, 0});
  ModelSize size;
  size.total_params = 1000;
  size.expert_params = {10, 20};
  // total - (4 - d_a) * 10 - (4 - d_b) * 20 per image.
  EXPECT_EQ(activated_params_per_image({a, b}, size), (std::vector<int64_t>{1000 - 20 - 0, 1000 - 20 - 60,
                                                                            1000 - 20 - 60, 1000 - 30 - 60}));
  // From an average: 3 routed experts over the two layers is 1.5 per layer, 2.5 unused each.
  EXPECT_DOUBLE_EQ(activated_params_at(size, 4, 3.0), 1000 - 2.5 * 10 - 2.5 * 20);
  EXPECT_DOUBLE_EQ(activated_params_at(size, 4, 8.0), 1000.0);
  EXPECT_VIMOE_ERROR(activated_params_at(size, 4, 9.0), "between 0 and 8", "9");
  EXPECT_VIMOE_ERROR(activated_params_per_image({a}, size), "1 layers", "2 MoE layers");
  EXPECT_VIMOE_ERROR(b.add_image({1, 2}), "expected 4 counts", "found 2");
}

TEST(RoutingAnalysis, RowsPerExpertCdf) {
  const std::vector<std::vector<double>> cdf = rows_per_expert_cdf(hand_counts(), 5);
  ASSERT_EQ(cdf.size(), 4u);
  // Expert 0 takes 4, 0, 2, 0 rows.
  EXPECT_EQ(cdf[0], (std::vector<double>{0.5, 0.5, 0.75, 0.75, 1.0, 1.0}));
  EXPECT_EQ(cdf[3], (std::vector<double>(6, 1.0))) << "an unused expert takes 0 rows of every image";
  EXPECT_VIMOE_ERROR(rows_per_expert_cdf(hand_counts(), 4), "image 3", "5 rows", "0..4");
}

// ViMoE Table 5: token routing with N = 8 in the last 2 blocks (shared expert) of ViT-S/14
// reaches 14.3 routed experts per image over its MoE layers, 38.9M activated parameters; one
// expert per layer (image routing's count) is the 24.4M of the size table, every expert 40.9M.
TEST(RoutingAnalysis, ViMoETable5TokenRoutingActivatedParameters) {
  ViTConfig v = preset("vit_s14");
  v.num_classes = 1000;
  MoEConfig m;
  m.experts = 8;
  m.shared_expert = true;
  m.routing = RoutingLevel::Token;
  m.blocks = last_blocks(v.depth, 2);
  const ModelSize s = model_size(v, m);
  ASSERT_EQ(s.expert_params, (std::vector<int64_t>{1181568, 1181568}));  // 2 x 384 x 1536 + 1536 + 384
  EXPECT_NEAR(activated_params_at(s, 8, 14.3) / 1e6, 38.9, 0.05);
  EXPECT_NEAR(activated_params_at(s, 8, 2.0) / 1e6, 24.4, 0.05);
  EXPECT_EQ(activated_params_at(s, 8, 16.0), static_cast<double>(s.total_params));
}

// Mobile V-MoE's size grid (Daxberger et al.): ViTs of depth {12, 9, 6} x width {384, 192, 96,
// 64} with patch 32 at 224, E = 10 experts in the last 2 blocks; the paper counts FLOPs as two
// per multiply-add and gives 2297 MFLOPs for 12x384 and 54 for 6x64. Ours (no non-linearity or
// softmax counted) is 0.3% and 1.6% lower; the single router adds almost nothing.
TEST(RoutingAnalysis, MobileVMoESizeGrid) {
  auto flops = [](int64_t depth, int64_t width, int64_t heads, int64_t experts) {
    ViTConfig v = preset("vit_s14");
    v.num_classes = 1000;
    v.depth = depth;
    v.width = width;
    v.heads = heads;
    v.mlp_hidden = 4 * width;
    v.patch_size = 32;
    v.pos_grid = 7;
    MoEConfig m;
    m.experts = experts;
    m.single_router = experts > 0;
    if (experts > 0) m.blocks = last_blocks(depth, 2);
    return 2.0 * static_cast<double>(model_size(v, m).macs) / 1e6;
  };
  EXPECT_NEAR(flops(12, 384, 6, 10), 2297, 0.01 * 2297);
  EXPECT_NEAR(flops(6, 64, 2, 10), 54, 0.02 * 54);
  for (int64_t depth : {12, 9, 6})
    for (auto [width, heads] : {std::pair<int64_t, int64_t>{384, 6}, {192, 3}, {96, 3}, {64, 2}}) {
      const double dense = flops(depth, width, heads, 0), moe = flops(depth, width, heads, 10);
      EXPECT_GT(moe, dense) << depth << "x" << width;
      EXPECT_LT(moe, dense * 1.001) << depth << "x" << width << ": top-1 runs one expert, as the dense MLP";
    }
}

TEST(RoutingAnalysis, ClassExpertNmiOnHandComputedTables) {
  // Two classes, two experts: class 0 always to expert 0, class 1 split evenly. p(c) = (1/2, 1/2),
  // p(e) = (3/4, 1/4); I = 1/2 ln(4/3) + 1/4 ln(2/3) + 1/4 ln 2, H(C) = ln 2,
  // H(E) = -(3/4 ln 3/4 + 1/4 ln 1/4).
  const double mi = 0.5 * std::log(4.0 / 3) + 0.25 * std::log(2.0 / 3) + 0.25 * std::log(2.0);
  const double hc = std::log(2.0), he = -(0.75 * std::log(0.75) + 0.25 * std::log(0.25));
  EXPECT_NEAR(class_expert_nmi({{2, 0}, {1, 1}}), mi / ((hc + he) / 2), 1e-12);
  // One-to-one (any permutation of the experts): 1. Independent of the class: 0.
  EXPECT_NEAR(class_expert_nmi({{0, 5, 0}, {0, 0, 7}, {3, 0, 0}}), 1.0, 1e-12);
  EXPECT_NEAR(class_expert_nmi({{2, 4}, {1, 2}, {3, 6}}), 0.0, 1e-12);
  // A collapsed layer (every row to one expert) specialises nothing, whatever the classes.
  EXPECT_EQ(class_expert_nmi({{4, 0}, {9, 0}}), 0.0);
  // Four classes paired onto two experts: I = H(E) = ln 2, H(C) = ln 4, so 2 ln 2 / (ln 4 + ln 2) = 2/3.
  EXPECT_NEAR(class_expert_nmi({{5, 0}, {5, 0}, {0, 5}, {0, 5}}), 2.0 / 3, 1e-12);
  EXPECT_TRUE(std::isnan(class_expert_nmi({{0, 0}, {0, 0}})));
  EXPECT_TRUE(std::isnan(class_expert_nmi({})));
  EXPECT_THROW(class_expert_nmi({{1, 2}, {3}}), Error);
}
