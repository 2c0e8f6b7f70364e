// Evaluation of a model on a loader: loss, top-1 / top-5 overall and per class (segmentation:
// the labelled pixels' confusion, hence mIoU), and the routing decisions per MoE layer by
// class (segmentation: each token by its patch's class, the ViMoE paper's Figure 5).
#pragma once
#include <optional>
#include <vector>

#include "data/loader.h"
#include "models/model.h"
#include "models/routing_analysis.h"
#include "models/segmentation.h"
#include "models/segmentation_metrics.h"

namespace vimoe::app {

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;
  int64_t images = 0;
  std::vector<int64_t> class_total, class_correct;
  std::vector<std::vector<int64_t>> confusion;  // [classes][classes]: true class x top-1 prediction
  // Per MoE layer: [classes x experts] counts of top-1 routing decisions (image-level: one
  // per image; token-level: one per token), and the set of expert paths images took.
  std::vector<std::vector<std::vector<int64_t>>> routing_counts;
  std::vector<int64_t> moe_blocks;
  int64_t distinct_paths = 0;
  // Per MoE layer: each image's rows per expert (routing_analysis.h), and where the rows lie.
  std::vector<models::ImageExpertCounts> expert_counts;
  std::vector<int64_t> image_labels;  // the label of each image the counts hold, in order
  std::vector<models::RoutingGrid> routing_grids;
  // Under token / pixel routing: the first validation image of each of the first few classes,
  // as the model saw it, with each patch's top expert per MoE layer (the spatial routing maps).
  struct RoutedImage {
    Tensor image;  // [C, H, W] f32 on the host, normalised as the model's input
    int64_t label = 0;
    std::vector<std::vector<int32_t>> top_expert;  // per MoE layer: [grid height x width], row-major
  };
  std::vector<RoutedImage> routed_images;
  // With super-classes and a single router: the E-way router accuracy (its top choice is the
  // label's group); -1 otherwise.
  double router_accuracy = -1;
  // Validation images left out because they could not be decoded (not in `images`).
  std::vector<data::SkippedSample> skipped;

  // Segmentation (then top1 / top5 are 0 and `loss` is the mean pixel cross-entropy): the
  // labelled pixels' confusion at the label maps' resolution, and the first few validation
  // images with their label and predicted maps (the prediction overlays).
  std::optional<models::SegmentationCounts> pixels;
  struct SegmentedImage {
    Tensor image;  // [C, H, W] f32 on the host, normalised as the model's input
    int64_t height = 0, width = 0;           // the label map's
    std::vector<int64_t> label, prediction;  // [height x width]; label may hold the ignore index
  };
  std::vector<SegmentedImage> segmented;
  int64_t ignore_index = -1;
};
// `group_of`: each class's super-class, for the router accuracy (null: none). Keeps up to
// kRoutedImages routed images.
inline constexpr int64_t kRoutedImages = 8;
EvalResult evaluate(models::ImageModel& model, data::Loader& loader, Device device,
                    bool progress, std::optional<DType> autocast = std::nullopt,
                    const std::vector<int64_t>* group_of = nullptr);

// A segmentation model on a loader of a segmentation dataset (batches with masks): logits by
// `how` (whole image or sliding windows), upsampled bilinearly to each label map's size,
// scored there. Routing: each token's top-1 expert counted under its patch's class
// (models::patch_classes; patches over padding or ignored pixels only are left out), each
// image's rows per expert, and the first kRoutedImages images' expert-allocation maps (whole
// images only; in slide mode the windows' grids do not make one map).
EvalResult evaluate_segmentation(models::ImageModel& model, data::Loader& loader, Device device, bool progress,
                                 std::optional<DType> autocast, const models::SegInference& how);

}  // namespace vimoe::app
