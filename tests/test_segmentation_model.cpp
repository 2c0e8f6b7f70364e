// The segmentation model pieces: the ViT's per-patch head (padding to the patch grid, bilinear
// upsampling, cropping), its size at 512 x 512 against the ViMoE paper's Table 4, sliding-window
// inference and the patch classes the routing analyses count tokens under.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/ops/index.h"
#include "engine/ops/interpolate.h"
#include "engine/ops/loss.h"
#include "models/segmentation.h"
#include "models/vit.h"
#include "tests/test_util.h"
#include "tests/tiny_vimoe.h"

using namespace vimoe;
using namespace vimoe::models;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

ViTConfig seg_vit(int64_t classes = 3) {
  ViTConfig v = vimoe::testing::tiny_vit(classes);
  v.layer_scale_init = ViTConfig{}.layer_scale_init;
  v.head_input = HeadInput::Patches;
  return v;
}

MoEConfig token_moe() {
  MoEConfig m;
  m.experts = 3;
  m.top_k = 2;
  m.shared_expert = true;
  m.routing = RoutingLevel::Token;
  m.blocks = {1};
  return m;
}

// [B, C, H, W] with zeros appended to Hp x Wp.
Tensor zero_pad(const Tensor& x, int64_t Hp, int64_t Wp) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = concat({x, Tensor::zeros({B, C, H, Wp - W}, TensorOptions(x.dtype()))}, 3);
  return concat({y, Tensor::zeros({B, C, Hp - H, Wp}, TensorOptions(x.dtype()))}, 2);
}

}  // namespace

TEST(SegmentationHead, LogitsCoverTheImageAtAnySize) {
  VisionTransformer model(seg_vit(), token_moe());
  model.init_weights(3);
  model.eval();  // a 3 x 2 grid against the 2 x 2 table: resampled, inference only
  const Tensor x = uniform({2, 2, 10, 7}, 5);
  const ModelOutput out = model.forward(x);
  ASSERT_EQ(out.logits.shape(), (Shape{2, 3, 10, 7}));
  // The head by hand: a linear layer on the 3 x 2 patch tokens, the map upsampled to the
  // padded 12 x 8 and cropped.
  const Tensor grid = model.head->forward(out.features.narrow(1, 1, 6)).view({2, 3, 2, 3}).permute({0, 3, 1, 2});
  EXPECT_TRUE(all_close(out.logits, interpolate_bilinear(grid, 12, 8).narrow(2, 0, 10).narrow(3, 0, 7)));
  // Padding is zeros at the bottom and right: the padded image gives the same logits there.
  const ModelOutput padded = model.forward(zero_pad(x, 12, 8));
  EXPECT_TRUE(all_close(out.logits, padded.logits.narrow(2, 0, 10).narrow(3, 0, 7)));
  // Token routing over the 6 patches (after CLS), one grid cell per 4 pixels.
  ASSERT_EQ(out.routing_grids.size(), 1u);
  EXPECT_EQ(out.routing_grids[0].first, 1);
  EXPECT_EQ(out.routing_grids[0].height, 3);
  EXPECT_EQ(out.routing_grids[0].width, 2);
  EXPECT_EQ(out.routing_grids[0].cell, 4);
}

TEST(SegmentationHead, PixelLossGradientReachesTheImage) {
  VisionTransformer model(seg_vit(), token_moe());
  model.init_weights(4);
  model.to(DType::F64);
  const Tensor target = Tensor::from_vector<int64_t>({0, 1, 2, 255, 1, 1, 0, 2, 255, 2, 0, 1,  //
                                                      2, 2, 1, 0, 0, 255, 1, 1, 2, 0, 0, 1,   //
                                                      1, 0, 2, 2, 1, 0, 255, 0, 1, 2, 2, 0,   //
                                                      0, 1, 1, 2, 0, 2, 1, 255, 0, 1, 2, 2},
                                                     {1, 6, 8});
  // Odd size (6 x 8 pads to 8 x 8): the crop and the upsampling are on the path.
  auto loss = [&](const std::vector<Tensor>& in) { return pixel_cross_entropy(model.forward(in[0]).logits, target); };
  EXPECT_TRUE(vimoe::testing::grad_ok(loss, {vimoe::testing::leaf64({1, 2, 6, 8}, 7, -1, 1)}, 1e-6, 1e-4));
  model.zero_grad();
  loss({uniform({1, 2, 6, 8}, 8, -1, 1, DType::F64)}).backward();
  ASSERT_TRUE(model.head->weight.grad().defined());
  EXPECT_GT(vimoe::testing::max_abs_diff(model.head->weight.grad(), Tensor::zeros({3, 8}, TensorOptions(DType::F64))), 0.0);
}

// The ViMoE paper's Table 4 counts multiply-adds once: DINOv2 ViT-S/14 with a linear head
// on 150 ADE20K classes at 512 x 512 (padded to 518: a 37 x 37 grid) is 47G; ViMoE with 8
// experts in the last block and a shared expert is 50G (top-2: three FFNs in that block).
TEST(SegmentationHead, SizeAt512MatchesTheViMoETable) {
  ViTConfig v = preset("vit_s14");
  v.image_size = 512;
  v.num_classes = 150;
  v.head_input = HeadInput::Patches;
  EXPECT_EQ(v.grid(), 37);
  const ModelSize dense = model_size(v, {});
  EXPECT_NEAR(static_cast<double>(dense.macs) / 1e9, 47.0, 0.25);
  MoEConfig m;
  m.experts = 8;
  m.top_k = 2;
  m.shared_expert = true;
  m.routing = RoutingLevel::Token;
  m.blocks = last_blocks(v.depth, 1);
  EXPECT_NEAR(static_cast<double>(model_size(v, m).macs) / 1e9, 50.0, 0.25);
  // The head itself: 1369 patches x 384 x 150.
  ViTConfig backbone = v;
  backbone.num_classes = 0;
  EXPECT_EQ(dense.macs - model_size(backbone, {}).macs, 1369 * 384 * 150);
}

TEST(SlidingWindows, FollowMmsegsGrid) {
  // mmseg at 512 with stride 341 over a 512 x 683 image: two windows, the second flush right.
  std::vector<Window> w = sliding_windows(512, 683, 512, 341);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].left, 0);
  EXPECT_EQ(w[1].left, 171);
  EXPECT_EQ(w[1].width, 512);
  // 100 x 100 in 64-windows at 48: rows and columns start at 0 and 36.
  w = sliding_windows(100, 100, 64, 48);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[3].top, 36);
  EXPECT_EQ(w[3].left, 36);
  // An image smaller than the window is one window of its own size.
  w = sliding_windows(30, 40, 64, 48);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].height, 30);
  EXPECT_EQ(w[0].width, 40);
  EXPECT_THROW(sliding_windows(30, 40, 64, 65), Error);
}

TEST(Segment, SlidingWindowsAverageWhereTheyOverlap) {
  VisionTransformer model(seg_vit(), token_moe());
  model.init_weights(6);
  model.eval();
  NoGradGuard no_grad;
  const Tensor x = uniform({1, 2, 8, 16}, 9);
  const Tensor left = model.forward(x.narrow(3, 0, 8).contiguous()).logits;
  const Tensor mid = model.forward(x.narrow(3, 4, 8).contiguous()).logits;
  const Tensor right = model.forward(x.narrow(3, 8, 8).contiguous()).logits;
  int windows = 0;
  const Tensor slid = segment(model, x, {true, 8, 4}, [&](const ModelOutput& out, const Window& w) {
    EXPECT_EQ(out.logits.size(3), 8);
    EXPECT_EQ(w.left, 4 * windows++);
  });
  EXPECT_EQ(windows, 3);
  ASSERT_EQ(slid.shape(), (Shape{1, 3, 8, 16}));
  EXPECT_TRUE(all_close(slid.narrow(3, 0, 4), left.narrow(3, 0, 4)));
  EXPECT_TRUE(all_close(slid.narrow(3, 4, 4), (left.narrow(3, 4, 4) + mid.narrow(3, 0, 4)) * 0.5));
  EXPECT_TRUE(all_close(slid.narrow(3, 8, 4), (mid.narrow(3, 4, 4) + right.narrow(3, 0, 4)) * 0.5));
  EXPECT_TRUE(all_close(slid.narrow(3, 12, 4), right.narrow(3, 4, 4)));
  // Non-overlapping windows tile the image.
  const Tensor tiled = segment(model, x, {true, 8, 8});
  EXPECT_TRUE(all_close(tiled, concat({left, right}, 3)));
  // Whole-image inference is one forward.
  EXPECT_TRUE(all_close(segment(model, x, {}), model.forward(x).logits));
}

TEST(PatchClasses, MostFrequentLabelUnderEachPatch) {
  const int64_t I = 255;
  const std::vector<int64_t> labels = {0, 0, 1, 1,  //
                                       0, 1, 1, 1,  //
                                       2, 2, I, I,  //
                                       2, I, I, I};
  const Window whole{0, 0, 4, 4};
  EXPECT_EQ(patch_classes(labels, 4, 4, 4, 4, whole, 2, 2, 2, 3, I), (std::vector<int64_t>{0, 1, 2, -1}));
  // A label map at half the input's resolution reads one label per 2 x 2 input pixels.
  EXPECT_EQ(patch_classes({0, 1, 2, I}, 2, 2, 4, 4, whole, 2, 2, 2, 3, I), (std::vector<int64_t>{0, 1, 2, -1}));
  // A window over the lower half: its 1 x 2 grid.
  EXPECT_EQ(patch_classes(labels, 4, 4, 4, 4, {2, 0, 2, 4}, 1, 2, 2, 3, I), (std::vector<int64_t>{2, -1}));
  // A 3 x 3 image on a 2 x 2 grid of 2-pixel patches: the last row and column lie partly in
  // padding; a tie (one 0, one 1) goes to the lower class.
  EXPECT_EQ(patch_classes({1, 1, 0, 1, 1, 1, 0, 1, 2}, 3, 3, 3, 3, {0, 0, 3, 3}, 2, 2, 2, 3, I),
            (std::vector<int64_t>{1, 0, 0, 2}));
  EXPECT_THROW(patch_classes({0, 5, 0, 0}, 2, 2, 2, 2, {0, 0, 2, 2}, 1, 1, 2, 3, I), Error);
}
