// The data side of a run: its datasets, normalisation statistics and per-sample transforms,
// from a RunConfig.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "apps/common/run_config.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/superclasses.h"
#include "models/model.h"

namespace vimoe::app {

struct Datasets {
  std::shared_ptr<const data::Dataset> train, val;
  int64_t channels = 3;      // what the images carry
  int64_t native_size = 0;   // their side when all are square and share one (IDX, CIFAR), else 0
  bool val_one_size = true;  // every validation image has one size (segmentation batches them then)
};
Datasets open_datasets(const RunConfig& cfg);

// Per-channel mean and std the images are normalised with (after augmentation, on [0, 1]
// pixel values, as torchvision's Normalize): from --normalize, where auto means the training
// set's own statistics for the built-in datasets (CIFAR-10's for CIFAR-10, CIFAR-100's for
// CIFAR-100, ...) and ImageNet's for image folders and whenever DINOv2 weights are loaded.
struct Normalization {
  std::vector<float> mean, std;
};
Normalization normalization(const RunConfig& cfg);

// The loaders' per-sample transforms: light augmentation at the native size for small
// images, ImageNet-style crops for large ones; normalised with the dataset's statistics
// (ImageNet's when starting from DINOv2).
data::Transform train_transform(const RunConfig& cfg, const Datasets& d, int64_t size, int64_t channels);
data::Transform eval_transform(const RunConfig& cfg, const Datasets& d, int64_t size, int64_t channels);

// The loaders of a run, for either task: batch size, workers, seed and the transforms above,
// or under segmentation the joint transforms: training rescales by --seg-ratio around
// --seg-scale, crops the model's input size (padding with the ignore index), flips and
// distorts photometrically; evaluation resizes the image alone to the scale (the label keeps
// its resolution, as mmseg scores) in batches of one unless every validation image has one
// size.
data::LoaderOptions train_loader_options(const RunConfig& cfg, const Datasets& d, const models::InputSpec& input);
data::LoaderOptions eval_loader_options(const RunConfig& cfg, const Datasets& d, const models::InputSpec& input,
                                        int workers);

// The super-class map --superclasses names (nullopt without one), checked against the model:
// one group per expert of the single router.
std::optional<data::SuperclassMap> superclasses(const RunConfig& cfg, const Datasets& d);

}  // namespace vimoe::app
