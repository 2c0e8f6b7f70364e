#include "data/seg_transforms.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"

namespace vimoe::data {

Image resize_nearest(const Image& mask, int64_t out_h, int64_t out_w) {
  VIMOE_CHECK(out_h > 0 && out_w > 0 && mask.height > 0 && mask.width > 0, "resize_nearest: ", mask.height, "x",
              mask.width, " -> ", out_h, "x", out_w, ": sides must be positive");
  Image out(out_h, out_w, mask.channels);
  const double sy = static_cast<double>(mask.height) / static_cast<double>(out_h);
  const double sx = static_cast<double>(mask.width) / static_cast<double>(out_w);
  for (int64_t y = 0; y < out_h; ++y) {
    const int64_t iy = std::min(static_cast<int64_t>(std::floor(static_cast<double>(y) * sy)), mask.height - 1);
    for (int64_t x = 0; x < out_w; ++x) {
      const int64_t ix = std::min(static_cast<int64_t>(std::floor(static_cast<double>(x) * sx)), mask.width - 1);
      for (int64_t c = 0; c < mask.channels; ++c) out.at(y, x, c) = mask.at(iy, ix, c);
    }
  }
  return out;
}

std::pair<int64_t, int64_t> rescale_size(int64_t h, int64_t w, int64_t long_side, int64_t short_side) {
  VIMOE_CHECK(h > 0 && w > 0 && long_side > 0 && short_side > 0, "rescale_size: sides must be positive, found ",
              h, "x", w, " to (", long_side, ", ", short_side, ")");
  const double scale = std::min(static_cast<double>(std::max(long_side, short_side)) / static_cast<double>(std::max(h, w)),
                                static_cast<double>(std::min(long_side, short_side)) / static_cast<double>(std::min(h, w)));
  return {static_cast<int64_t>(static_cast<double>(h) * scale + 0.5),
          static_cast<int64_t>(static_cast<double>(w) * scale + 0.5)};
}

namespace {

void check_pair(const SegPair& p, const char* step) {
  VIMOE_CHECK(p.mask.channels == 1 && p.image.height == p.mask.height && p.image.width == p.mask.width, step,
              ": the image is ", p.image.height, "x", p.image.width, " but its label map ", p.mask.height, "x",
              p.mask.width, " with ", p.mask.channels, " channels (expected one, of the image's size)");
}

SegPair resize_pair(SegPair p, int64_t h, int64_t w, bool resize_mask) {
  if (p.image.height != h || p.image.width != w) {
    p.image = data::resize(p.image, h, w, Interpolation::Bilinear, /*antialias=*/false);
    if (resize_mask) p.mask = resize_nearest(p.mask, h, w);
  }
  return p;
}

// A crop of the pair at `box` (inside it), padded at the bottom and right to h x w.
SegPair crop_and_pad(const SegPair& p, const CropBox& box, int64_t h, int64_t w, int64_t ignore) {
  SegPair out{FloatImage(p.image.channels, h, w), Image(h, w, 1)};
  std::fill(out.mask.pixels.begin(), out.mask.pixels.end(), static_cast<uint8_t>(ignore));
  for (int64_t y = 0; y < box.height; ++y)
    for (int64_t x = 0; x < box.width; ++x) {
      for (int64_t c = 0; c < p.image.channels; ++c) out.image.at(c, y, x) = p.image.at(c, box.top + y, box.left + x);
      out.mask.at(y, x, 0) = p.mask.at(box.top + y, box.left + x, 0);
    }
  return out;
}

// OpenCV's float RGB -> HSV (cv::cvtColor on float images): H in degrees [0, 360), S and V in
// [0, 1].
void rgb_to_hsv(float r, float g, float b, float& h, float& s, float& v) {
  constexpr float eps = std::numeric_limits<float>::epsilon();
  v = std::max({r, g, b});
  const float diff = v - std::min({r, g, b});
  s = diff / (std::fabs(v) + eps);
  const float k = 60.0f / (diff + eps);
  if (v == r) h = (g - b) * k;
  else if (v == g) h = (b - r) * k + 120.0f;
  else h = (r - g) * k + 240.0f;
  if (h < 0) h += 360.0f;
}

// And back (OpenCV's HSV -> RGB for floats): the hue's 60-degree sector picks which channel is
// V, which V (1 - S), and which rises or falls in between.
void hsv_to_rgb(float h, float s, float v, float& r, float& g, float& b) {
  h /= 60.0f;
  h -= 6.0f * std::floor(h / 6.0f);
  int sector = static_cast<int>(std::floor(h));
  h -= static_cast<float>(sector);
  if (sector < 0 || sector >= 6) sector = 0, h = 0;  // h was 6 - epsilon, rounded up to 6
  const float tab[4] = {v, v * (1 - s), v * (1 - s * h), v * (1 - s * (1 - h))};
  static const int pick[6][3] = {{0, 3, 1}, {2, 0, 1}, {1, 0, 3}, {1, 2, 0}, {3, 1, 0}, {0, 1, 2}};  // r, g, b
  r = tab[pick[sector][0]], g = tab[pick[sector][1]], b = tab[pick[sector][2]];
}

}  // namespace

namespace segtf {

PairTransform compose(std::vector<PairTransform> steps) {
  return [steps = std::move(steps)](SegPair p, RandomStream& rng) {
    for (const PairTransform& t : steps) p = t(std::move(p), rng);
    return p;
  };
}

PairTransform resize(int64_t long_side, int64_t short_side, bool resize_mask) {
  return [=](SegPair p, RandomStream&) {
    if (resize_mask) check_pair(p, "segtf::resize");
    const auto [h, w] = rescale_size(p.image.height, p.image.width, long_side, short_side);
    return resize_pair(std::move(p), h, w, resize_mask);
  };
}

PairTransform random_rescale(int64_t long_side, int64_t short_side, std::pair<double, double> ratio_range) {
  VIMOE_CHECK(ratio_range.first > 0 && ratio_range.first <= ratio_range.second,
              "segtf::random_rescale: the ratio range must be 0 < low <= high, found [", ratio_range.first, ", ",
              ratio_range.second, "]");
  return [=](SegPair p, RandomStream& rng) {
    check_pair(p, "segtf::random_rescale");
    const double ratio = rng.uniform(ratio_range.first, ratio_range.second);
    const auto [h, w] = rescale_size(p.image.height, p.image.width,
                                     std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(long_side) * ratio)),
                                     std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(short_side) * ratio)));
    return resize_pair(std::move(p), h, w, true);
  };
}

PairTransform random_crop(int64_t h, int64_t w, int64_t ignore, double cat_max_ratio) {
  VIMOE_CHECK(h > 0 && w > 0 && ignore >= 0 && ignore < 256 && cat_max_ratio > 0 && cat_max_ratio <= 1,
              "segtf::random_crop: need a positive size, an 8-bit ignore index and cat_max_ratio in (0, 1]; found ",
              h, "x", w, ", ", ignore, ", ", cat_max_ratio);
  return [=](SegPair p, RandomStream& rng) {
    check_pair(p, "segtf::random_crop");
    auto draw = [&] {
      CropBox b{0, 0, std::min(h, p.image.height), std::min(w, p.image.width)};
      b.top = rng.randint(0, p.image.height - b.height + 1);
      b.left = rng.randint(0, p.image.width - b.width + 1);
      return b;
    };
    // mmseg: redraw up to 10 times (the last draw is kept unchecked) while the window holds
    // fewer than two classes or one covers cat_max_ratio or more of its labelled pixels.
    CropBox box = draw();
    for (int attempt = 0; cat_max_ratio < 1 && attempt < 10; ++attempt) {
      int64_t counts[256] = {};
      for (int64_t y = 0; y < box.height; ++y)
        for (int64_t x = 0; x < box.width; ++x) ++counts[p.mask.at(box.top + y, box.left + x, 0)];
      counts[ignore] = 0;
      int64_t total = 0, most = 0, present = 0;
      for (int64_t c : counts) total += c, most = std::max(most, c), present += c > 0;
      if (present > 1 && static_cast<double>(most) / static_cast<double>(total) < cat_max_ratio) break;
      box = draw();
    }
    return crop_and_pad(p, box, h, w, ignore);
  };
}

PairTransform random_hflip(double p) {
  return [p](SegPair s, RandomStream& rng) {
    check_pair(s, "segtf::random_hflip");
    if (!rng.bernoulli(p)) return s;
    s.image = data::hflip(s.image);
    for (int64_t y = 0; y < s.mask.height; ++y) {
      uint8_t* row = &s.mask.pixels[static_cast<size_t>(y * s.mask.width)];
      std::reverse(row, row + s.mask.width);
    }
    return s;
  };
}

PairTransform photometric_distortion() {
  return [](SegPair s, RandomStream& rng) {
    FloatImage& im = s.image;
    VIMOE_CHECK(im.channels == 3, "segtf::photometric_distortion: needs RGB, found ", im.channels, " channels");
    auto clip = [](float v) { return std::clamp(v, 0.0f, 1.0f); };
    auto each = [&](auto f) {
      for (float& v : im.values) v = clip(f(v));
    };
    // Draws in a fixed order, whether or not a step applies, so the result is a function of the stream.
    const bool do_brightness = rng.bernoulli(0.5);
    const double delta = rng.uniform(-32.0, 32.0) / 255.0;
    const bool contrast_first = rng.bernoulli(0.5), do_contrast = rng.bernoulli(0.5);
    const double alpha = rng.uniform(0.5, 1.5);
    const bool do_saturation = rng.bernoulli(0.5);
    const double saturation = rng.uniform(0.5, 1.5);
    const bool do_hue = rng.bernoulli(0.5);
    // mmseg adds an integer in [-18, 18) to OpenCV's 8-bit hue (0-180, 2 degrees a unit).
    const float hue = static_cast<float>(2 * rng.randint(-18, 18));
    if (do_brightness) each([&](float v) { return v + static_cast<float>(delta); });
    if (contrast_first && do_contrast) each([&](float v) { return v * static_cast<float>(alpha); });
    if (do_saturation || do_hue) {
      const int64_t n = im.height * im.width;
      for (int64_t i = 0; i < n; ++i) {
        float& r = im.values[static_cast<size_t>(i)];
        float& g = im.values[static_cast<size_t>(n + i)];
        float& b = im.values[static_cast<size_t>(2 * n + i)];
        float h = 0, sat = 0, val = 0;
        rgb_to_hsv(r, g, b, h, sat, val);
        if (do_saturation) sat = clip(sat * static_cast<float>(saturation));
        if (do_hue) h += hue;  // hsv_to_rgb wraps it into [0, 360)
        hsv_to_rgb(h, sat, val, r, g, b);
        r = clip(r), g = clip(g), b = clip(b);
      }
    }
    if (!contrast_first && do_contrast) each([&](float v) { return v * static_cast<float>(alpha); });
    return s;
  };
}

PairTransform normalize(std::vector<float> mean, std::vector<float> std) {
  return [mean = std::move(mean), std = std::move(std)](SegPair s, RandomStream&) {
    data::normalize(s.image, mean, std);
    return s;
  };
}

PairTransform pad_to_multiple(int64_t multiple, int64_t ignore) {
  VIMOE_CHECK(multiple > 0 && ignore >= 0 && ignore < 256, "segtf::pad_to_multiple: need multiple > 0 and an 8-bit "
              "ignore index, found ", multiple, ", ", ignore);
  return [=](SegPair p, RandomStream&) {
    check_pair(p, "segtf::pad_to_multiple");
    const int64_t h = (p.image.height + multiple - 1) / multiple * multiple;
    const int64_t w = (p.image.width + multiple - 1) / multiple * multiple;
    return crop_and_pad(p, {0, 0, p.image.height, p.image.width}, h, w, ignore);
  };
}

PairTransform image_only(Transform t) {
  return [t = std::move(t)](SegPair p, RandomStream& rng) {
    const int64_t h = p.image.height, w = p.image.width;
    p.image = t(std::move(p.image), rng);
    VIMOE_CHECK(p.image.height == h && p.image.width == w, "segtf::image_only: the transform changed the image's "
                "size from ", h, "x", w, " to ", p.image.height, "x", p.image.width, "; the label map would not follow");
    return p;
  };
}

}  // namespace segtf

}  // namespace vimoe::data
