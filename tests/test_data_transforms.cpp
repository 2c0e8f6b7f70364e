// Transforms against hand-computed values and straightforward direct computations;
// RandomResizedCrop bounds and determinism; mixup / cutmix mass and pixels.
#include <cmath>
#include <set>

#include "data/transforms.h"
#include "test_util.h"

namespace vimoe::data {
namespace {

FloatImage make(int64_t c, int64_t h, int64_t w, std::vector<float> v) {
  FloatImage img(c, h, w);
  EXPECT_EQ(v.size(), img.values.size());
  img.values = std::move(v);
  return img;
}

FloatImage random_image(int64_t c, int64_t h, int64_t w, uint64_t seed) {
  FloatImage img(c, h, w);
  img.values = vimoe::testing::uniform({c, h, w}, seed, 0, 1).to_vector<float>();
  return img;
}

void expect_values(const FloatImage& got, const std::vector<double>& want, double tol = 1e-6) {
  ASSERT_EQ(got.values.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.values[i], want[i], tol) << "value " << i;
}

TEST(DataTransforms, ToFloatIsChwOver255) {
  Image img(2, 1, 3);  // two pixels, RGB
  img.pixels = {0, 51, 255, 102, 204, 153};
  const FloatImage f = to_float(img);
  ASSERT_EQ(f.channels, 3);
  expect_values(f, {0, 102 / 255.0, 51 / 255.0, 204 / 255.0, 1, 153 / 255.0});
  const Tensor t = to_tensor(f);
  EXPECT_EQ(t.shape(), (Shape{3, 2, 1}));
  EXPECT_EQ(from_tensor(t).values, f.values);
}

// Hand-computed values (they match torch.nn.functional.interpolate, align_corners=False).
TEST(DataTransforms, ResizeHandValues) {
  const FloatImage sq = make(1, 2, 2, {1, 2, 3, 4});
  // Bilinear upsampling: source x = (o + 0.5) / 2 - 0.5 clamped at 0 -> 0, .25, .75, 1.25.
  const std::vector<double> up = {1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5,
                                  2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0};
  expect_values(resize(sq, 4, 4, Interpolation::Bilinear, false), up);
  expect_values(resize(sq, 4, 4, Interpolation::Bilinear, true), up);  // same when upsampling

  // Bicubic, A = -0.75: weights at distances 1.75, .75, .25, 1.25 are -0.03515625,
  // 0.26171875, 0.87890625, -0.10546875; taps clamp to the two source values 0 and 1.
  expect_values(resize(make(1, 1, 2, {0, 1}), 1, 4, Interpolation::Bicubic, false),
                {-0.10546875, 0.2265625, 0.7734375, 1.10546875});

  // Downsampling [0, 1, 2, 3] to 2: plain bilinear samples at 0.5 and 2.5; antialiased, the
  // triangle widens to radius 2: output 0 weighs inputs 0, 1, 2 by .75, .75, .25 (/ 1.75).
  const FloatImage row = make(1, 1, 4, {0, 1, 2, 3});
  expect_values(resize(row, 1, 2, Interpolation::Bilinear, false), {0.5, 2.5});
  expect_values(resize(row, 1, 2, Interpolation::Bilinear, true), {5.0 / 7.0, 16.0 / 7.0});
  // Same size: the identity in every mode.
  const FloatImage r = random_image(2, 3, 5, 1);
  for (bool aa : {false, true})
    for (auto m : {Interpolation::Bilinear, Interpolation::Bicubic})
      EXPECT_EQ(resize(r, 3, 5, m, aa).values, r.values);
}

double cubic(double x) {
  const double a = -0.75;
  x = std::fabs(x);
  if (x <= 1) return (a + 2) * x * x * x - (a + 3) * x * x + 1;
  if (x < 2) return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a;
  return 0;
}

// Dense 1-D weights [out][in], written directly from the definitions.
std::vector<std::vector<double>> weights(int64_t in, int64_t out, Interpolation mode, bool aa) {
  std::vector<std::vector<double>> w(out, std::vector<double>(in, 0.0));
  const double scale = double(in) / double(out);
  for (int64_t o = 0; o < out; ++o) {
    if (aa) {
      // PIL-style: every input pixel weighs filter((centre distance) / max(scale, 1)),
      // normalised over the row.
      const double stretch = std::max(scale, 1.0), center = scale * (o + 0.5);
      double total = 0;
      for (int64_t j = 0; j < in; ++j) {
        const double d = (j + 0.5 - center) / stretch;
        w[o][j] = mode == Interpolation::Bilinear ? std::max(0.0, 1 - std::fabs(d)) : cubic(d);
        total += w[o][j];
      }
      for (double& v : w[o]) v /= total;
    } else if (mode == Interpolation::Bilinear) {
      // The source point clamped into the axis, then the tent around it.
      const double src = std::clamp(scale * (o + 0.5) - 0.5, 0.0, double(in - 1));
      for (int64_t j = 0; j < in; ++j) w[o][j] = std::max(0.0, 1 - std::fabs(src - j));
    } else {
      // Four taps around floor(src); out-of-range taps fall on the border pixel.
      const double src = scale * (o + 0.5) - 0.5;
      const double base = std::floor(src);
      for (int k = -1; k <= 2; ++k) {
        const int64_t j = std::clamp<int64_t>(int64_t(base) + k, 0, in - 1);
        w[o][j] += cubic(src - (base + k));
      }
    }
  }
  return w;
}

TEST(DataTransforms, ResizeMatchesDirectComputation) {
  const FloatImage img = random_image(2, 7, 5, 2);
  // Mixed directions: rows 7 -> 3 (down), columns 5 -> 9 (up); and 7 -> 11, 5 -> 2.
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{3, 9}, {11, 2}, {2, 1}})
    for (bool aa : {false, true})
      for (auto mode : {Interpolation::Bilinear, Interpolation::Bicubic}) {
        SCOPED_TRACE(::testing::Message() << oh << "x" << ow << " aa " << aa << " bicubic "
                                          << (mode == Interpolation::Bicubic));
        const auto wy = weights(7, oh, mode, aa), wx = weights(5, ow, mode, aa);
        std::vector<double> want;
        for (int64_t c = 0; c < 2; ++c)
          for (int64_t y = 0; y < oh; ++y)
            for (int64_t x = 0; x < ow; ++x) {
              double acc = 0;
              for (int64_t i = 0; i < 7; ++i)
                for (int64_t j = 0; j < 5; ++j) acc += wy[y][i] * wx[x][j] * img.at(c, i, j);
              want.push_back(acc);
            }
        expect_values(resize(img, oh, ow, mode, aa), want, 2e-6);
      }
}

TEST(DataTransforms, ResizeShorter) {
  const FloatImage wide = random_image(1, 10, 25, 3), tall = random_image(1, 25, 10, 3);
  const FloatImage a = resize_shorter(wide, 4), b = resize_shorter(tall, 4);
  EXPECT_EQ(std::make_pair(a.height, a.width), std::make_pair(int64_t{4}, int64_t{10}));
  EXPECT_EQ(std::make_pair(b.height, b.width), std::make_pair(int64_t{10}, int64_t{4}));
  EXPECT_EQ(resize_shorter(wide, 10).values, wide.values);
}

TEST(DataTransforms, CropFlipNormaliseChannels) {
  FloatImage img(1, 5, 6);
  for (int64_t i = 0; i < 30; ++i) img.values[i] = float(i);
  // Offsets round(2 / 2) = 1 and round(3 / 2) = 2 (half to even).
  expect_values(center_crop(img, 3, 3), {8, 9, 10, 14, 15, 16, 20, 21, 22});
  // Odd slack of 1: round(0.5) = 0.
  expect_values(center_crop(img, 4, 5), {0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16,
                                         18, 19, 20, 21, 22});
  // Larger than the image: padded with zeros, (crop - size) // 2 before.
  const FloatImage small = make(1, 2, 2, {1, 2, 3, 4});
  expect_values(center_crop(small, 4, 5), {0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 3, 4, 0, 0,
                                           0, 0, 0, 0, 0});
  expect_values(crop(small, {-1, 1, 2, 2}), {0, 0, 2, 0});

  expect_values(hflip(make(2, 1, 3, {1, 2, 3, 4, 5, 6})), {3, 2, 1, 6, 5, 4});

  FloatImage n = make(2, 1, 2, {0.5f, 1.0f, 0.0f, 0.25f});
  normalize(n, {0.5f, 0.25f}, {0.5f, 0.125f});
  expect_values(n, {0, 1, -2, 0});
  EXPECT_VIMOE_ERROR(normalize(n, {0.5f}, {0.5f}), "normalize", "1 means", "2 channels");

  const FloatImage grey = make(1, 1, 2, {0.25f, 0.75f});
  expect_values(to_channels(grey, 3), {0.25, 0.75, 0.25, 0.75, 0.25, 0.75});
  EXPECT_EQ(to_channels(grey, 1).values, grey.values);
  EXPECT_VIMOE_ERROR(to_channels(random_image(3, 1, 1, 1), 1), "to_channels", "3 channels into 1");
  EXPECT_VIMOE_ERROR(resize(grey, 0, 3), "resize", "0x3");
}

TEST(DataTransforms, RandomResizedCropBoundsAndDeterminism) {
  const int64_t H = 60, W = 90;
  std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>> distinct;
  for (uint64_t i = 0; i < 2000; ++i) {
    RandomStream a(7, StreamPurpose::Sample, 3, i), b(7, StreamPurpose::Sample, 3, i);
    const CropBox box = random_resized_crop_box(H, W, a);
    EXPECT_EQ(box, random_resized_crop_box(H, W, b));  // same key, same box
    ASSERT_GE(box.top, 0);
    ASSERT_GE(box.left, 0);
    ASSERT_GT(box.height, 0);
    ASSERT_GT(box.width, 0);
    ASSERT_LE(box.top + box.height, H);
    ASSERT_LE(box.left + box.width, W);
    // The drawn area t and aspect a satisfy t >= 0.08 H W and 3/4 <= a <= 4/3; w and h are
    // sqrt(t a) and sqrt(t / a) rounded, each off by at most 0.5.
    const double w = double(box.width), h = double(box.height);
    EXPECT_GE((w + 0.5) * (h + 0.5), 0.08 * H * W);
    EXPECT_GE((w + 0.5) / (h - 0.5), 3.0 / 4.0);
    EXPECT_LE((w - 0.5) / (h + 0.5), 4.0 / 3.0);
    distinct.insert({box.top, box.left, box.height, box.width});
  }
  EXPECT_GT(distinct.size(), 1900u);  // different sample keys give different crops

  // An impossible scale forces the fallback: the whole height, width clamped to 4/3 of it.
  RandomStream s(1, StreamPurpose::User, 0, 0);
  EXPECT_EQ(random_resized_crop_box(10, 40, s, {2.0, 3.0}), (CropBox{0, 13, 10, 13}));
  EXPECT_EQ(random_resized_crop_box(40, 10, s, {2.0, 3.0}), (CropBox{13, 0, 13, 10}));
  EXPECT_EQ(random_resized_crop_box(30, 35, s, {2.0, 3.0}), (CropBox{0, 0, 30, 35}));

  // As a transform: output size fixed, result a pure function of the stream key.
  const Transform t = tf::compose({tf::random_resized_crop(16, 12), tf::random_hflip()});
  const FloatImage img = random_image(3, H, W, 4);
  RandomStream r1(9, StreamPurpose::Sample, 0, 5), r2(9, StreamPurpose::Sample, 0, 5),
      r3(9, StreamPurpose::Sample, 1, 5);
  const FloatImage o1 = t(img, r1), o2 = t(img, r2), o3 = t(img, r3);
  EXPECT_EQ(o1.channels, 3);
  EXPECT_EQ(o1.height, 16);
  EXPECT_EQ(o1.width, 12);
  EXPECT_EQ(o1.values, o2.values);
  EXPECT_NE(o1.values, o3.values);  // another epoch, another crop
}

// RandomCrop with padding: every output is the image shifted by (dy, dx) in [-p, p]^2 with
// zeros where it moved out; all shifts occur; the draw is a pure function of the stream key.
TEST(DataTransforms, RandomCropShiftsWithZeroPadding) {
  const int64_t H = 5, W = 6, P = 2;
  const FloatImage img = random_image(2, H, W, 3);
  const Transform t = tf::random_crop(H, W, P);
  std::set<std::pair<int64_t, int64_t>> shifts;
  for (uint64_t i = 0; i < 400; ++i) {
    RandomStream a(5, StreamPurpose::Sample, 0, i), b(5, StreamPurpose::Sample, 0, i);
    const FloatImage out = t(img, a);
    ASSERT_EQ(out.channels, 2);
    ASSERT_EQ(out.height, H);
    ASSERT_EQ(out.width, W);
    EXPECT_EQ(out.values, t(img, b).values);
    // Find the shift that explains the output exactly.
    bool found = false;
    for (int64_t dy = -P; dy <= P && !found; ++dy)
      for (int64_t dx = -P; dx <= P && !found; ++dx) {
        bool match = true;
        for (int64_t c = 0; c < 2 && match; ++c)
          for (int64_t y = 0; y < H && match; ++y)
            for (int64_t x = 0; x < W && match; ++x) {
              const int64_t sy = y + dy, sx = x + dx;
              const float want = sy >= 0 && sy < H && sx >= 0 && sx < W ? img.at(c, sy, sx) : 0.f;
              match = out.at(c, y, x) == want;
            }
        if (match) {
          shifts.insert({dy, dx});
          found = true;
        }
      }
    EXPECT_TRUE(found) << "draw " << i << " is not a padded shift of the image";
  }
  EXPECT_EQ(shifts.size(), size_t((2 * P + 1) * (2 * P + 1)));
  // No padding and the full size: the identity.
  RandomStream r(1, StreamPurpose::User, 0, 0);
  EXPECT_EQ(tf::random_crop(H, W, 0)(img, r).values, img.values);
  EXPECT_VIMOE_ERROR(tf::random_crop(H + 5, W, 2)(img, r), "random_crop", "does not fit", "5x6");
  EXPECT_VIMOE_ERROR(tf::random_crop(H, W, -1), "random_crop", "padding -1");
}

TEST(DataTransforms, PresetPipelines) {
  RandomStream rng(1, StreamPurpose::User, 0, 0);
  const FloatImage grey = random_image(1, 40, 30, 5);
  const FloatImage a = train_transform(24)(grey, rng);
  EXPECT_EQ(std::make_tuple(a.channels, a.height, a.width), std::make_tuple(3, 24, 24));
  const FloatImage b = eval_transform(24, 28)(grey, rng);
  EXPECT_EQ(std::make_tuple(b.channels, b.height, b.width), std::make_tuple(3, 24, 24));
  // eval = normalise(replicate(centre crop(resize shorter))) computed step by step.
  FloatImage want = to_channels(center_crop(resize_shorter(grey, 28), 24, 24), 3);
  normalize(want, {kImageNetMean.begin(), kImageNetMean.end()},
            {kImageNetStd.begin(), kImageNetStd.end()});
  EXPECT_EQ(b.values, want.values);
}

TEST(DataTransforms, RandomStreamBasics) {
  RandomStream a(5, StreamPurpose::User, 1, 2), b(5, StreamPurpose::User, 1, 2),
      c(5, StreamPurpose::User, 2, 2), d(5, StreamPurpose::Sample, 1, 2);
  std::vector<uint32_t> va, vb, vc, vd;
  for (int i = 0; i < 9; ++i) {
    va.push_back(a.next_u32());
    vb.push_back(b.next_u32());
    vc.push_back(c.next_u32());
    vd.push_back(d.next_u32());
  }
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  EXPECT_NE(va, vd);
  // Moments of the distributions (10000 draws: loose bounds, many standard errors wide).
  RandomStream r(11, StreamPurpose::User, 0, 0);
  double su = 0, sb = 0, sg = 0;
  std::vector<int64_t> counts(5, 0);
  for (int i = 0; i < 10000; ++i) {
    const double u = r.uniform();
    ASSERT_TRUE(u >= 0 && u < 1);
    su += u;
    const int64_t k = r.randint(-2, 3);
    ASSERT_TRUE(k >= -2 && k < 3);
    ++counts[k + 2];
    const double x = r.beta(0.8, 0.8);
    ASSERT_TRUE(x >= 0 && x <= 1);
    sb += x;
    sg += r.gamma(0.3);
  }
  EXPECT_NEAR(su / 10000, 0.5, 0.02);
  EXPECT_NEAR(sb / 10000, 0.5, 0.02);
  EXPECT_NEAR(sg / 10000, 0.3, 0.03);
  for (int64_t n : counts) EXPECT_NEAR(n, 2000, 200);
  EXPECT_VIMOE_ERROR(r.randint(3, 3), "randint", "[3, 3)");
}

// A batch of B images whose pixels are distinct, with labels.
std::pair<Tensor, Tensor> batch(int64_t B, int64_t C, int64_t H, int64_t W, std::vector<int64_t> y) {
  return {vimoe::testing::uniform({B, C, H, W}, 3, 0, 1),
          Tensor::from_vector(y, {static_cast<int64_t>(y.size())})};
}

void expect_targets(const MixResult& r, const std::vector<int64_t>& y, const MixConfig& cfg) {
  const int64_t B = static_cast<int64_t>(y.size()), K = cfg.num_classes;
  ASSERT_EQ(r.targets.shape(), (Shape{B, K}));
  const std::vector<float> t = r.targets.to_vector<float>();
  const double off = cfg.label_smoothing / K, on = 1 - cfg.label_smoothing + off;
  for (int64_t b = 0; b < B; ++b) {
    double mass = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double want = r.lam * (k == y[b] ? on : off) + (1 - r.lam) * (k == y[B - 1 - b] ? on : off);
      EXPECT_NEAR(t[b * K + k], want, 1e-6) << "row " << b << " class " << k;
      mass += t[b * K + k];
    }
    EXPECT_NEAR(mass, 1.0, 1e-5) << "row " << b;
  }
}

TEST(DataTransforms, Mixup) {
  const std::vector<int64_t> y = {0, 3, 1, 1, 4};
  MixConfig cfg;
  cfg.cutmix_alpha = 0;
  cfg.num_classes = 5;
  for (uint64_t key = 0; key < 4; ++key) {
    auto [images, labels] = batch(5, 2, 3, 4, y);
    const std::vector<float> before = images.to_vector<float>();
    RandomStream rng(1, StreamPurpose::Batch, 0, key);
    const MixResult r = mix_batch(images, labels, cfg, rng);
    EXPECT_TRUE(r.mixed);
    EXPECT_FALSE(r.cutmix);
    EXPECT_TRUE(r.lam > 0 && r.lam < 1);
    expect_targets(r, y, cfg);
    const std::vector<float> after = images.to_vector<float>();
    const float lam = static_cast<float>(r.lam);
    for (int64_t b = 0; b < 5; ++b)
      for (int64_t i = 0; i < 24; ++i)
        ASSERT_NEAR(after[b * 24 + i], lam * before[b * 24 + i] + (1 - lam) * before[(4 - b) * 24 + i], 1e-6);
  }
}

TEST(DataTransforms, Cutmix) {
  const std::vector<int64_t> y = {2, 0, 1, 2};
  MixConfig cfg;
  cfg.mixup_alpha = 0;
  cfg.label_smoothing = 0;
  cfg.num_classes = 3;
  int boxes = 0;
  for (uint64_t key = 0; key < 6; ++key) {
    auto [images, labels] = batch(4, 2, 8, 10, y);
    const std::vector<float> before = images.to_vector<float>();
    RandomStream rng(2, StreamPurpose::Batch, 0, key);
    const MixResult r = mix_batch(images, labels, cfg, rng);
    EXPECT_TRUE(r.mixed && r.cutmix);
    EXPECT_NEAR(r.lam, 1 - double(r.box.height * r.box.width) / 80, 1e-12);
    boxes += r.box.height * r.box.width > 0;
    expect_targets(r, y, cfg);
    const std::vector<float> after = images.to_vector<float>();
    for (int64_t b = 0; b < 4; ++b)
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t yy = 0; yy < 8; ++yy)
          for (int64_t x = 0; x < 10; ++x) {
            const bool in = yy >= r.box.top && yy < r.box.top + r.box.height && x >= r.box.left &&
                            x < r.box.left + r.box.width;
            const int64_t src = in ? 3 - b : b, off = (c * 8 + yy) * 10 + x;
            ASSERT_EQ(after[b * 160 + off], before[src * 160 + off]);
          }
  }
  EXPECT_GT(boxes, 0);
}

TEST(DataTransforms, MixOffAndErrors) {
  const std::vector<int64_t> y = {1, 0, 2};
  MixConfig cfg;
  cfg.prob = 0;  // never mix: targets are the smoothed one-hot labels
  cfg.num_classes = 3;
  auto [images, labels] = batch(3, 1, 2, 2, y);
  const std::vector<float> before = images.to_vector<float>();
  RandomStream rng(0, StreamPurpose::Batch, 0, 0);
  const MixResult r = mix_batch(images, labels, cfg, rng);
  EXPECT_FALSE(r.mixed);
  EXPECT_EQ(r.lam, 1.0);
  EXPECT_EQ(images.to_vector<float>(), before);
  expect_targets(r, y, cfg);

  Tensor bad_labels = Tensor::from_vector(std::vector<int64_t>{0, 3, 1}, {3});
  EXPECT_VIMOE_ERROR(mix_batch(images, bad_labels, cfg, rng), "mix_batch", "label 3", "3 classes");
  Tensor flat = Tensor::zeros({3, 4});
  EXPECT_VIMOE_ERROR(mix_batch(flat, labels, cfg, rng), "mix_batch", "[3, 4]");
}

}  // namespace
}  // namespace vimoe::data
