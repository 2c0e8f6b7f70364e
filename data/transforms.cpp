#include "data/transforms.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "engine/error.h"

namespace vimoe::data {

namespace {

constexpr double kCubicA = -0.75;

double cubic_filter(double x) {
  x = std::fabs(x);
  if (x < 1) return ((kCubicA + 2) * x - (kCubicA + 3)) * x * x + 1;
  if (x < 2) return ((kCubicA * x - 5 * kCubicA) * x + 8 * kCubicA) * x - 4 * kCubicA;
  return 0;
}

double linear_filter(double x) {
  x = std::fabs(x);
  return x < 1 ? 1 - x : 0;
}

// One axis of a separable resize: output o reads inputs idx[o*k .. o*k+k) with weights w
// (unused taps have weight 0 and index 0).
struct Taps {
  int64_t k = 0;
  std::vector<int64_t> idx;
  std::vector<double> w;
};

// F.interpolate(align_corners=False, antialias=False) along one axis.
Taps classic_taps(int64_t in, int64_t out, Interpolation mode) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  Taps t;
  t.k = mode == Interpolation::Bilinear ? 2 : 4;
  t.idx.resize(static_cast<size_t>(out * t.k));
  t.w.resize(t.idx.size());
  auto clamp = [&](int64_t i) { return std::min(std::max<int64_t>(i, 0), in - 1); };
  for (int64_t o = 0; o < out; ++o) {
    double src = scale * (static_cast<double>(o) + 0.5) - 0.5;
    int64_t* idx = &t.idx[o * t.k];
    double* w = &t.w[o * t.k];
    if (mode == Interpolation::Bilinear) {
      src = std::max(src, 0.0);  // torch clamps the linear source index, not the cubic one
      const int64_t x0 = static_cast<int64_t>(src);
      const double l = src - static_cast<double>(x0);
      idx[0] = clamp(x0);
      idx[1] = clamp(x0 + 1);
      w[0] = 1 - l;
      w[1] = l;
    } else {
      const double base = std::floor(src);
      const double f = src - base;
      for (int j = 0; j < 4; ++j) {
        idx[j] = clamp(static_cast<int64_t>(base) - 1 + j);
        w[j] = cubic_filter(f + 1 - j);  // distances t+1, t, 1-t, 2-t
      }
    }
  }
  return t;
}

// torch's antialiased interpolation (PIL's resampling) along one axis: the filter is
// stretched by the downscale factor, and only in-range taps count (weights renormalised).
Taps antialias_taps(int64_t in, int64_t out, Interpolation mode) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double radius = mode == Interpolation::Bilinear ? 1.0 : 2.0;
  const double stretch = scale >= 1 ? scale : 1.0;
  const double support = radius * stretch;
  std::vector<int64_t> first(out), count(out);
  for (int64_t o = 0; o < out; ++o) {
    const double center = scale * (static_cast<double>(o) + 0.5);
    // Truncation toward zero, as in torch (values are clamped to the axis right after).
    first[o] = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    count[o] = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in) - first[o];
  }
  Taps t;
  t.k = std::max<int64_t>(1, *std::max_element(count.begin(), count.end()));
  t.idx.assign(static_cast<size_t>(out * t.k), 0);
  t.w.assign(t.idx.size(), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    const double center = scale * (static_cast<double>(o) + 0.5);
    double total = 0;
    for (int64_t j = 0; j < count[o]; ++j) {
      const double x = (static_cast<double>(first[o] + j) - center + 0.5) / stretch;
      const double w = mode == Interpolation::Bilinear ? linear_filter(x) : cubic_filter(x);
      t.idx[o * t.k + j] = first[o] + j;
      t.w[o * t.k + j] = w;
      total += w;
    }
    if (total != 0)
      for (int64_t j = 0; j < count[o]; ++j) t.w[o * t.k + j] /= total;
  }
  return t;
}

void check_image(const FloatImage& img, const char* op) {
  VIMOE_CHECK(img.channels > 0 && img.height > 0 && img.width > 0 &&
                  static_cast<int64_t>(img.values.size()) == img.channels * img.height * img.width,
              op, ": invalid image [", img.channels, ", ", img.height, ", ", img.width, "] with ",
              img.values.size(), " values");
}

}  // namespace

// ---- deterministic operations ------------------------------------------------------------

FloatImage to_float(const Image& img) {
  VIMOE_CHECK(img.height > 0 && img.width > 0 && (img.channels == 1 || img.channels == 3) &&
                  static_cast<int64_t>(img.pixels.size()) == img.height * img.width * img.channels,
              "to_float: invalid image ", img.height, "x", img.width, "x", img.channels, " with ",
              img.pixels.size(), " bytes");
  // value / 255 through a table: the same floats as the division, without a division per
  // value (which made this step cost most of a decode).
  static const std::array<float, 256> kScaled = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[v] = static_cast<float>(v) / 255.0f;
    return t;
  }();
  FloatImage out(img.channels, img.height, img.width);
  const int64_t hw = img.height * img.width, C = img.channels;
  const uint8_t* px = img.pixels.data();
  for (int64_t c = 0; c < C; ++c) {
    float* plane = out.values.data() + c * hw;
    for (int64_t p = 0; p < hw; ++p) plane[p] = kScaled[px[p * C + c]];
  }
  return out;
}

Tensor to_tensor(const FloatImage& img) {
  check_image(img, "to_tensor");
  return Tensor::from_vector(img.values, {img.channels, img.height, img.width});
}

FloatImage from_tensor(const Tensor& chw) {
  VIMOE_CHECK(chw.dim() == 3 && chw.dtype() == DType::F32, "from_tensor: expected an f32 [C, H, W] "
              "tensor, found ", describe(chw));
  FloatImage img(chw.size(0), chw.size(1), chw.size(2));
  img.values = chw.to_vector<float>();
  return img;
}

FloatImage resize(const FloatImage& img, int64_t out_h, int64_t out_w, Interpolation mode,
                  bool antialias) {
  check_image(img, "resize");
  VIMOE_CHECK(out_h > 0 && out_w > 0, "resize: invalid output size ", out_h, "x", out_w);
  if (out_h == img.height && out_w == img.width) return img;  // every mode is the identity
  const Taps tx = antialias ? antialias_taps(img.width, out_w, mode)
                            : classic_taps(img.width, out_w, mode);
  const Taps ty = antialias ? antialias_taps(img.height, out_h, mode)
                            : classic_taps(img.height, out_h, mode);
  const int64_t C = img.channels, H = img.height, W = img.width;
  // Horizontal pass into [C, H, out_w], then vertical into [C, out_h, out_w].
  std::vector<float> tmp(static_cast<size_t>(C * H * out_w));
  for (int64_t row = 0; row < C * H; ++row) {
    const float* in = img.values.data() + row * W;
    float* o = tmp.data() + row * out_w;
    for (int64_t x = 0; x < out_w; ++x) {
      double acc = 0;
      for (int64_t j = 0; j < tx.k; ++j) acc += tx.w[x * tx.k + j] * in[tx.idx[x * tx.k + j]];
      o[x] = static_cast<float>(acc);
    }
  }
  FloatImage out(C, out_h, out_w);
  std::vector<double> acc(static_cast<size_t>(out_w));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < out_h; ++y) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < ty.k; ++j) {
        const double w = ty.w[y * ty.k + j];
        if (w == 0) continue;
        const float* in = tmp.data() + (c * H + ty.idx[y * ty.k + j]) * out_w;
        for (int64_t x = 0; x < out_w; ++x) acc[x] += w * in[x];
      }
      float* o = &out.at(c, y, 0);
      for (int64_t x = 0; x < out_w; ++x) o[x] = static_cast<float>(acc[x]);
    }
  return out;
}

FloatImage resize_shorter(const FloatImage& img, int64_t size, Interpolation mode,
                          bool antialias) {
  check_image(img, "resize_shorter");
  VIMOE_CHECK(size > 0, "resize_shorter: invalid size ", size);
  const bool wide = img.width > img.height;
  const int64_t shorter = wide ? img.height : img.width, longer = wide ? img.width : img.height;
  const int64_t new_long = static_cast<int64_t>(static_cast<double>(size) *
                                                static_cast<double>(longer) /
                                                static_cast<double>(shorter));
  return wide ? resize(img, size, new_long, mode, antialias)
              : resize(img, new_long, size, mode, antialias);
}

namespace {

// Index i mirrored into [0, n) about the edges, the edge not repeated; |overshoot| < n.
int64_t reflect_index(int64_t i, int64_t n) {
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}

FloatImage reflect_crop(const FloatImage& img, const CropBox& box) {
  const int64_t over_y = std::max({-box.top, box.top + box.height - img.height, int64_t{0}});
  const int64_t over_x = std::max({-box.left, box.left + box.width - img.width, int64_t{0}});
  VIMOE_CHECK(over_y < img.height && over_x < img.width, "crop: reflection padding of a ",
              img.height, "x", img.width, " image reaches ", over_y, " rows and ", over_x,
              " columns past its edges; at most ", img.height - 1, " and ", img.width - 1);
  FloatImage out(img.channels, box.height, box.width);
  for (int64_t c = 0; c < img.channels; ++c)
    for (int64_t y = 0; y < box.height; ++y) {
      const int64_t sy = reflect_index(box.top + y, img.height);
      for (int64_t x = 0; x < box.width; ++x) out.at(c, y, x) = img.at(c, sy, reflect_index(box.left + x, img.width));
    }
  return out;
}

}  // namespace

FloatImage crop(const FloatImage& img, const CropBox& box, Padding padding) {
  check_image(img, "crop");
  VIMOE_CHECK(box.height > 0 && box.width > 0, "crop: invalid crop size ", box.height, "x",
              box.width);
  if (padding == Padding::Reflect) return reflect_crop(img, box);
  FloatImage out(img.channels, box.height, box.width);
  // Columns of the box that fall inside the image; the rest stay 0.
  const int64_t x0 = std::clamp<int64_t>(-box.left, 0, box.width);
  const int64_t x1 = std::clamp<int64_t>(img.width - box.left, x0, box.width);
  for (int64_t c = 0; c < img.channels; ++c)
    for (int64_t y = 0; y < box.height; ++y) {
      const int64_t sy = box.top + y;
      if (sy < 0 || sy >= img.height || x1 <= x0) continue;
      std::memcpy(&out.at(c, y, x0), img.values.data() + (c * img.height + sy) * img.width + box.left + x0,
                  static_cast<size_t>(x1 - x0) * sizeof(float));
    }
  return out;
}

FloatImage center_crop(const FloatImage& img, int64_t h, int64_t w) {
  check_image(img, "center_crop");
  VIMOE_CHECK(h > 0 && w > 0, "center_crop: invalid crop size ", h, "x", w);
  // torchvision pads a too-small side by (crop - size) // 2 before (the rest after) and
  // otherwise offsets by round((size - crop) / 2), rounding halves to even like Python.
  auto offset = [](int64_t size, int64_t want) {
    if (want > size) return -((want - size) / 2);
    return static_cast<int64_t>(std::nearbyint(static_cast<double>(size - want) / 2.0));
  };
  return crop(img, {offset(img.height, h), offset(img.width, w), h, w});
}

FloatImage hflip(const FloatImage& img) {
  check_image(img, "hflip");
  FloatImage out(img.channels, img.height, img.width);
  for (int64_t r = 0; r < img.channels * img.height; ++r) {
    const float* in = img.values.data() + r * img.width;
    float* o = out.values.data() + r * img.width;
    for (int64_t x = 0; x < img.width; ++x) o[x] = in[img.width - 1 - x];
  }
  return out;
}

void normalize(FloatImage& img, const std::vector<float>& mean, const std::vector<float>& std) {
  check_image(img, "normalize");
  VIMOE_CHECK(static_cast<int64_t>(mean.size()) == img.channels &&
                  static_cast<int64_t>(std.size()) == img.channels,
              "normalize: ", mean.size(), " means and ", std.size(), " stds for an image of ",
              img.channels, " channels");
  for (int64_t c = 0; c < img.channels; ++c) {
    VIMOE_CHECK(std[c] != 0, "normalize: std of channel ", c, " is 0");
    float* p = img.values.data() + c * img.height * img.width;
    for (int64_t i = 0; i < img.height * img.width; ++i) p[i] = (p[i] - mean[c]) / std[c];
  }
}

FloatImage to_channels(const FloatImage& img, int64_t channels) {
  check_image(img, "to_channels");
  if (img.channels == channels) return img;
  VIMOE_CHECK(img.channels == 1 && channels == 3, "to_channels: cannot turn ", img.channels,
              " channels into ", channels, " (only 1 -> 3 replication)");
  FloatImage out(3, img.height, img.width);
  for (int64_t c = 0; c < 3; ++c)
    std::copy(img.values.begin(), img.values.end(),
              out.values.begin() + c * img.height * img.width);
  return out;
}

CropBox random_resized_crop_box(int64_t height, int64_t width, RandomStream& rng,
                                std::pair<double, double> scale, std::pair<double, double> ratio) {
  VIMOE_CHECK(height > 0 && width > 0, "random_resized_crop: invalid image size ", height, "x",
              width);
  VIMOE_CHECK(scale.first > 0 && scale.first <= scale.second && ratio.first > 0 &&
                  ratio.first <= ratio.second,
              "random_resized_crop: invalid scale (", scale.first, ", ", scale.second,
              ") or ratio (", ratio.first, ", ", ratio.second, ")");
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double log_lo = std::log(ratio.first), log_hi = std::log(ratio.second);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(scale.first, scale.second);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int64_t top = rng.randint(0, height - h + 1);
      const int64_t left = rng.randint(0, width - w + 1);
      return {top, left, h, w};
    }
  }
  // Fallback: the whole image, cropped to the nearest aspect ratio in range, centred.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < ratio.first) {
    h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / ratio.first));
  } else if (in_ratio > ratio.second) {
    w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * ratio.second));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

// ---- composable sample transforms ---------------------------------------------------------

namespace tf {

Transform compose(std::vector<Transform> steps) {
  return [steps = std::move(steps)](FloatImage img, RandomStream& rng) {
    for (const Transform& t : steps) img = t(std::move(img), rng);
    return img;
  };
}

Transform resize(int64_t h, int64_t w, Interpolation mode, bool antialias) {
  return [=](FloatImage img, RandomStream&) {
    return data::resize(img, h, w, mode, antialias);
  };
}

Transform resize_shorter(int64_t size, Interpolation mode, bool antialias) {
  return [=](FloatImage img, RandomStream&) {
    return data::resize_shorter(img, size, mode, antialias);
  };
}

Transform center_crop(int64_t h, int64_t w) {
  return [=](FloatImage img, RandomStream&) { return data::center_crop(img, h, w); };
}

Transform random_resized_crop(int64_t h, int64_t w, std::pair<double, double> scale,
                              std::pair<double, double> ratio, Interpolation mode,
                              bool antialias) {
  return [=](FloatImage img, RandomStream& rng) {
    const CropBox box = random_resized_crop_box(img.height, img.width, rng, scale, ratio);
    return data::resize(data::crop(img, box), h, w, mode, antialias);
  };
}

Transform random_crop(int64_t h, int64_t w, int64_t padding, Padding mode) {
  VIMOE_CHECK(h > 0 && w > 0 && padding >= 0, "random_crop: invalid size ", h, "x", w, " or padding ", padding);
  return [=](FloatImage img, RandomStream& rng) {
    VIMOE_CHECK(h <= img.height + 2 * padding && w <= img.width + 2 * padding, "random_crop: a ", h, "x", w,
                " crop does not fit a ", img.height, "x", img.width, " image padded by ", padding);
    VIMOE_CHECK(mode == Padding::Zero || (padding < img.height && padding < img.width), "random_crop: ",
                "reflection padding by ", padding, " needs an image larger than that, found ", img.height, "x",
                img.width);
    // crop() supplies whatever falls outside the image (zeros or the mirror image): that is
    // the padding. torchvision draws the window's corner in the padded image; drawing it
    // relative to the unpadded one is the same uniform choice.
    const int64_t top = rng.randint(-padding, img.height + padding - h + 1);
    const int64_t left = rng.randint(-padding, img.width + padding - w + 1);
    return data::crop(img, {top, left, h, w}, mode);
  };
}

Transform random_hflip(double p) {
  return [=](FloatImage img, RandomStream& rng) {
    return rng.bernoulli(p) ? data::hflip(img) : std::move(img);
  };
}

Transform normalize(std::vector<float> mean, std::vector<float> std) {
  return [mean = std::move(mean), std = std::move(std)](FloatImage img, RandomStream&) {
    data::normalize(img, mean, std);
    return img;
  };
}

Transform channels(int64_t c) {
  return [=](FloatImage img, RandomStream&) { return data::to_channels(img, c); };
}

}  // namespace tf

Transform train_transform(int64_t size, int64_t channels, std::vector<float> mean,
                          std::vector<float> std) {
  return tf::compose({tf::random_resized_crop(size, size), tf::random_hflip(0.5),
                      tf::channels(channels), tf::normalize(std::move(mean), std::move(std))});
}

Transform eval_transform(int64_t size, int64_t resize_size, int64_t channels,
                         std::vector<float> mean, std::vector<float> std) {
  return tf::compose({tf::resize_shorter(resize_size), tf::center_crop(size, size),
                      tf::channels(channels), tf::normalize(std::move(mean), std::move(std))});
}

// ---- Mixup / CutMix ------------------------------------------------------------------------

MixResult mix_batch(Tensor& images, const Tensor& labels, const MixConfig& cfg,
                    RandomStream& rng) {
  VIMOE_CHECK(images.defined() && images.dim() == 4 && images.dtype() == DType::F32 &&
                  images.device().is_cpu() && images.is_contiguous(),
              "mix_batch: images must be a contiguous f32 CPU [B, C, H, W] tensor, found ",
              images.defined() ? describe(images) : std::string("an undefined tensor"));
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  VIMOE_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == B &&
                  labels.dtype() == DType::I64,
              "mix_batch: labels must be i64 [", B, "], found ",
              labels.defined() ? describe(labels) : std::string("an undefined tensor"));
  VIMOE_CHECK(cfg.num_classes > 0, "mix_batch: num_classes must be > 0, got ", cfg.num_classes);
  VIMOE_CHECK(cfg.mixup_alpha >= 0 && cfg.cutmix_alpha >= 0 && cfg.prob >= 0 && cfg.prob <= 1 &&
                  cfg.switch_prob >= 0 && cfg.switch_prob <= 1 && cfg.label_smoothing >= 0 &&
                  cfg.label_smoothing < 1,
              "mix_batch: invalid config (mixup_alpha ", cfg.mixup_alpha, ", cutmix_alpha ",
              cfg.cutmix_alpha, ", prob ", cfg.prob, ", switch_prob ", cfg.switch_prob,
              ", label_smoothing ", cfg.label_smoothing, ")");
  const std::vector<int64_t> y = labels.to_vector<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    VIMOE_CHECK(y[b] >= 0 && y[b] < cfg.num_classes, "mix_batch: label ", y[b], " of sample ", b,
                " is out of range for ", cfg.num_classes, " classes");

  MixResult r;
  const bool any = cfg.mixup_alpha > 0 || cfg.cutmix_alpha > 0;
  if (any && rng.uniform() < cfg.prob) {
    r.mixed = true;
    if (cfg.mixup_alpha > 0 && cfg.cutmix_alpha > 0) r.cutmix = rng.uniform() < cfg.switch_prob;
    else r.cutmix = cfg.cutmix_alpha > 0;
    const double alpha = r.cutmix ? cfg.cutmix_alpha : cfg.mixup_alpha;
    r.lam = rng.beta(alpha, alpha);
  }

  float* x = images.data<float>();
  const int64_t sample = C * H * W;
  if (r.mixed && r.cutmix) {
    // A box of area (1 - lam) H W centred anywhere, clipped to the image; lam then becomes
    // the fraction each image keeps of itself.
    const double cut = std::sqrt(1.0 - r.lam);
    const auto cut_h = static_cast<int64_t>(static_cast<double>(H) * cut);
    const auto cut_w = static_cast<int64_t>(static_cast<double>(W) * cut);
    const int64_t cy = rng.randint(0, H), cx = rng.randint(0, W);
    const int64_t y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, H), y1 = std::clamp<int64_t>(cy + cut_h / 2, 0, H);
    const int64_t x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, W), x1 = std::clamp<int64_t>(cx + cut_w / 2, 0, W);
    r.box = {y0, x0, y1 - y0, x1 - x0};
    r.lam = 1.0 - static_cast<double>((y1 - y0) * (x1 - x0)) / static_cast<double>(H * W);
    for (int64_t b = 0; b < B / 2; ++b) {  // the middle sample of an odd batch pairs with itself
      float* p = x + b * sample;
      float* q = x + (B - 1 - b) * sample;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t yy = y0; yy < y1; ++yy)
          std::swap_ranges(p + (c * H + yy) * W + x0, p + (c * H + yy) * W + x1,
                           q + (c * H + yy) * W + x0);
    }
  } else if (r.mixed) {
    const auto lam = static_cast<float>(r.lam);
    for (int64_t b = 0; b < (B + 1) / 2; ++b) {
      float* p = x + b * sample;
      float* q = x + (B - 1 - b) * sample;
      for (int64_t i = 0; i < sample; ++i) {
        const float a = p[i], c = q[i];
        p[i] = lam * a + (1.0f - lam) * c;
        q[i] = lam * c + (1.0f - lam) * a;  // the same element again when p == q
      }
    }
  }

  const double off = cfg.label_smoothing / static_cast<double>(cfg.num_classes);
  const double on = 1.0 - cfg.label_smoothing + off;
  std::vector<float> t(static_cast<size_t>(B * cfg.num_classes));
  for (int64_t b = 0; b < B; ++b) {
    float* row = t.data() + b * cfg.num_classes;
    const int64_t own = y[b], other = y[B - 1 - b];
    for (int64_t k = 0; k < cfg.num_classes; ++k) {
      const double mine = k == own ? on : off, theirs = k == other ? on : off;
      row[k] = static_cast<float>(r.lam * mine + (1.0 - r.lam) * theirs);
    }
  }
  r.targets = Tensor::from_vector(t, {B, cfg.num_classes});
  return r;
}

}  // namespace vimoe::data
