// Segmentation inference over whole images or sliding windows, and the patch-level class
// labels the routing analyses attribute tokens to.
//
// A segmentation model (a ViT with head "patches") maps images [B, C, H, W] of any size to
// logits [B, classes, H, W] (models/vit.h). Whole-image inference is one forward; sliding
// windows (mmseg's slide mode) run crop x crop windows at the given stride, the last window of
// each row and column flush with the image edge (an image smaller than the crop is one
// window of its own size), and average the logits where windows overlap.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "models/model.h"

namespace vimoe::models {

struct Window {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// The windows slide mode visits over an H x W image, row by row: crop > 0, stride in
// (0, crop]. Throws naming the values otherwise.
std::vector<Window> sliding_windows(int64_t H, int64_t W, int64_t crop, int64_t stride);

struct SegInference {
  bool slide = false;
  int64_t crop = 0, stride = 0;  // slide mode's window side and step
};

// Logits [B, classes, H, W] in f32: whole-image (on the model's device) or averaged over the
// sliding windows (accumulated on the host, returned there). `on_window` sees each forward's
// output with its window (whole image: one window covering it), for the routing analyses.
using WindowCallback = std::function<void(const ModelOutput&, const Window&)>;
Tensor segment(const ImageModel& model, const Tensor& images, const SegInference& how,
               const WindowCallback& on_window = {});

// The class each patch of a window's token grid stands for: the most frequent labelled class
// of the label-map pixels under it (ties: the lower class), -1 where none is labelled (the
// patch lies in padding or over ignored pixels only). `labels` is one image's label map
// [label_h x label_w], row-major, class indices or `ignore`; the model input it belongs to
// is image_h x image_w (the label map may be at another resolution: pixel (y, x) of the
// input reads label (y * label_h / image_h, x * label_w / image_w)); the window lies at
// `window` in the input, cut into grid_h x grid_w patches of side `patch`. Returns
// [grid_h x grid_w], row-major (the ViMoE paper's Figure 5 counts each token under its
// patch's class).
std::vector<int64_t> patch_classes(const std::vector<int64_t>& labels, int64_t label_h, int64_t label_w,
                                   int64_t image_h, int64_t image_w, const Window& window, int64_t grid_h,
                                   int64_t grid_w, int64_t patch, int64_t classes, int64_t ignore);

}  // namespace vimoe::models
