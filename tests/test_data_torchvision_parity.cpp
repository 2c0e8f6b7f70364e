// The data conventions of vimoe-train against torchvision's own answers
// (tests/fixtures/make_transforms_fixture.py wrote them with torchvision 0.29):
//   - 8-bit pixels become value / 255, CHW (ToTensor);
//   - small images (CIFAR's 32 x 32) are shifted by RandomCrop(32, padding=4) with zero or
//     reflection padding, each of the 81 windows equally likely, drawn per image, then
//     flipped with p = 0.5 (RandomHorizontalFlip), then normalised with the data set's own
//     statistics, and evaluated unshifted;
//   - photographs are evaluated as torchvision's ImageNet presets do (shorter side to
//     crop * 8 / 7 with antialiasing, centre crop, ImageNet's mean / std), and
//     RandomResizedCrop resamples its box as torchvision's resized_crop;
//   - the per-data-set constants are the statistics of the training images themselves.
// The exact-match cases compare bit for bit: they move pixels without arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "apps/common/trainer.h"
#include "data/idx.h"
#include "data/transforms.h"
#include "engine/io/safetensors.h"
#include "tests/test_util.h"

using namespace vimoe;
using namespace vimoe::data;
namespace fs = std::filesystem;

namespace {

fs::path fixture_dir() { return fs::path(VIMOE_SOURCE_DIR) / "tests" / "fixtures" / "transforms"; }

struct Torchvision {
  nlohmann::json meta;
  io::SafetensorsFile tensors;

  static const Torchvision& get() {
    static const Torchvision t = [] {
      std::ifstream in(fixture_dir() / "torchvision.json");
      EXPECT_TRUE(in.good()) << "missing " << (fixture_dir() / "torchvision.json");
      return Torchvision{nlohmann::json::parse(in),
                         io::SafetensorsFile::open((fixture_dir() / "torchvision.safetensors").string())};
    }();
    return t;
  }

  // A stored [C, H, W] float image.
  FloatImage image(const std::string& name) const { return from_tensor(tensors.get(name).clone()); }

  // A stored [H, W, C] image of 0..255 values as the 8-bit image the decoder would produce.
  Image u8(const std::string& name) const {
    const Tensor t = tensors.get(name).clone();
    Image img(t.size(0), t.size(1), t.size(2));
    const std::vector<float> v = t.to_vector<float>();
    for (size_t i = 0; i < v.size(); ++i) img.pixels[i] = static_cast<uint8_t>(v[i]);
    return img;
  }
};

float max_abs_diff(const FloatImage& a, const FloatImage& b) {
  EXPECT_EQ(a.channels, b.channels);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.width, b.width);
  if (a.values.size() != b.values.size()) return INFINITY;
  float m = 0;
  for (size_t i = 0; i < a.values.size(); ++i) m = std::max(m, std::fabs(a.values[i] - b.values[i]));
  return m;
}

// The h x w window at (top, left) of `padded`, optionally mirrored left to right.
FloatImage window(const FloatImage& padded, int64_t top, int64_t left, int64_t h, int64_t w, bool flip) {
  const FloatImage c = crop(padded, {top, left, h, w});
  return flip ? hflip(c) : c;
}

bool same_values(const FloatImage& a, const FloatImage& b) {
  for (size_t i = 0; i < a.values.size(); ++i)
    if (a.values[i] != b.values[i]) return false;  // most candidates fail on the first pixel
  return a.values.size() == b.values.size();
}

app::RunConfig cifar_folder_config(const std::string& padding) {
  app::RunConfig cfg;
  cfg.dataset = "folder";
  cfg.normalize = "cifar10";
  cfg.crop_padding = padding;
  return cfg;
}

}  // namespace

TEST(TorchvisionParity, EightBitPixelsBecomeChwOver255) {
  const Torchvision& tv = Torchvision::get();
  EXPECT_LE(max_abs_diff(to_float(tv.u8("small.u8")), tv.image("small.to_tensor")), 1e-7f);
}

TEST(TorchvisionParity, FlipMirrorsColumns) {
  const Torchvision& tv = Torchvision::get();
  EXPECT_TRUE(same_values(hflip(to_float(tv.u8("small.u8"))), tv.image("small.hflip")));
}

// vimoe-train's training transform of a CIFAR-sized image, run for many images: each output
// is, exactly, one window of torchvision's padded image (zero or reflect padding), mirrored or
// not, then normalised; all 81 windows occur about equally often and about half are mirrored.
TEST(TorchvisionParity, SmallImageTrainTransformIsRandomCropThenFlip) {
  const Torchvision& tv = Torchvision::get();
  const int64_t pad = tv.meta.at("random_crop_padding");
  const Image src = tv.u8("small.u8");
  const int64_t side = src.height;
  ASSERT_EQ(pad, side / 8) << "vimoe-train pads small images by 1/8 of their side";
  const app::Datasets d{nullptr, nullptr, 3, side};
  for (const std::string mode : {"zero", "reflect"}) {
    SCOPED_TRACE(mode);
    const app::RunConfig cfg = cifar_folder_config(mode);
    const app::Normalization norm = app::normalization(cfg);
    const Transform t = app::train_transform(cfg, d, side, 3);
    const FloatImage padded = tv.image("small.pad_" + mode);
    // Every candidate output: 81 windows x {as is, mirrored}, normalised as the app does.
    const int64_t n = 2 * pad + 1;
    std::vector<FloatImage> candidates;
    for (int64_t flip = 0; flip < 2; ++flip)
      for (int64_t top = 0; top < n; ++top)
        for (int64_t left = 0; left < n; ++left) {
          FloatImage c = window(padded, top, left, side, side, flip == 1);
          normalize(c, norm.mean, norm.std);
          candidates.push_back(std::move(c));
        }
    constexpr int kDraws = 4000;
    std::vector<int> seen(candidates.size(), 0);
    for (uint64_t i = 0; i < kDraws; ++i) {
      RandomStream rng(3, StreamPurpose::Sample, 0, i);
      const FloatImage out = t(to_float(src), rng);
      const auto it = std::find_if(candidates.begin(), candidates.end(),
                                   [&](const FloatImage& c) { return same_values(c, out); });
      ASSERT_NE(it, candidates.end()) << "draw " << i << " is no flipped or unflipped window of torchvision's "
                                      << mode << "-padded image";
      ++seen[it - candidates.begin()];
    }
    // Uniform over windows: expected 4000 / 81 = 49 per window (flips pooled), sd 7.
    const size_t windows = static_cast<size_t>(n * n);
    int flipped = 0;
    for (size_t w = 0; w < windows; ++w) {
      const int count = seen[w] + seen[w + windows];
      EXPECT_GE(count, 20) << "window " << w / n << "," << w % n << " drawn too rarely";
      EXPECT_LE(count, 85) << "window " << w / n << "," << w % n << " drawn too often";
      flipped += seen[w + windows];
    }
    // p = 0.5: 2000 expected, sd 32.
    EXPECT_NEAR(flipped, kDraws / 2, 160);
  }
}

// Reflection reaches at most side - 1 pixels past an edge, as in torch.
TEST(TorchvisionParity, ReflectPaddingLimits) {
  const FloatImage img(1, 3, 4);
  EXPECT_VIMOE_ERROR(crop(img, {-3, 0, 3, 4}, Padding::Reflect), "crop", "reflection", "3 rows", "at most 2");
  RandomStream rng(1, StreamPurpose::User, 0, 0);
  EXPECT_VIMOE_ERROR(tf::random_crop(3, 4, 3, Padding::Reflect)(img, rng), "random_crop", "reflection padding by 3",
                     "3x4");
  EXPECT_EQ(crop(img, {-2, -3, 3, 4}, Padding::Reflect).height, 3);
}

// Small images are evaluated as they are: only normalised.
TEST(TorchvisionParity, SmallImageEvalTransformOnlyNormalises) {
  const Torchvision& tv = Torchvision::get();
  const app::RunConfig cfg = cifar_folder_config("zero");
  const app::Datasets d{nullptr, nullptr, 3, 32};
  RandomStream rng(1, StreamPurpose::User, 0, 0);
  FloatImage want = tv.image("small.to_tensor");
  const app::Normalization norm = app::normalization(cfg);
  normalize(want, norm.mean, norm.std);
  EXPECT_LE(max_abs_diff(app::eval_transform(cfg, d, 32, 3)(to_float(tv.u8("small.u8")), rng), want), 1e-6f);
}

// Photographs: torchvision's ImageNet presets resize the shorter side to 256 and crop 224,
// that is crop * 8 / 7, with antialiasing, and normalise with ImageNet's mean and std; the
// app's evaluation transform does the same at any crop size.
TEST(TorchvisionParity, PhotoEvalTransformIsTheImageNetPreset) {
  const Torchvision& tv = Torchvision::get();
  for (const auto& [name, p] : tv.meta.at("imagenet_presets").items()) {
    SCOPED_TRACE(name);
    const int64_t crop_size = p.at("crop"), resize = p.at("resize");
    EXPECT_EQ(crop_size * 8 / 7, resize);
    EXPECT_TRUE(p.at("antialias").get<bool>());
    for (int c = 0; c < 3; ++c) {
      EXPECT_FLOAT_EQ(kImageNetMean[c], p.at("mean")[c].get<float>());
      EXPECT_FLOAT_EQ(kImageNetStd[c], p.at("std")[c].get<float>());
    }
  }
  const nlohmann::json& photo = tv.meta.at("photo");
  const int64_t crop_size = photo.at("crop");
  ASSERT_EQ(crop_size * 8 / 7, photo.at("resize").get<int64_t>());
  app::RunConfig cfg;
  cfg.dataset = "folder";  // a folder of photographs: ImageNet's statistics
  const app::Datasets d{nullptr, nullptr, 3, 0};
  RandomStream rng(1, StreamPurpose::User, 0, 0);
  FloatImage want = tv.image("photo.eval");
  normalize(want, {kImageNetMean.begin(), kImageNetMean.end()}, {kImageNetStd.begin(), kImageNetStd.end()});
  // Float resampling on both sides; normalisation scales the differences by 1 / std.
  EXPECT_LE(max_abs_diff(app::eval_transform(cfg, d, crop_size, 3)(to_float(tv.u8("photo.u8")), rng), want), 1e-5f);
}

// RandomResizedCrop's resampling of a chosen box, downscaling (antialiased) and upscaling.
TEST(TorchvisionParity, ResizedCropResamplesAsTorchvision) {
  const Torchvision& tv = Torchvision::get();
  const FloatImage photo = to_float(tv.u8("photo.u8"));
  const int64_t size = tv.meta.at("photo").at("crop");
  for (const auto& [name, b] : tv.meta.at("photo").at("boxes").items()) {
    SCOPED_TRACE(name);
    const CropBox box{b[0], b[1], b[2], b[3]};
    const FloatImage got = resize(crop(photo, box), size, size, Interpolation::Bilinear, /*antialias=*/true);
    EXPECT_LE(max_abs_diff(got, tv.image("photo.resized_crop_" + name)), 2e-6f);
  }
}

// The CIFAR-10 constants are its training images' statistics. Measured over the 50,000 JPEGs
// of the image-folder release: the means agree with the binary release's to 1e-4; JPEG's
// smoothing lowers the standard deviations by up to 0.002.
TEST(TorchvisionParity, Cifar10ConstantsAreItsTrainingStatistics) {
  const nlohmann::json& s = Torchvision::get().meta.at("cifar10_train_statistics");
  ASSERT_EQ(s.at("images").get<int>(), 50000);
  app::RunConfig cfg;
  cfg.dataset = "cifar10";
  const app::Normalization n = app::normalization(cfg);
  ASSERT_EQ(n.mean.size(), 3u);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(n.mean[c], s.at("mean")[c].get<double>(), 5e-4) << "channel " << c;
    EXPECT_NEAR(n.std[c], s.at("std")[c].get<double>(), 2.5e-3) << "channel " << c;
  }
}

// The Fashion-MNIST constants are its training images' statistics, measured here from the
// data set itself (Debian's dataset-fashion-mnist, which the test command installs).
TEST(TorchvisionParity, FashionMnistConstantsAreItsTrainingStatistics) {
  if (!fs::exists(kFashionMnistDir)) GTEST_SKIP() << "Fashion-MNIST is not installed at " << kFashionMnistDir;
  const IdxDataset train = IdxDataset::fashion_mnist("train");
  double sum = 0, sum_sq = 0, count = 0;
  for (int64_t i = 0; i < train.size(); ++i) {
    const Sample s = train.get(i);
    for (uint8_t p : s.image.pixels) {
      const double v = p / 255.0;
      sum += v;
      sum_sq += v * v;
    }
    count += static_cast<double>(s.image.pixels.size());
  }
  const double mean = sum / count, std = std::sqrt(sum_sq / count - mean * mean);
  app::RunConfig cfg;
  cfg.dataset = "fashion-mnist";
  const app::Normalization n = app::normalization(cfg);
  EXPECT_NEAR(n.mean[0], mean, 5e-4);
  EXPECT_NEAR(n.std[0], std, 5e-4);
}
