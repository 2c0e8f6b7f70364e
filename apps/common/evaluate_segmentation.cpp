// evaluate_segmentation (evaluate.h): mIoU over label maps and the token routing by patch class.
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "apps/common/evaluate.h"
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/ops/index.h"
#include "engine/ops/interpolate.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"

namespace vimoe::app {

namespace {

// A [C, H, W] host image with zeros appended to Hp x Wp: the padded input a routing grid covers,
// so the expert-allocation map's cells sit over their own pixels.
Tensor pad_image(const Tensor& image, int64_t Hp, int64_t Wp) {
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  if (H == Hp && W == Wp) return image;
  const std::vector<float> v = image.to_vector<float>();
  std::vector<float> out(static_cast<size_t>(C * Hp * Wp), 0.0f);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      std::copy_n(&v[static_cast<size_t>((c * H + y) * W)], W, &out[static_cast<size_t>((c * Hp + y) * Wp)]);
  return Tensor::from_vector<float>(out, {C, Hp, Wp});
}

// The class with the most labelled pixels of a label map (ties: the lower), 0 when none is.
int64_t dominant_class(const std::vector<int64_t>& labels, int64_t classes, int64_t ignore) {
  std::vector<int64_t> votes(static_cast<size_t>(classes), 0);
  for (int64_t v : labels)
    if (v != ignore && v >= 0 && v < classes) ++votes[static_cast<size_t>(v)];
  return std::max_element(votes.begin(), votes.end()) - votes.begin();
}

}  // namespace

EvalResult evaluate_segmentation(models::ImageModel& model, data::Loader& loader, Device device, bool progress,
                                 std::optional<DType> autocast, const models::SegInference& how) {
  NoGradGuard no_grad;
  AutocastGuard mixed(autocast.value_or(DType::BF16), autocast.has_value());
  const bool was_training = model.is_training();
  model.eval();
  const data::Dataset& dataset = loader.dataset();
  VIMOE_CHECK(dataset.dense_labels(), "evaluate_segmentation: ", dataset.name(), " has no label maps");
  const int64_t classes = dataset.num_classes(), ignore = dataset.ignore_index();
  EvalResult r;
  r.pixels.emplace(classes);
  r.ignore_index = ignore;
  double loss_sum = 0;
  int64_t loss_pixels = 0;
  const bool tty = ::isatty(::fileno(stderr));
  loader.seek(loader.position().epoch, 0);
  int64_t done = 0;
  // The images kept for maps and overlays are spread over the set (consecutive frames of a
  // video, as CamVid's, would look alike): every stride-th in loader order.
  const int64_t stride = std::max<int64_t>(1, dataset.size() / kRoutedImages);
  while (std::optional<data::Batch> b = loader.next()) {
    r.skipped.insert(r.skipped.end(), b->skipped.begin(), b->skipped.end());
    VIMOE_CHECK(b->masks.defined(), "evaluate_segmentation: the loader's batches carry no label maps");
    const int64_t B = b->images.size(0), H = b->images.size(2), W = b->images.size(3);
    const int64_t h = b->masks.size(1), w = b->masks.size(2);
    const std::vector<int64_t> masks = b->masks.contiguous().to_vector<int64_t>();
    std::vector<std::vector<int64_t>> label(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i)
      label[i].assign(masks.begin() + i * h * w, masks.begin() + (i + 1) * h * w);
    // Per MoE layer and image, rows per expert summed over the windows.
    std::vector<std::vector<std::vector<int32_t>>> per_image;
    const bool whole = !how.slide;
    const int64_t first_mapped = static_cast<int64_t>(r.routed_images.size());
    std::vector<int64_t> kept;  // batch positions of the images kept for the maps and overlays
    auto on_window = [&](const models::ModelOutput& out, const models::Window& win) {
      if (r.routing_counts.empty() && !out.routing.empty()) {
        r.moe_blocks = out.moe_blocks;
        r.routing_grids = out.routing_grids;
        for (const Routing& rt : out.routing) {
          r.routing_counts.emplace_back(classes, std::vector<int64_t>(rt.probs.size(1), 0));
          r.expert_counts.emplace_back(rt.probs.size(1));
        }
      }
      per_image.resize(out.routing.size());
      for (size_t l = 0; l < out.routing.size(); ++l) {
        const Routing& rt = out.routing[l];
        const models::RoutingGrid& grid = out.routing_grids[l];
        const int64_t k = rt.expert_ids.size(1), experts = rt.probs.size(1);
        const std::vector<int32_t> ids = rt.expert_ids.contiguous().cpu().to_vector<int32_t>();
        const std::vector<float> keep =
            rt.keep.defined() ? rt.keep.to(DType::F32).contiguous().cpu().to_vector<float>() : std::vector<float>{};
        const int64_t rows = static_cast<int64_t>(ids.size()) / (B * k);
        per_image[l].resize(static_cast<size_t>(B), std::vector<int32_t>(experts, 0));
        for (int64_t i = 0; i < B; ++i) {
          for (int64_t t = 0; t < rows; ++t)
            for (int64_t j = 0; j < k; ++j)
              if (keep.empty() || keep[(i * rows + t) * k + j] > 0) ++per_image[l][i][ids[(i * rows + t) * k + j]];
          if (grid.height == 0) {  // image routing: the image's one decision, under its dominant class
            ++r.routing_counts[l][dominant_class(label[i], classes, ignore)][ids[i * rows * k]];
            continue;
          }
          const std::vector<int64_t> pc = models::patch_classes(label[i], h, w, H, W, win, grid.height, grid.width,
                                                                grid.cell, classes, ignore);
          for (int64_t p = 0; p < grid.height * grid.width; ++p)
            if (pc[p] >= 0) ++r.routing_counts[l][pc[p]][ids[(i * rows + grid.first + p) * k]];
          const auto at = std::find(kept.begin(), kept.end(), i);
          const int64_t m = first_mapped + (at - kept.begin());
          if (whole && at != kept.end()) {
            std::vector<int32_t> top(static_cast<size_t>(grid.height * grid.width));
            for (int64_t p = 0; p < grid.height * grid.width; ++p) top[p] = ids[(i * rows + grid.first + p) * k];
            EvalResult::RoutedImage& routed = r.routed_images[m];
            if (routed.top_expert.empty())
              routed.image = pad_image(routed.image, grid.height * grid.cell, grid.width * grid.cell);
            routed.top_expert.push_back(std::move(top));
          }
        }
      }
    };
    // The images kept for the maps and overlays, before the forward fills their routing.
    const size_t first_segmented = r.segmented.size();
    for (int64_t i = 0; i < B && static_cast<int64_t>(r.segmented.size()) < kRoutedImages; ++i) {
      if ((done + static_cast<int64_t>(b->skipped.size()) + i) % stride != 0) continue;
      kept.push_back(i);
      const Tensor image = b->images.select(0, i).to(DType::F32).cpu().contiguous();
      r.segmented.push_back({image, h, w, label[i], {}});
      if (whole) r.routed_images.push_back({image, dominant_class(label[i], classes, ignore), {}});
    }
    Tensor logits = models::segment(model, b->images.to(device), how, on_window);
    if (h != H || w != W) logits = interpolate_bilinear(logits, h, w);
    logits = logits.cpu();
    const Tensor target = b->masks;
    const int64_t labelled = static_cast<int64_t>(
        std::count_if(masks.begin(), masks.end(), [ignore](int64_t v) { return v != ignore; }));
    if (labelled > 0) {
      loss_sum += pixel_cross_entropy(logits, target, ignore).item<double>() * static_cast<double>(labelled);
      loss_pixels += labelled;
    }
    const std::vector<int64_t> predicted = argmax(logits, 1).to_vector<int64_t>();
    r.pixels->add(predicted, masks, ignore);
    for (size_t s = first_segmented; s < r.segmented.size(); ++s) {
      const int64_t i = kept[s - first_segmented];
      r.segmented[s].prediction.assign(predicted.begin() + i * h * w, predicted.begin() + (i + 1) * h * w);
    }
    for (size_t l = 0; l < per_image.size(); ++l)
      for (const std::vector<int32_t>& counts : per_image[l]) r.expert_counts[l].add_image(counts);
    if (!per_image.empty())
      for (int64_t i = 0; i < B; ++i) r.image_labels.push_back(dominant_class(label[i], classes, ignore));
    done += B;
    if (progress && tty)
      std::fprintf(stderr, "\r  evaluating %lld/%lld", static_cast<long long>(done + static_cast<int64_t>(r.skipped.size())),
                   static_cast<long long>(dataset.size()));
  }
  if (progress && tty) std::fprintf(stderr, "\n");
  // Routed images whose maps stayed empty (a dense model) are no maps.
  if (r.routing_counts.empty()) r.routed_images.clear();
  r.images = done;
  r.loss = loss_pixels ? loss_sum / static_cast<double>(loss_pixels) : 0;
  model.train(was_training);
  return r;
}

}  // namespace vimoe::app
