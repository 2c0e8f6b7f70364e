// Joint segmentation transforms and the loader's label-map batches: nearest-neighbour label
// resizing as PyTorch computes it, mmseg's keep-ratio sizes, a planted image / label pattern
// that stays aligned through rescale, crop and flip, cat_max_ratio's redraws, padding,
// photometric distortion; batches of label maps identical for any worker count, and the
// options a segmentation dataset refuses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "data/loader.h"
#include "data/seg_transforms.h"
#include "tests/test_data_util.h"

using namespace vimoe;
using namespace vimoe::data;
using vimoe::testing::error_of;

namespace {

void expect_has(const std::string& msg, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(msg.empty()) << "expected an error";
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg << "\n lacks: " << p;
}

Image mask_of(int64_t h, int64_t w, const std::vector<uint8_t>& values) {
  Image m(h, w, 1);
  m.pixels = values;
  return m;
}

RandomStream stream(uint64_t seed) { return RandomStream(seed, StreamPurpose::User, 0, 0); }

// h x w: image channel 0 = x / w, channel 1 = y / h (linear, so bilinear resampling keeps them
// exact away from the borders), channel 2 = 0.1 x the label; the label `cls(y, x)`.
SegPair planted(int64_t h, int64_t w, const std::function<uint8_t(int64_t, int64_t)>& cls) {
  SegPair p{FloatImage(3, h, w), Image(h, w, 1)};
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      p.mask.at(y, x, 0) = cls(y, x);
      p.image.at(0, y, x) = static_cast<float>(x) / static_cast<float>(w);
      p.image.at(1, y, x) = static_cast<float>(y) / static_cast<float>(h);
      p.image.at(2, y, x) = 0.1f * static_cast<float>(cls(y, x));
    }
  return p;
}

// The largest share one class has of the labelled (not `ignore`) pixels, and how many classes.
std::pair<double, int> max_share(const Image& m, uint8_t ignore) {
  int64_t counts[256] = {}, total = 0;
  for (uint8_t v : m.pixels)
    if (v != ignore) ++counts[v], ++total;
  int64_t most = 0;
  int classes = 0;
  for (int64_t c : counts) most = std::max(most, c), classes += c > 0;
  return {total ? static_cast<double>(most) / static_cast<double>(total) : 0.0, classes};
}

}  // namespace

TEST(SegTransforms, ResizeNearestAsPyTorch) {
  // Worked by hand from src = floor(dst * in / out), as F.interpolate(mode="nearest").
  const Image m = mask_of(2, 3, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(resize_nearest(m, 4, 6).pixels,
            (std::vector<uint8_t>{0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 3, 3, 4, 4, 5, 5}));
  // 2x3 -> 1x2: row floor(0 * 2) = 0; columns floor(0 * 1.5) = 0, floor(1 * 1.5) = 1.
  EXPECT_EQ(resize_nearest(m, 1, 2).pixels, (std::vector<uint8_t>{0, 1}));
  std::vector<uint8_t> v16(16);
  for (int i = 0; i < 16; ++i) v16[i] = static_cast<uint8_t>(i);
  // 4x4 -> 2x2: rows and columns 0 and 2.
  EXPECT_EQ(resize_nearest(mask_of(4, 4, v16), 2, 2).pixels, (std::vector<uint8_t>{0, 2, 8, 10}));
  // 1x5 -> 1x3: floor(0), floor(5/3) = 1, floor(10/3) = 3.
  EXPECT_EQ(resize_nearest(mask_of(1, 5, {10, 11, 12, 13, 14}), 1, 3).pixels, (std::vector<uint8_t>{10, 11, 13}));
  // 3 -> 7 columns: floor(x * 3 / 7) for x = 0..6 is 0 0 0 1 1 2 2.
  EXPECT_EQ(resize_nearest(mask_of(1, 3, {7, 8, 9}), 1, 7).pixels, (std::vector<uint8_t>{7, 7, 7, 8, 8, 9, 9}));
  EXPECT_EQ(resize_nearest(m, 2, 3).pixels, m.pixels);
  EXPECT_THROW(resize_nearest(m, 0, 3), Error);
}

TEST(SegTransforms, ResizeNearestInventsNoValue) {
  RandomStream rng = stream(5);
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t h = rng.randint(1, 30), w = rng.randint(1, 30);
    Image m(h, w, 1);
    for (uint8_t& v : m.pixels) v = rng.bernoulli(0.2) ? 255 : static_cast<uint8_t>(rng.randint(0, 150));
    const std::set<uint8_t> in(m.pixels.begin(), m.pixels.end());
    const Image out = resize_nearest(m, rng.randint(1, 60), rng.randint(1, 60));
    for (uint8_t v : out.pixels) ASSERT_TRUE(in.count(v)) << "value " << int(v) << " is not in the input";
  }
}

TEST(SegTransforms, RescaleSizeAsMmseg) {
  // scale = min(long / max(h, w), short / min(h, w)), sides int(side * scale + 0.5).
  EXPECT_EQ(rescale_size(512, 683, 2048, 512), (std::pair<int64_t, int64_t>{512, 683}));
  EXPECT_EQ(rescale_size(360, 480, 2048, 512), (std::pair<int64_t, int64_t>{512, 683}));  // 480 * 512/360 = 682.7
  EXPECT_EQ(rescale_size(360, 480, 512, 2048), (std::pair<int64_t, int64_t>{512, 683})) << "either order";
  EXPECT_EQ(rescale_size(480, 360, 2048, 512), (std::pair<int64_t, int64_t>{683, 512})) << "portrait: 682.7 rounds up";
  EXPECT_EQ(rescale_size(1000, 100, 2048, 512), (std::pair<int64_t, int64_t>{2048, 205}))  // the long side binds
      << "a tall image";
  EXPECT_EQ(rescale_size(375, 500, 1024, 256), (std::pair<int64_t, int64_t>{256, 341}));  // 341.33
  EXPECT_THROW(rescale_size(0, 5, 10, 10), Error);
}

// The image and its label move together: after random rescale, crop and flip, wherever the
// label map is uniform around a pixel, the image there still holds 0.1 x that label; padding
// is image 0 under the ignore index; and flipped as well as unflipped outcomes occur.
// "Around" is 5 x 5: with nearest's floor(dst * in / out) against the bilinear image's
// half-pixel centres (in PyTorch and cv2 alike), image pixels up to (scale + 1) / 2 from a
// label edge blend classes, 1.5 at the largest scale here.
TEST(SegTransforms, PlantedPatternSurvivesRescaleCropAndFlip) {
  // 12 x 12 blocks, of classes that differ from every neighbour's.
  const SegPair base = planted(48, 72, [](int64_t y, int64_t x) { return static_cast<uint8_t>((y / 12 * 3 + x / 12) % 7); });
  const PairTransform t = segtf::compose({segtf::random_rescale(72, 48, {0.5, 2.0}),
                                          segtf::random_crop(40, 40, 255, 0.75), segtf::random_hflip(0.5)});
  int flipped = 0, padded = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    RandomStream rng = stream(seed);
    const SegPair p = t(base, rng);
    ASSERT_EQ(p.image.height, 40);
    ASSERT_EQ(p.image.width, 40);
    ASSERT_EQ(p.mask.height, 40);
    ASSERT_EQ(p.mask.width, 40);
    int64_t checked = 0;
    for (int64_t y = 2; y < 38; ++y)
      for (int64_t x = 2; x < 38; ++x) {
        const uint8_t v = p.mask.at(y, x, 0);
        bool uniform = true;
        for (int dy = -2; dy <= 2; ++dy)
          for (int dx = -2; dx <= 2; ++dx) uniform &= p.mask.at(y + dy, x + dx, 0) == v;
        if (!uniform) continue;
        if (v == 255) {
          EXPECT_EQ(p.image.at(2, y, x), 0.0f) << "padding: image 0 under the ignore index";
          continue;
        }
        ASSERT_LT(v, 7) << "seed " << seed;
        EXPECT_NEAR(p.image.at(2, y, x), 0.1f * v, 1e-5) << "seed " << seed << " at " << y << "," << x;
        ++checked;
      }
    EXPECT_GT(checked, 0) << "seed " << seed;
    padded += p.mask.at(39, 39, 0) == 255;
    flipped += p.image.at(0, 5, 2) > p.image.at(0, 5, 3);  // x / w decreasing
  }
  EXPECT_GT(flipped, 5);
  EXPECT_LT(flipped, 35);
  EXPECT_GT(padded, 0) << "ratios below 40/48 leave the image smaller than the crop";
}

TEST(SegTransforms, RandomRescaleKeepsTheAspectRatio) {
  const SegPair base = planted(48, 72, [](int64_t y, int64_t x) { return static_cast<uint8_t>((x + y) % 3); });
  const PairTransform t = segtf::random_rescale(72, 48, {0.5, 2.0});
  int64_t lowest = 1000, highest = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    RandomStream rng = stream(seed);
    const SegPair p = t(base, rng);
    // The ratio scales (72, 48) to (int(72 r), int(48 r)); the image follows at 48 x 72 r.
    ASSERT_GE(p.image.height, 24);
    ASSERT_LE(p.image.height, 96);
    EXPECT_NEAR(static_cast<double>(p.image.width), 1.5 * static_cast<double>(p.image.height), 1.0);
    EXPECT_EQ(p.mask.pixels, resize_nearest(base.mask, p.image.height, p.image.width).pixels);
    lowest = std::min(lowest, p.image.height), highest = std::max(highest, p.image.height);
  }
  EXPECT_LT(lowest, 32);
  EXPECT_GT(highest, 80);
}

TEST(SegTransforms, CropPadsBottomRightWithZeroAndIgnore) {
  const SegPair p = planted(5, 6, [](int64_t y, int64_t x) { return static_cast<uint8_t>(y + x); });
  RandomStream rng = stream(1);
  const SegPair c = segtf::random_crop(8, 9, 200)(p, rng);
  ASSERT_EQ(c.image.height, 8);
  ASSERT_EQ(c.image.width, 9);
  for (int64_t y = 0; y < 8; ++y)
    for (int64_t x = 0; x < 9; ++x) {
      const bool inside = y < 5 && x < 6;
      EXPECT_EQ(c.mask.at(y, x, 0), inside ? y + x : 200) << y << "," << x;
      for (int64_t ch = 0; ch < 3; ++ch) EXPECT_EQ(c.image.at(ch, y, x), inside ? p.image.at(ch, y, x) : 0.0f);
    }
  // A window wider than the image but shorter: cropped in height, padded in width.
  const SegPair d = segtf::random_crop(3, 8, 200)(p, rng);
  ASSERT_EQ(d.mask.height, 3);
  EXPECT_EQ(d.mask.at(0, 7, 0), 200);
  EXPECT_EQ(d.mask.at(0, 5, 0) - d.mask.at(0, 0, 0), 5) << "all six columns, in place";
}

TEST(SegTransforms, CatMaxRatioRedrawsUnbalancedWindows) {
  const PairTransform free_crop = segtf::random_crop(4, 4, 255), balanced_crop = segtf::random_crop(4, 4, 255, 0.75);
  // Every window of a checkerboard is balanced (share 0.5): the first draw stands.
  const SegPair checker = planted(20, 20, [](int64_t y, int64_t x) { return static_cast<uint8_t>((x + y) % 2); });
  for (uint64_t seed = 0; seed < 10; ++seed) {
    RandomStream a = stream(seed), b = stream(seed);
    EXPECT_EQ(balanced_crop(checker, a).image.values, free_crop(checker, b).image.values) << "seed " << seed;
  }
  // A window of a single class is redrawn (mmseg needs two classes): on a one-class map every
  // draw fails, and the 11th window is kept, which is (nearly always) elsewhere.
  const SegPair flat = planted(20, 20, [](int64_t, int64_t) { return uint8_t{3}; });
  int moved = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    RandomStream a = stream(seed), b = stream(seed);
    moved += balanced_crop(flat, a).image.values != free_crop(flat, b).image.values;
  }
  EXPECT_GE(moved, 18);
  // 90% one class: every tenth column is class 1. A 20 x 3 window is balanced (2/3 < 0.75)
  // where it holds such a column (3 windows in 10); redrawing finds one almost always.
  const SegPair sparse = planted(20, 40, [](int64_t, int64_t x) { return static_cast<uint8_t>(x % 10 == 0); });
  const PairTransform strip = segtf::random_crop(20, 3, 255), balanced_strip = segtf::random_crop(20, 3, 255, 0.75);
  int balanced = 0, balanced_without = 0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    RandomStream a = stream(seed), b = stream(seed);
    const auto [share, classes] = max_share(balanced_strip(sparse, a).mask, 255);
    EXPECT_TRUE(share < 0.75 || classes == 1) << "seed " << seed << ": a window is balanced or single-class here";
    balanced += share < 0.75;
    balanced_without += max_share(strip(sparse, b).mask, 255).first < 0.75;
  }
  EXPECT_GE(balanced, 45);
  EXPECT_LE(balanced_without, 25);
  // Ignored pixels do not count: class 0 and ignore half and half is a single class.
  const SegPair half_ignored = planted(20, 20, [](int64_t, int64_t x) { return static_cast<uint8_t>(x % 2 ? 255 : 0); });
  int moved_ignored = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    RandomStream a = stream(seed), b = stream(seed);
    moved_ignored += balanced_crop(half_ignored, a).image.values != free_crop(half_ignored, b).image.values;
  }
  EXPECT_GE(moved_ignored, 18);
}

TEST(SegTransforms, HflipFlipsImageAndLabel) {
  SegPair p{FloatImage(3, 2, 3), mask_of(2, 3, {0, 1, 2, 3, 4, 5})};
  for (int i = 0; i < 18; ++i) p.image.values[i] = 0.01f * static_cast<float>(i);
  RandomStream rng = stream(1);
  const SegPair f = segtf::random_hflip(1.0)(p, rng);
  EXPECT_EQ(f.mask.pixels, (std::vector<uint8_t>{2, 1, 0, 5, 4, 3}));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 2; ++y)
      for (int64_t x = 0; x < 3; ++x) EXPECT_EQ(f.image.at(c, y, x), p.image.at(c, y, 2 - x));
  const SegPair g = segtf::random_hflip(0.0)(p, rng);
  EXPECT_EQ(g.mask.pixels, p.mask.pixels);
  EXPECT_EQ(g.image.values, p.image.values);
  SegPair bad = p;
  bad.mask = mask_of(1, 3, {0, 1, 2});
  expect_has(error_of([&] { segtf::random_hflip(1.0)(bad, rng); }), {"segtf::random_hflip", "label map"});
}

TEST(SegTransforms, PadToMultiple) {
  const SegPair p = planted(5, 8, [](int64_t y, int64_t x) { return static_cast<uint8_t>(y * 8 + x); });
  RandomStream rng = stream(0);
  const SegPair q = segtf::pad_to_multiple(4, 255)(p, rng);
  ASSERT_EQ(q.mask.height, 8);
  ASSERT_EQ(q.mask.width, 8) << "already a multiple";
  EXPECT_EQ(q.mask.at(4, 7, 0), 39);
  EXPECT_EQ(q.mask.at(5, 0, 0), 255);
  EXPECT_EQ(q.image.at(1, 7, 3), 0.0f);
  EXPECT_EQ(q.image.at(0, 4, 3), p.image.at(0, 4, 3));
}

TEST(SegTransforms, ResizeMovesTheLabelUnlessEvaluating) {
  const SegPair p = planted(6, 8, [](int64_t y, int64_t x) { return static_cast<uint8_t>(x / 4 + 2 * (y / 3)); });
  RandomStream rng = stream(0);
  const SegPair r = segtf::resize(16, 12)(p, rng);  // scale 2
  ASSERT_EQ(r.image.height, 12);
  ASSERT_EQ(r.image.width, 16);
  EXPECT_EQ(r.mask.pixels, resize_nearest(p.mask, 12, 16).pixels);
  const SegPair e = segtf::resize(16, 12, /*resize_mask=*/false)(p, rng);
  EXPECT_EQ(e.image.height, 12);
  EXPECT_EQ(e.mask.pixels, p.mask.pixels) << "evaluation scores the label at its own resolution";
  SegPair bad = p;
  bad.mask = mask_of(1, 1, {0});
  expect_has(error_of([&] { segtf::random_crop(4, 4, 255)(bad, rng); }), {"segtf::random_crop", "6x8", "1x1"});
  expect_has(error_of([&] { segtf::image_only(tf::resize(3, 3))(p, rng); }), {"segtf::image_only", "6x8", "3x3"});
}

TEST(SegTransforms, PhotometricDistortionStaysInRangeAndFollowsTheStream) {
  SegPair colour{FloatImage(3, 4, 4), mask_of(4, 4, std::vector<uint8_t>(16, 7))};
  RandomStream fill = stream(99);
  for (float& v : colour.image.values) v = static_cast<float>(fill.uniform());
  SegPair grey = colour;
  for (int64_t i = 0; i < 16; ++i) grey.image.values[16 + i] = grey.image.values[32 + i] = grey.image.values[i];
  const PairTransform photo = segtf::photometric_distortion();
  int unchanged = 0;
  std::set<std::vector<float>> outcomes;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    RandomStream a = stream(seed), b = stream(seed), c = stream(seed);
    const SegPair x = photo(colour, a);
    EXPECT_EQ(x.image.values, photo(colour, b).image.values) << "a function of the stream";
    EXPECT_EQ(x.mask.pixels, colour.mask.pixels);
    for (float v : x.image.values) ASSERT_TRUE(v >= 0.0f && v <= 1.0f) << v;
    unchanged += x.image.values == colour.image.values;  // every step drawn off (1 in 16)
    outcomes.insert(x.image.values);
    // Saturation and hue leave grey alone; brightness and contrast treat channels alike.
    const SegPair g = photo(grey, c);
    for (int64_t i = 0; i < 16; ++i) {
      EXPECT_EQ(g.image.values[i], g.image.values[16 + i]);
      EXPECT_EQ(g.image.values[i], g.image.values[32 + i]);
    }
  }
  EXPECT_GT(unchanged, 0);
  EXPECT_LT(unchanged, 16);
  EXPECT_GT(outcomes.size(), 40u);
  SegPair one{FloatImage(1, 2, 2), mask_of(2, 2, {0, 0, 0, 0})};
  RandomStream rng = stream(0);
  expect_has(error_of([&] { photo(one, rng); }), {"photometric_distortion", "1 channels"});
}

namespace {

// Textbook HSV (not OpenCV's table form), for the check below.
void textbook_hsv(const float rgb[3], float& h, float& s, float& v) {
  v = std::max({rgb[0], rgb[1], rgb[2]});
  const float c = v - std::min({rgb[0], rgb[1], rgb[2]});
  s = v > 0 ? c / v : 0;
  h = c == 0 ? 0 : v == rgb[0] ? 60 * std::fmod((rgb[1] - rgb[2]) / c + 6, 6.0f)
                 : v == rgb[1] ? 60 * ((rgb[2] - rgb[0]) / c + 2) : 60 * ((rgb[0] - rgb[1]) / c + 4);
}

void textbook_rgb(float h, float s, float v, float rgb[3]) {
  h = std::fmod(std::fmod(h, 360.0f) + 360.0f, 360.0f);
  const float c = v * s, x = c * (1 - std::fabs(std::fmod(h / 60, 2.0f) - 1)), m = v - c;
  const int sector = std::min(static_cast<int>(h / 60), 5);
  const float table[6][3] = {{c, x, 0}, {x, c, 0}, {0, c, x}, {0, x, c}, {x, 0, c}, {c, 0, x}};
  for (int k = 0; k < 3; ++k) rgb[k] = table[sector][k] + m;
}

}  // namespace

// mmseg's PhotoMetricDistortion restated pixel by pixel, drawing what the transform draws in
// its order: brightness (apply?, delta), contrast (first?, apply?, alpha), saturation (apply?,
// factor), hue (apply?, shift in OpenCV's 2-degree units).
TEST(SegTransforms, PhotometricDistortionAsMmseg) {
  SegPair p{FloatImage(3, 3, 5), mask_of(3, 5, std::vector<uint8_t>(15, 1))};
  RandomStream fill = stream(7);
  for (float& v : p.image.values) v = static_cast<float>(fill.uniform());
  const PairTransform photo = segtf::photometric_distortion();
  for (uint64_t seed = 0; seed < 64; ++seed) {
    RandomStream rng = stream(seed), draws = stream(seed);
    const SegPair out = photo(p, rng);
    const bool brightness = draws.bernoulli(0.5);
    const auto delta = static_cast<float>(draws.uniform(-32.0, 32.0) / 255.0);
    const bool contrast_first = draws.bernoulli(0.5), contrast = draws.bernoulli(0.5);
    const auto alpha = static_cast<float>(draws.uniform(0.5, 1.5));
    const bool saturation = draws.bernoulli(0.5);
    const auto factor = static_cast<float>(draws.uniform(0.5, 1.5));
    const bool hue = draws.bernoulli(0.5);
    const int64_t units = draws.randint(-18, 18);
    for (int64_t i = 0; i < 15; ++i) {
      float rgb[3];
      for (int k = 0; k < 3; ++k) rgb[k] = p.image.values[k * 15 + i];
      auto each = [&](auto f) {
        for (float& v : rgb) v = std::clamp(f(v), 0.0f, 1.0f);
      };
      if (brightness) each([&](float v) { return v + delta; });
      if (contrast && contrast_first) each([&](float v) { return v * alpha; });
      float h = 0, s = 0, v = 0;
      textbook_hsv(rgb, h, s, v);
      if (saturation) s = std::min(s * factor, 1.0f);
      if (hue) h += 2.0f * static_cast<float>(units);
      if (saturation || hue) textbook_rgb(h, s, v, rgb);
      if (contrast && !contrast_first) each([&](float v) { return v * alpha; });
      for (int k = 0; k < 3; ++k)
        EXPECT_NEAR(out.image.values[k * 15 + i], rgb[k], 2e-6) << "seed " << seed << " pixel " << i << " channel " << k;
    }
  }
}

// ---- the loader -----------------------------------------------------------------------------

namespace {

// N in-memory segmentation items, h x w (item `odd_at` is one row taller): label
// (x + 2 y + i) % 6 with 5 meaning unlabelled (255), the image grey at 40 x label; item
// `unreadable_at` throws UnreadableSample.
class PlantedSegmentation : public Dataset {
 public:
  PlantedSegmentation(int64_t n, int64_t h, int64_t w) : n_(n), h_(h), w_(w) {}
  int64_t size() const override { return n_; }
  Sample get(int64_t index) const override {
    check_index(*this, index);
    if (index == unreadable_at_) throw UnreadableSample("item " + std::to_string(index) + " is corrupt");
    const int64_t h = index == odd_at_ ? h_ + 1 : h_;
    Sample s;
    s.image = Image(h, w_, 3);
    s.mask = Image(h, w_, 1);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w_; ++x) {
        const int v = static_cast<int>((x + 2 * y + index) % 6);
        s.mask.at(y, x, 0) = static_cast<uint8_t>(v == 5 ? 255 : v);
        for (int64_t c = 0; c < 3; ++c) s.image.at(y, x, c) = static_cast<uint8_t>(40 * v);
      }
    return s;
  }
  int64_t label(int64_t) const override { return 0; }
  const std::vector<std::string>& class_names() const override { return names_; }
  int64_t ignore_index() const override { return 255; }
  std::string name() const override { return "PlantedSegmentation"; }

  int64_t unreadable_at_ = -1, odd_at_ = -1;

 private:
  int64_t n_, h_, w_;
  std::vector<std::string> names_ = {"a", "b", "c", "d", "e"};
};

class TinyClassification : public Dataset {
 public:
  int64_t size() const override { return 2; }
  Sample get(int64_t) const override { return {Image(2, 2, 3), 0, {}}; }
  int64_t label(int64_t) const override { return 0; }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string name() const override { return "TinyClassification"; }

 private:
  std::vector<std::string> names_ = {"only"};
};

}  // namespace

TEST(SegLoader, BatchesCarryTheLabelMaps) {
  auto ds = std::make_shared<PlantedSegmentation>(5, 3, 4);
  ds->unreadable_at_ = 1;
  LoaderOptions o;
  o.batch_size = 3;
  o.shuffle = false;
  o.num_workers = 0;
  Loader loader(ds, o);
  std::optional<Batch> b = loader.next();
  ASSERT_TRUE(b.has_value());
  ASSERT_TRUE(b->masks.defined());
  EXPECT_EQ(b->masks.dtype(), DType::I64);
  EXPECT_EQ(b->masks.shape(), (Shape{2, 3, 4})) << "item 1 skipped";
  EXPECT_EQ(b->images.shape(), (Shape{2, 3, 3, 4}));
  ASSERT_EQ(b->skipped.size(), 1u);
  EXPECT_EQ(b->indices, (std::vector<int64_t>{0, 2}));
  const std::vector<int64_t> masks = b->masks.to_vector<int64_t>();
  const std::vector<float> images = b->images.to_vector<float>();
  for (int64_t k = 0; k < 2; ++k) {
    const Sample s = ds->get(b->indices[k]);
    for (int64_t p = 0; p < 12; ++p) {
      EXPECT_EQ(masks[k * 12 + p], s.mask.pixels[p]);
      EXPECT_FLOAT_EQ(images[(k * 3 + 1) * 12 + p], static_cast<float>(s.image.pixels[p * 3 + 1]) / 255.0f);
    }
  }
  EXPECT_EQ(b->labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 0}));
  b = loader.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->masks.shape(), (Shape{2, 3, 4})) << "the short last batch";
}

TEST(SegLoader, SameBatchesForAnyWorkerCount) {
  auto ds = std::make_shared<PlantedSegmentation>(7, 10, 12);
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 11;
  o.pair_transform = segtf::compose({segtf::random_rescale(12, 10, {0.5, 2.0}), segtf::random_crop(8, 8, 255, 0.75),
                                     segtf::random_hflip(), segtf::photometric_distortion(),
                                     segtf::normalize({0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f})});
  std::vector<std::pair<std::vector<float>, std::vector<int64_t>>> runs[2];
  for (int workers : {0, 2}) {
    o.num_workers = workers;
    Loader loader(ds, o);
    for (int epoch = 0; epoch < 2; ++epoch)
      while (std::optional<Batch> b = loader.next()) {
        ASSERT_EQ(b->masks.shape(), (Shape{b->images.size(0), 8, 8}));
        ASSERT_EQ(b->images.size(2), 8);
        runs[workers / 2].emplace_back(b->images.to_vector<float>(), b->masks.to_vector<int64_t>());
      }
  }
  ASSERT_EQ(runs[0].size(), 6u);
  EXPECT_TRUE(runs[0] == runs[1]) << "bit-identical batches for 0 and 2 workers";
  EXPECT_FALSE(runs[0][0] == runs[0][3]) << "the epochs draw anew";
}

TEST(SegLoader, RefusesOptionsOfTheOtherKindOfDataset) {
  auto seg = std::make_shared<PlantedSegmentation>(2, 2, 2);
  LoaderOptions with_transform;
  with_transform.transform = tf::random_hflip();
  expect_has(error_of([&] { Loader(seg, with_transform); }), {"PlantedSegmentation", "label maps", "pair_transform"});
  LoaderOptions with_mix;
  with_mix.mix = MixConfig{};
  expect_has(error_of([&] { Loader(seg, with_mix); }), {"PlantedSegmentation", "mixing"});
  LoaderOptions with_pairs;
  with_pairs.pair_transform = segtf::random_hflip();
  expect_has(error_of([&] { Loader(std::make_shared<TinyClassification>(), with_pairs); }),
             {"TinyClassification", "pair_transform"});
  EXPECT_NO_THROW(Loader(seg, with_pairs));
}

TEST(SegLoader, LabelMapsOfOneBatchMustShareASize) {
  auto ds = std::make_shared<PlantedSegmentation>(4, 3, 4);
  ds->odd_at_ = 1;
  LoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  o.num_workers = 0;
  // The images are brought to one size, the labels are not (as evaluation keeps them).
  o.pair_transform = [](SegPair p, RandomStream&) {
    p.image = resize(p.image, 3, 4, Interpolation::Bilinear, false);
    return p;
  };
  Loader loader(ds, o);
  expect_has(error_of([&] { loader.next(); }), {"sample 1", "label map is 4x4", "first is 3x4", "one size"});
}
