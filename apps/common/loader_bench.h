// Loader benchmark: how many training images per second the data pipeline delivers on its
// own -- JPEG/PNG decoding, RandomResizedCrop to the model's size, horizontal flip and
// ImageNet normalisation, batched by data::Loader into (page-locked, when a CUDA device is
// usable) host memory -- for an image folder and one or more worker counts. Training keeps
// up when this exceeds the model's training images/s (vimoe-bench e2e).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vimoe::app {

struct LoaderBenchOptions {
  std::string data_dir;          // an image folder: one sub-directory per class
  int64_t image_size = 224;
  int64_t batch = 256;
  std::vector<int> workers;      // one measurement per worker count (0: on the consumer thread)
  int batches = 20;              // timed batches per measurement
  int warmup_batches = 2;        // pulled first from a separate loader (fills the file cache)
  bool pin_memory = true;        // ignored when no CUDA device is usable
  uint64_t seed = 0;
  std::function<void(const std::string&)> progress;  // one line per finished measurement
};

struct LoaderBenchResult {
  int workers = 0;
  bool pinned = false;
  double images_per_s = 0;
  double images_per_s_per_worker = 0;  // images_per_s / max(workers, 1)
};

struct LoaderBenchReport {
  std::string dataset;           // the folder's description
  int64_t dataset_images = 0, classes = 0;
  std::vector<LoaderBenchResult> results;
};

// Throws vimoe::Error for an unreadable folder or invalid options.
LoaderBenchReport run_loader_benchmark(const LoaderBenchOptions& options);

}  // namespace vimoe::app
