// The parameter / MAC counter reproduces the ViMoE paper's model-size table (ViT-S/14 at
// 224x224, 1000 classes, position table at the 16x16 grid, routers included).
#include <gtest/gtest.h>

#include <cmath>

#include "models/config.h"
#include "tests/test_util.h"

using namespace vimoe;
using namespace vimoe::models;

namespace {
ModelSize size_of(int64_t experts, int64_t moe_last, bool shared) {
  ViTConfig v = preset("vit_s14");
  v.num_classes = 1000;
  MoEConfig m;
  m.experts = experts;
  m.shared_expert = shared;
  m.blocks = last_blocks(v.depth, moe_last);
  return model_size(v, m);
}
double millions(int64_t n) { return static_cast<double>(n) / 1e6; }
double giga(int64_t n) { return static_cast<double>(n) / 1e9; }
}  // namespace

TEST(ModelSize, ReproducesThePaperTable) {
  struct Row { int64_t n, l; bool shared; double total, active, gmacs; };
  // gmacs < 0: the table gives no figure for that row.
  const Row rows[] = {{0, 0, false, 22.0, 22.0, 6.14},  {2, 5, false, 27.9, 22.0, -1},
                      {2, 5, true, 33.8, 27.9, 7.65},   {4, 3, false, 32.7, 22.0, -1},
                      {4, 3, true, 36.2, 25.6, 7.05},   {8, 2, false, 38.6, 22.0, -1},
                      {8, 2, true, 40.9, 24.4, 6.74},   {8, 12, true, 135.5, 36.2, 9.77}};
  for (const Row& r : rows) {
    const ModelSize s = size_of(r.n, r.l, r.shared);
    EXPECT_NEAR(millions(s.total_params), r.total, 0.05) << r.n << "/" << r.l << "/" << r.shared;
    EXPECT_NEAR(millions(s.active_params), r.active, 0.05) << r.n << "/" << r.l << "/" << r.shared;
    if (r.gmacs > 0) {
      EXPECT_NEAR(giga(s.macs), r.gmacs, 0.02) << r.n << "/" << r.l << "/" << r.shared;
    }
  }
}

TEST(ModelSize, DenseViTS14MatchesTheDinov2Checkpoint) {
  // The published checkpoint has 22,056,576 parameters: 1370 position rows (37x37 + CLS) and
  // a mask token, no head. Our count has no mask token (it is unused when fine-tuning).
  ViTConfig v = preset("vit_s14");
  v.pos_grid = 37;
  EXPECT_EQ(model_size(v, {}).total_params + 384, 22056576);
}

TEST(ModelSize, PresetsAndPlacement) {
  EXPECT_EQ(preset("vit_b14").width, 768);
  EXPECT_EQ(preset("vit_l14").depth, 24);
  EXPECT_VIMOE_ERROR(preset("vit_h14"), "vit_h14", "vit_s14");
  EXPECT_EQ(last_blocks(12, 2), (std::vector<int64_t>{10, 11}));
  EXPECT_EQ(every_second_block(6), (std::vector<int64_t>{1, 3, 5}));
  EXPECT_VIMOE_ERROR(last_blocks(4, 5), "last_blocks", "4-block");
}
