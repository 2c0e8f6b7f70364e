// The device, precision and model of a run, from a RunConfig.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "apps/common/run_config.h"
#include "models/model.h"
#include "models/segmentation.h"

namespace vimoe::app {

Device pick_device(const std::string& name);  // auto | cpu | cuda
// The autocast type a run's forward passes use on `device` (nullopt: plain f32), from
// --precision: auto is bf16 on CUDA and f32 on the CPU.
std::optional<DType> autocast_type(const std::string& precision, Device device);

// The run's model from the factory (--model and its options), initialised from --seed by the
// family's from-scratch recipe, then with --init's pretrained weights when given (the import
// report goes to stderr).
std::shared_ptr<models::ImageModel> build_model(const RunConfig& cfg, int64_t num_classes, int64_t channels);

// How a segmentation run evaluates (--seg-eval, --seg-stride): whole images, or windows of
// the model's input size at the stride (0: 2/3 of it, as mmseg's 512 / 341).
models::SegInference seg_inference(const RunConfig& cfg, const models::InputSpec& input);

}  // namespace vimoe::app
