#include "models/segmentation.h"

#include <algorithm>

#include "engine/error.h"

namespace vimoe::models {

std::vector<Window> sliding_windows(int64_t H, int64_t W, int64_t crop, int64_t stride) {
  VIMOE_CHECK(H > 0 && W > 0, "sliding_windows: the image must be non-empty, found ", H, "x", W);
  VIMOE_CHECK(crop > 0 && stride > 0 && stride <= crop, "sliding_windows: need crop > 0 and 0 < stride <= crop, "
              "found crop ", crop, ", stride ", stride);
  // mmseg's grid: ceil((side - crop) / stride) + 1 steps, the last one moved back to the edge.
  auto starts = [&](int64_t side) {
    const int64_t steps = std::max<int64_t>(side - crop + stride - 1, 0) / stride + 1;
    std::vector<int64_t> s;
    for (int64_t i = 0; i < steps; ++i) s.push_back(std::max<int64_t>(std::min(i * stride, side - crop), 0));
    return s;
  };
  std::vector<Window> windows;
  for (int64_t top : starts(H))
    for (int64_t left : starts(W))
      windows.push_back({top, left, std::min(crop, H - top), std::min(crop, W - left)});
  return windows;
}

Tensor segment(const ImageModel& model, const Tensor& images, const SegInference& how,
               const WindowCallback& on_window) {
  VIMOE_CHECK(images.dim() == 4, "segment: expected images [B, C, H, W], found ", shape_str(images.shape()));
  const int64_t B = images.size(0), H = images.size(2), W = images.size(3);
  if (!how.slide) {
    ModelOutput out = model.forward(images);
    VIMOE_CHECK(out.logits.defined() && out.logits.dim() == 4 && out.logits.size(2) == H && out.logits.size(3) == W,
                "segment: the model is not a segmentation model (its logits are ",
                out.logits.defined() ? shape_str(out.logits.shape()) : std::string("undefined"), " for images ",
                shape_str(images.shape()), ")");
    if (on_window) on_window(out, {0, 0, H, W});
    return out.logits.to(DType::F32);
  }
  std::vector<float> acc, hits(static_cast<size_t>(H * W), 0.0f);
  int64_t K = 0;
  for (const Window& w : sliding_windows(H, W, how.crop, how.stride)) {
    const Tensor crop = images.narrow(2, w.top, w.height).narrow(3, w.left, w.width).contiguous();
    ModelOutput out = model.forward(crop);
    VIMOE_CHECK(out.logits.defined() && out.logits.dim() == 4, "segment: the model is not a segmentation model");
    if (on_window) on_window(out, w);
    const std::vector<float> l = out.logits.to(DType::F32).cpu().contiguous().to_vector<float>();
    if (acc.empty()) {
      K = out.logits.size(1);
      acc.assign(static_cast<size_t>(B * K * H * W), 0.0f);
    }
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t y = 0; y < w.height; ++y) {
          const float* src = &l[static_cast<size_t>(((b * K + k) * w.height + y) * w.width)];
          float* dst = &acc[static_cast<size_t>(((b * K + k) * H + w.top + y) * W + w.left)];
          for (int64_t x = 0; x < w.width; ++x) dst[x] += src[x];
        }
    for (int64_t y = 0; y < w.height; ++y)
      for (int64_t x = 0; x < w.width; ++x) hits[static_cast<size_t>((w.top + y) * W + w.left + x)] += 1.0f;
  }
  for (size_t i = 0; i < acc.size(); ++i) acc[i] /= hits[i % hits.size()];
  return Tensor::from_vector<float>(acc, {B, K, H, W});
}

std::vector<int64_t> patch_classes(const std::vector<int64_t>& labels, int64_t label_h, int64_t label_w,
                                   int64_t image_h, int64_t image_w, const Window& window, int64_t grid_h,
                                   int64_t grid_w, int64_t patch, int64_t classes, int64_t ignore) {
  VIMOE_CHECK(static_cast<int64_t>(labels.size()) == label_h * label_w && label_h > 0 && label_w > 0,
              "patch_classes: ", labels.size(), " labels for a ", label_h, "x", label_w, " map");
  VIMOE_CHECK(image_h > 0 && image_w > 0 && patch > 0 && classes > 0, "patch_classes: image ", image_h, "x",
              image_w, ", patch ", patch, ", classes ", classes, " must be positive");
  std::vector<int64_t> out(static_cast<size_t>(grid_h * grid_w), -1);
  std::vector<int64_t> votes(static_cast<size_t>(classes));
  for (int64_t gy = 0; gy < grid_h; ++gy)
    for (int64_t gx = 0; gx < grid_w; ++gx) {
      std::fill(votes.begin(), votes.end(), 0);
      const int64_t y0 = window.top + gy * patch, x0 = window.left + gx * patch;
      // Pixels of the patch inside the image (the rest is padding).
      for (int64_t y = y0; y < std::min(y0 + patch, std::min(window.top + window.height, image_h)); ++y)
        for (int64_t x = x0; x < std::min(x0 + patch, std::min(window.left + window.width, image_w)); ++x) {
          const int64_t v = labels[static_cast<size_t>((y * label_h / image_h) * label_w + x * label_w / image_w)];
          if (v == ignore) continue;
          VIMOE_CHECK(v >= 0 && v < classes, "patch_classes: label ", v, " outside 0..", classes - 1,
                      " (ignore index ", ignore, ")");
          ++votes[static_cast<size_t>(v)];
        }
      const auto best = std::max_element(votes.begin(), votes.end());
      if (*best > 0) out[static_cast<size_t>(gy * grid_w + gx)] = best - votes.begin();
    }
  return out;
}

}  // namespace vimoe::models
