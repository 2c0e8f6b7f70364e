#include "apps/common/run_model.h"

#include <algorithm>
#include <cstdio>

#include "engine/cuda/runtime.h"
#include "models/factory.h"

namespace vimoe::app {

Device pick_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda") {
    VIMOE_CHECK(cuda::is_available(), "--device cuda: ", cuda::unavailable_reason());
    return Device::cuda();
  }
  VIMOE_CHECK(name == "auto", "--device must be auto, cpu or cuda, found ", name);
  return cuda::is_available() ? Device::cuda() : Device::cpu();
}

std::optional<DType> autocast_type(const std::string& precision, Device device) {
  VIMOE_CHECK(precision == "auto" || precision == "f32" || precision == "bf16",
              "--precision must be auto, f32 or bf16, found ", precision);
  if (precision == "bf16" || (precision == "auto" && device.is_cuda())) return DType::BF16;
  return std::nullopt;
}

// ---- model and optimiser ---------------------------------------------------------------

std::shared_ptr<models::ImageModel> build_model(const RunConfig& cfg, int64_t num_classes, int64_t channels) {
  auto model = models::create_model(cfg.model, cfg.model_options(num_classes, channels));
  model->init_weights(cfg.seed);
  if (cfg.init != "scratch") std::fprintf(stderr, "%s\n", model->load_pretrained(cfg.init).c_str());
  return model;
}

models::SegInference seg_inference(const RunConfig& cfg, const models::InputSpec& input) {
  models::SegInference how;
  how.slide = cfg.seg_eval == "slide";
  how.crop = input.image_size;
  how.stride = cfg.seg_stride > 0 ? cfg.seg_stride : std::max<int64_t>(1, input.image_size * 2 / 3);
  return how;
}

}  // namespace vimoe::app
