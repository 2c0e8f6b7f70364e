// End-to-end benchmark: training-step and inference throughput and peak device memory of
// whole models on synthetic data (random images and labels already on the device, so no
// data loading is timed). The defaults are the ViT-S/14 and ViMoE configurations of the
// ViMoE paper's fine-tuning: 224x224 images, batch 256, 1000 classes, bf16 autocast.
//
// A training step is what vimoe-train does per optimiser step: forward (under autocast),
// cross-entropy + load-balancing loss, backward, gradient clipping at norm 1, AdamW with the
// usual parameter groups, zero_grad. Inference is a forward pass in eval mode without
// gradients. The PyTorch peer (bench/peer_e2e.py) measures the same work with timm's
// vit_small_patch14_dinov2 and writes the same JSON; bench/compare_e2e.py makes the table.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/device.h"

namespace vimoe::app {

struct E2EOptions {
  Device device = Device::cuda();
  std::string preset = "vit_s14";  // a model name (models/factory.h)
  int64_t image_size = 224;
  int64_t batch = 256;
  int64_t num_classes = 1000;
  int steps = 20, warmup = 5;      // timed and untimed iterations, per measurement
  std::string precision = "bf16";  // "bf16" (autocast) or "f32"
  std::vector<std::string> models = {"dense", "moe"};
  uint64_t seed = 0;
  // Called with one line of progress text (what is being measured, then its result).
  std::function<void(const std::string&)> progress;
};

struct E2EResult {
  std::string name;         // "dense" or "moe"
  std::string description;  // the model's describe()
  int64_t params = 0;
  double train_ms = 0, train_images_per_s = 0;  // per training step
  double infer_ms = 0, infer_images_per_s = 0;  // per forward pass
  // The caching allocator's peaks during the measurement (model, gradients, optimiser state
  // and activations); nullopt on the CPU, where nothing tracks them.
  std::optional<int64_t> train_peak_allocated, train_peak_reserved;
  std::optional<int64_t> infer_peak_allocated, infer_peak_reserved;
};

// Throws vimoe::Error for invalid options (unknown model or precision, non-positive sizes).
std::vector<E2EResult> run_e2e_benchmarks(const E2EOptions& options);

// The JSON vimoe-bench e2e --json writes, the schema bench/peer_e2e.py shares:
// {"framework", "device", "config": {...}, "results": [{"name", "impl", "description",
//  "params", "train_ms", "train_images_per_s", "train_peak_allocated_bytes",
//  "train_peak_reserved_bytes", "infer_ms", "infer_images_per_s", "infer_peak_allocated_bytes",
//  "infer_peak_reserved_bytes"}]} with null peaks where unknown.
nlohmann::json e2e_to_json(const E2EOptions& options, const std::vector<E2EResult>& results);

// The readable table vimoe-bench e2e prints.
std::string e2e_table(const std::vector<E2EResult>& results);

}  // namespace vimoe::app
