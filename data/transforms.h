// Image transforms on float CHW images, and batch-level Mixup / CutMix.
//
// Geometry follows torchvision so that pipelines ported from PyTorch behave the same:
//   - resize: torch.nn.functional.interpolate(align_corners=False). Without antialias,
//     bilinear (source index clamped at 0, taps clamped at the border) and bicubic (Keys'
//     cubic convolution with A = -0.75, taps clamped). With antialias (the default, as in
//     torchvision.transforms.v2.Resize) the filter support widens by the downscale factor and
//     the weights of the in-range taps are normalised (PIL's resampling). Note: torch's
//     antialiased bicubic uses A = -0.5 (PIL's value); here A is -0.75 in both modes.
//   - center_crop: offsets round((H - h) / 2) with Python's round-half-to-even; zero padding
//     where the crop is larger than the image.
//   - RandomResizedCrop: torchvision's get_params (10 attempts, then a centre crop clamped to
//     the aspect-ratio range).
// Every random choice draws from the RandomStream it is given, so the result is a pure
// function of that stream's key.
#pragma once
#include <array>
#include <functional>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/random_stream.h"
#include "engine/tensor.h"

namespace vimoe::data {

// channels x height x width floats, row-major (CHW).
struct FloatImage {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<float> values;

  FloatImage() = default;
  FloatImage(int64_t c, int64_t h, int64_t w)
      : channels(c), height(h), width(w), values(static_cast<size_t>(c * h * w)) {}
  float& at(int64_t c, int64_t y, int64_t x) { return values[(c * height + y) * width + x]; }
  float at(int64_t c, int64_t y, int64_t x) const { return values[(c * height + y) * width + x]; }
};

inline constexpr std::array<float, 3> kImageNetMean{0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> kImageNetStd{0.229f, 0.224f, 0.225f};

enum class Interpolation { Bilinear, Bicubic };

// What a crop reads where its box leaves the image: zeros (torchvision's padding_mode
// "constant" with fill 0, RandomCrop's default) or the image mirrored about its edge row or
// column, the edge itself not repeated (padding_mode "reflect": -1 reads 1, H reads H - 2).
enum class Padding { Zero, Reflect };

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
  friend bool operator==(const CropBox&, const CropBox&) = default;
};

// ---- deterministic operations ------------------------------------------------------------

// 8-bit HWC -> float CHW, value / 255.
FloatImage to_float(const Image& img);
// A [C, H, W] f32 CPU tensor holding the image (and back, from any f32 [C, H, W] tensor).
Tensor to_tensor(const FloatImage& img);
FloatImage from_tensor(const Tensor& chw);

FloatImage resize(const FloatImage& img, int64_t out_h, int64_t out_w,
                  Interpolation mode = Interpolation::Bilinear, bool antialias = true);
// torchvision Resize(size) with an int: the shorter side becomes `size`, the longer
// int(size * long / short); an image whose shorter side already is `size` is returned as is.
FloatImage resize_shorter(const FloatImage& img, int64_t size,
                          Interpolation mode = Interpolation::Bilinear, bool antialias = true);
// Rows [top, top + h), columns [left, left + w); pixels outside the image are 0, or with
// Padding::Reflect mirrored in (the box may then reach at most side - 1 pixels past an edge,
// as torch's reflection padding allows).
FloatImage crop(const FloatImage& img, const CropBox& box, Padding padding = Padding::Zero);
FloatImage center_crop(const FloatImage& img, int64_t h, int64_t w);
FloatImage hflip(const FloatImage& img);
// (x - mean[c]) / std[c] in place; mean and std hold one value per channel.
void normalize(FloatImage& img, const std::vector<float>& mean, const std::vector<float>& std);
// 1 -> 3 channels by replication; `channels` equal to the image's returns it unchanged.
FloatImage to_channels(const FloatImage& img, int64_t channels);

// torchvision RandomResizedCrop.get_params for an image of height x width.
CropBox random_resized_crop_box(int64_t height, int64_t width, RandomStream& rng,
                                std::pair<double, double> scale = {0.08, 1.0},
                                std::pair<double, double> ratio = {3.0 / 4.0, 4.0 / 3.0});

// ---- composable sample transforms ---------------------------------------------------------

// A per-sample transform: the image and the sample's random stream in, the image out.
using Transform = std::function<FloatImage(FloatImage, RandomStream&)>;

namespace tf {
Transform compose(std::vector<Transform> steps);
Transform resize(int64_t h, int64_t w, Interpolation mode = Interpolation::Bilinear,
                 bool antialias = true);
Transform resize_shorter(int64_t size, Interpolation mode = Interpolation::Bilinear,
                         bool antialias = true);
Transform center_crop(int64_t h, int64_t w);
Transform random_resized_crop(int64_t h, int64_t w, std::pair<double, double> scale = {0.08, 1.0},
                              std::pair<double, double> ratio = {3.0 / 4.0, 4.0 / 3.0},
                              Interpolation mode = Interpolation::Bilinear, bool antialias = true);
// torchvision's RandomCrop(size, padding, padding_mode): a random h x w window of the image
// padded by `padding` pixels on every side (the shift augmentation of small-image training,
// e.g. 32 x 32 with padding 4 for CIFAR), drawn anew for every image; each of the
// (height + 2 padding - h + 1) x (width + 2 padding - w + 1) windows is equally likely.
// Needs h <= height + 2 padding, w likewise; reflection needs padding < height and < width.
Transform random_crop(int64_t h, int64_t w, int64_t padding, Padding mode = Padding::Zero);
Transform random_hflip(double p = 0.5);
Transform normalize(std::vector<float> mean, std::vector<float> std);
Transform channels(int64_t c);
}  // namespace tf

// The usual ImageNet-style pipelines, ending in `channels` channels normalised by mean/std:
// training: RandomResizedCrop(size) + horizontal flip (p = 0.5);
// evaluation: resize the shorter side to `resize_size`, centre crop `size`.
Transform train_transform(int64_t size, int64_t channels = 3,
                          std::vector<float> mean = {kImageNetMean.begin(), kImageNetMean.end()},
                          std::vector<float> std = {kImageNetStd.begin(), kImageNetStd.end()});
Transform eval_transform(int64_t size, int64_t resize_size, int64_t channels = 3,
                         std::vector<float> mean = {kImageNetMean.begin(), kImageNetMean.end()},
                         std::vector<float> std = {kImageNetStd.begin(), kImageNetStd.end()});

// ---- Mixup / CutMix on a batch (timm's Mixup, batch mode) ---------------------------------

struct MixConfig {
  double mixup_alpha = 0.8;   // Beta(alpha, alpha) for mixup's lambda; 0 disables mixup
  double cutmix_alpha = 1.0;  // Beta(alpha, alpha) for cutmix's lambda; 0 disables cutmix
  double prob = 1.0;          // probability that a batch is mixed at all
  double switch_prob = 0.5;   // with both enabled: probability of cutmix instead of mixup
  double label_smoothing = 0.1;
  int64_t num_classes = 0;
};

struct MixResult {
  Tensor targets;       // [B, num_classes] f32; every row sums to 1
  double lam = 1.0;     // weight of each sample's own label (1: not mixed)
  bool cutmix = false;  // which method ran (meaningless when lam == 1 and !mixed)
  bool mixed = false;
  CropBox box;          // cutmix: the pasted region
};

// Mixes sample b with sample B-1-b. images: [B, C, H, W] f32 contiguous CPU, changed in
// place (mixup: lam * x[b] + (1 - lam) * x[B-1-b]; cutmix: the box of x[B-1-b] pasted in,
// lam corrected to the pasted area); labels: [B] i64 in [0, num_classes). The targets are
// lam * smooth(y[b]) + (1 - lam) * smooth(y[B-1-b]) with smooth(y) = one-hot with
// label_smoothing spread over all classes; produced even when the batch is not mixed.
MixResult mix_batch(Tensor& images, const Tensor& labels, const MixConfig& cfg,
                    RandomStream& rng);

}  // namespace vimoe::data
