#include "apps/common/e2e_bench.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>

#include "apps/common/timing.h"
#include "apps/common/trainer.h"
#include "engine/engine.h"
#include "engine/optim/adamw.h"
#include "models/factory.h"

namespace vimoe::app {

namespace {

// The MoE configuration measured beside the dense model: 8 experts in the last 2 blocks,
// a shared expert, image-level routing, top-1.
constexpr int64_t kExperts = 8, kMoELast = 2;

RunConfig model_config(const E2EOptions& o, const std::string& name) {
  RunConfig c;
  c.model = o.preset;
  c.image_size = o.image_size;
  c.seed = o.seed;
  if (name == "moe") {
    c.experts = kExperts;
    c.moe_last = kMoELast;
    c.shared_expert = true;
    c.routing = "image";
    c.top_k = 1;
  } else {
    VIMOE_CHECK(name == "dense", "e2e: models are dense and moe, found \"", name, "\"");
  }
  return c;
}

// Runs `measure` with the allocator's peaks reset (after handing cached blocks back, so the
// reserved peak is this measurement's own) and stores the peaks it reached.
void with_peaks(Device dev, const std::function<void()>& measure, std::optional<int64_t>* allocated,
                std::optional<int64_t>* reserved) {
  if (dev.is_cuda()) {
    cuda::synchronize();
    cuda::empty_cache();
    cuda::reset_peak_stats();
  }
  measure();
  if (dev.is_cuda()) {
    const cuda::MemoryStats s = cuda::memory_stats();
    *allocated = static_cast<int64_t>(s.peak_allocated_bytes);
    *reserved = static_cast<int64_t>(s.peak_reserved_bytes);
  }
}

void report(const E2EOptions& o, const std::string& line) {
  if (o.progress) o.progress(line);
}

template <typename... Args>
std::string format(const char* fmt, Args... args) {
  char s[256];
  std::snprintf(s, sizeof s, fmt, args...);
  return s;
}

// Mebibytes, or n/a where no peak is known.
std::string mib(const std::optional<int64_t>& bytes, const char* unit = "") {
  return bytes ? format("%.0f%s", static_cast<double>(*bytes) / (1024.0 * 1024.0), unit) : "n/a";
}

E2EResult run_one(const E2EOptions& o, const std::string& name, const Tensor& images, const Tensor& labels) {
  const RunConfig cfg = model_config(o, name);
  manual_seed(o.seed);
  auto model = build_model(cfg, o.num_classes, images.size(1));
  model->to(o.device);
  E2EResult r;
  r.name = name;
  r.description = model->describe();
  r.params = model->num_parameters();
  const bool bf16 = o.precision == "bf16";
  const double batch = static_cast<double>(o.batch);
  report(o, format("%s: %s, %lld parameters", name.c_str(), r.description.c_str(), static_cast<long long>(r.params)));

  // Inference first, while the model has no gradients or optimiser state to count.
  model->eval();
  with_peaks(o.device, [&] {
    NoGradGuard no_grad;
    r.infer_ms = time_ms([&] {
      AutocastGuard autocast(DType::BF16, bf16);
      model->forward(images);
    }, o.warmup, o.steps);
  }, &r.infer_peak_allocated, &r.infer_peak_reserved);
  r.infer_images_per_s = batch / (r.infer_ms * 1e-3);
  report(o, format("%s: inference %.2f ms/batch, %.1f img/s, peak %s", name.c_str(), r.infer_ms,
                   r.infer_images_per_s, mib(r.infer_peak_allocated, " MiB").c_str()));

  // Training: the optimiser state is created by its first step, inside the measurement.
  model->train();
  optim::AdamW optimizer(models::param_groups(*model, cfg.weight_decay, cfg.layer_decay), optim::AdamW::Options{.lr = cfg.lr});
  const std::vector<Tensor> params = model->parameters();
  with_peaks(o.device, [&] {
    r.train_ms = time_ms([&] {
      Tensor loss;
      {
        AutocastGuard autocast(DType::BF16, bf16);
        const auto out = model->forward(images);
        loss = cross_entropy(out.logits.to(DType::F32), labels) + out.aux_loss;
      }
      loss.backward();
      optim::clip_grad_norm(params, cfg.clip_grad);
      optimizer.step();
      optimizer.zero_grad();
    }, o.warmup, o.steps);
  }, &r.train_peak_allocated, &r.train_peak_reserved);
  r.train_images_per_s = batch / (r.train_ms * 1e-3);
  report(o, format("%s: training %.2f ms/step, %.1f img/s, peak %s", name.c_str(), r.train_ms,
                   r.train_images_per_s, mib(r.train_peak_allocated, " MiB").c_str()));
  return r;
}

}  // namespace

std::vector<E2EResult> run_e2e_benchmarks(const E2EOptions& o) {
  VIMOE_CHECK(o.precision == "bf16" || o.precision == "f32", "e2e: --precision must be bf16 or f32, found ",
              o.precision);
  VIMOE_CHECK(o.batch > 0 && o.image_size > 0 && o.num_classes > 0, "e2e: batch, image size and classes must be "
              "positive, found ", o.batch, ", ", o.image_size, ", ", o.num_classes);
  VIMOE_CHECK(o.steps > 0 && o.warmup >= 0, "e2e: needs steps > 0 and warmup >= 0, found ", o.steps, " and ",
              o.warmup);
  VIMOE_CHECK(!o.models.empty(), "e2e: no model to measure (--models dense,moe)");
  // Unknown names fail here, before any work.
  VIMOE_CHECK(models::is_model_name(o.preset), "e2e: unknown model \"", o.preset, "\"");
  for (const std::string& m : o.models) model_config(o, m);

  // Synthetic inputs, made once on the device: nothing but the model is timed.
  const Tensor images = randn({o.batch, 3, o.image_size, o.image_size}, o.seed + 1, TensorOptions(DType::F32, o.device));
  // Uniform [0, 1) scaled in f64 stays below num_classes, so truncation gives a valid label.
  const Tensor labels = (rand({o.batch}, o.seed + 2, TensorOptions(DType::F64)) * static_cast<double>(o.num_classes))
                            .to(DType::I64)
                            .to(o.device);
  std::vector<E2EResult> out;
  for (const std::string& m : o.models) out.push_back(run_one(o, m, images, labels));
  return out;
}

nlohmann::json e2e_to_json(const E2EOptions& o, const std::vector<E2EResult>& results) {
  auto opt = [](const std::optional<int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  nlohmann::json rows = nlohmann::json::array();
  for (const E2EResult& r : results)
    rows.push_back({{"name", r.name},
                    {"impl", "vimoe"},
                    {"description", r.description},
                    {"params", r.params},
                    {"train_ms", r.train_ms},
                    {"train_images_per_s", r.train_images_per_s},
                    {"train_peak_allocated_bytes", opt(r.train_peak_allocated)},
                    {"train_peak_reserved_bytes", opt(r.train_peak_reserved)},
                    {"infer_ms", r.infer_ms},
                    {"infer_images_per_s", r.infer_images_per_s},
                    {"infer_peak_allocated_bytes", opt(r.infer_peak_allocated)},
                    {"infer_peak_reserved_bytes", opt(r.infer_peak_reserved)}});
  const std::string device = o.device.is_cuda() ? cuda::device_name(o.device.index) : "cpu";
  return {{"framework", "vimoe"},
          {"device", device},
          {"config",
           {{"preset", o.preset},
            {"image_size", o.image_size},
            {"batch", o.batch},
            {"num_classes", o.num_classes},
            {"precision", o.precision},
            {"steps", o.steps},
            {"warmup", o.warmup}}},
          {"results", rows}};
}

std::string e2e_table(const std::vector<E2EResult>& results) {
  std::string s;
  char line[256];
  std::snprintf(line, sizeof line, "%-6s %12s %12s %12s %14s %12s %12s %14s\n", "model", "params", "train ms",
                "train img/s", "train peak MiB", "infer ms", "infer img/s", "infer peak MiB");
  s += line;
  for (const E2EResult& r : results) {
    std::snprintf(line, sizeof line, "%-6s %12lld %12.2f %12.1f %14s %12.2f %12.1f %14s\n", r.name.c_str(),
                  static_cast<long long>(r.params), r.train_ms, r.train_images_per_s, mib(r.train_peak_allocated).c_str(),
                  r.infer_ms, r.infer_images_per_s, mib(r.infer_peak_allocated).c_str());
    s += line;
  }
  for (const E2EResult& r : results) s += r.name + ": " + r.description + "\n";
  return s;
}

}  // namespace vimoe::app
