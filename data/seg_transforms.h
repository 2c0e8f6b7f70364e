// Joint transforms for segmentation: every geometric step moves the image and its label map
// together, resampling the image bilinearly (F.interpolate, align_corners=False, without
// antialias, as mmseg's cv2 resize) and the label with nearest neighbour (source index
// floor(dst * in / out), PyTorch's "nearest" and cv2's INTER_NEAREST), so no label value is
// ever blended or invented. As there, label and image are offset by up to half a pixel
// (nearest has no half-pixel centres): after a 2x upscale, image pixels up to 1.5 pixels from
// a label edge may blend the classes on either side. Photometric steps and normalisation
// touch only the image.
//
// The default training pipeline is mmseg's for ADE20K at 512: random rescale of the
// (2048, 512) scale by a ratio in [0.5, 2.0] keeping the aspect ratio, a random 512 x 512
// crop (cat_max_ratio 0.75), a horizontal flip with p = 0.5, photometric distortion, then
// normalisation and padding to the crop (image 0, label the ignore index). Every random
// choice draws from the RandomStream it is given.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/random_stream.h"
#include "data/transforms.h"

namespace vimoe::data {

// An image (float CHW) with its label map (8-bit, h x w x 1), of the same height and width
// except where a step says otherwise.
struct SegPair {
  FloatImage image;
  Image mask;
};

using PairTransform = std::function<SegPair(SegPair, RandomStream&)>;

// ---- deterministic operations ------------------------------------------------------------

// The label map resized with nearest neighbour to out_h x out_w: output pixel (y, x) reads
// (min(floor(y * in_h / out_h), in_h - 1), likewise x), the ratio in double.
Image resize_nearest(const Image& mask, int64_t out_h, int64_t out_w);
// The size mmseg's Resize(scale=(long, short), keep_ratio=True) gives an h x w image: scaled
// by min(long / max(h, w), short / min(h, w)), each side rounded (int(side * s + 0.5)).
std::pair<int64_t, int64_t> rescale_size(int64_t h, int64_t w, int64_t long_side, int64_t short_side);

namespace segtf {
PairTransform compose(std::vector<PairTransform> steps);
// The image, and the label unless resize_mask is false, to the keep-ratio size
// rescale_size(long_side, short_side) gives. resize_mask = false is evaluation at the label's
// own resolution (mmseg scores the upsampled prediction against the original map).
PairTransform resize(int64_t long_side, int64_t short_side, bool resize_mask = true);
// mmseg RandomResize(scale, ratio_range, keep_ratio=True): the scale times a ratio drawn
// uniformly from ratio_range, then as resize().
PairTransform random_rescale(int64_t long_side, int64_t short_side, std::pair<double, double> ratio_range);
// A random h x w window (mmseg RandomCrop): where the pair is smaller than the window it is
// padded at the bottom and right (image 0, label `ignore`) after cropping. With
// cat_max_ratio < 1 the window is redrawn, up to 10 times (the last draw is kept), while it
// holds fewer than two classes or one class covers cat_max_ratio or more of its labelled
// pixels (pixels labelled `ignore` are not counted).
PairTransform random_crop(int64_t h, int64_t w, int64_t ignore, double cat_max_ratio = 1.0);
PairTransform random_hflip(double p = 0.5);
// mmseg PhotoMetricDistortion on [0, 1] values: brightness +-32/255, contrast [0.5, 1.5]
// (before or after the HSV steps, each with p = 0.5), saturation [0.5, 1.5], hue shifted by an
// integer in [-18, 18) of OpenCV's 0-180 units (2 degrees each); each step with p = 0.5,
// values clipped to [0, 1]. In floats throughout (OpenCV's float RGB <-> HSV, one round trip
// for both HSV steps), where mmseg rounds to 8 bits after every step.
PairTransform photometric_distortion();
PairTransform normalize(std::vector<float> mean, std::vector<float> std);
// Pads the bottom and right so that both sides are multiples of `multiple` (image 0, label
// `ignore`): whole-image evaluation on a patch grid.
PairTransform pad_to_multiple(int64_t multiple, int64_t ignore);
// Applies an image transform to the image only (e.g. to_channels); it must keep the size.
PairTransform image_only(Transform t);
}  // namespace segtf

}  // namespace vimoe::data
