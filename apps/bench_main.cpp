// vimoe-bench: performance measurements.
//   kernels  times every kernel family on the ViT-S/14 training shapes (bench/run_kernels.sh
//            runs it beside the PyTorch peer);
//   e2e      training-step and inference throughput and peak memory of ViT-S/14 and ViMoE
//            on synthetic data (bench/run_e2e.sh runs it beside the PyTorch peer);
//   loader   images/s the data loader delivers on its own from an image folder.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/common/main_guard.h"
#include "apps/common/e2e_bench.h"
#include "apps/common/kernel_bench.h"
#include "apps/common/loader_bench.h"
#include "apps/common/trainer.h"
#include "engine/cpu/host_allocator.h"
#include "engine/cuda/runtime.h"

namespace {

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  std::ofstream f(path);
  VIMOE_CHECK(f.good(), "cannot write ", path);
  f << j.dump(2) << "\n";
}

void print_progress(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

int run_kernels(const std::string& device, vimoe::app::KernelBenchOptions opts, const std::string& json_path) {
  opts.device = vimoe::app::pick_device(device);
  if (!opts.device.is_cuda() && !opts.small)
    print_progress("vimoe-bench kernels: the full ViT-S/14 training shapes are meant for a GPU; on the CPU each "
                   "kernel takes minutes (--small runs tiny shapes in seconds)");
  int measured = 0;
  opts.on_result = [&](const vimoe::app::KernelResult& r) {
    char line[160];
    std::snprintf(line, sizeof line, "  [%d] %s %s: %.4f ms", ++measured, r.name.c_str(), r.shape.c_str(), r.ms);
    print_progress(line);
  };
  const auto results = vimoe::app::run_kernel_benchmarks(opts);
  std::printf("%-36s %-34s %10s %10s %10s\n", "kernel", "shape", "ms", "TFLOP/s", "GB/s");
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : results) {
    std::printf("%-36s %-34s %10.4f %10.1f %10.1f\n", r.name.c_str(), r.shape.c_str(), r.ms, r.tflops, r.gbps);
    j.push_back({{"family", r.family}, {"name", r.name}, {"shape", r.shape}, {"ms", r.ms},
                 {"tflops", r.tflops}, {"gbps", r.gbps}});
  }
  write_json(json_path, j);
  return 0;
}

int run_e2e(const std::string& device, vimoe::app::E2EOptions opts, const std::string& json_path) {
  opts.device = vimoe::app::pick_device(device);
  opts.progress = print_progress;
  std::fprintf(stderr, "e2e on %s: %s at %lldx%lld, batch %lld, %s, %d steps after %d warm-up\n",
               opts.device.is_cuda() ? vimoe::cuda::device_name(opts.device.index).c_str() : "cpu",
               opts.preset.c_str(), static_cast<long long>(opts.image_size), static_cast<long long>(opts.image_size),
               static_cast<long long>(opts.batch), opts.precision.c_str(), opts.steps, opts.warmup);
  const auto results = vimoe::app::run_e2e_benchmarks(opts);
  std::printf("%s", vimoe::app::e2e_table(results).c_str());
  write_json(json_path, vimoe::app::e2e_to_json(opts, results));
  return 0;
}

int run_loader(vimoe::app::LoaderBenchOptions opts, const std::string& json_path) {
  opts.progress = print_progress;
  const auto rep = vimoe::app::run_loader_benchmark(opts);
  std::printf("%s: %lld images, %lld classes; %lldx%lld crops, batch %lld, %d timed batches\n", rep.dataset.c_str(),
              static_cast<long long>(rep.dataset_images), static_cast<long long>(rep.classes),
              static_cast<long long>(opts.image_size), static_cast<long long>(opts.image_size),
              static_cast<long long>(opts.batch), opts.batches);
  std::printf("%8s %8s %12s %18s\n", "workers", "pinned", "img/s", "img/s per worker");
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : rep.results) {
    std::printf("%8d %8s %12.1f %18.1f\n", r.workers, r.pinned ? "yes" : "no", r.images_per_s,
                r.images_per_s_per_worker);
    rows.push_back({{"workers", r.workers}, {"pinned", r.pinned}, {"images_per_s", r.images_per_s},
                    {"images_per_s_per_worker", r.images_per_s_per_worker}});
  }
  write_json(json_path, {{"dataset", rep.dataset}, {"images", rep.dataset_images}, {"classes", rep.classes},
                         {"image_size", opts.image_size}, {"batch", opts.batch}, {"batches", opts.batches},
                         {"results", rows}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  vimoe::cpu::tune_host_allocator();
  CLI::App app{"vimoe-bench: kernel, end-to-end and data loader performance"};
  app.require_subcommand(1);
  std::string device = "auto", json_path;

  auto* kernels = app.add_subcommand("kernels", "time each kernel family on the ViT-S/14 shapes");
  vimoe::app::KernelBenchOptions kopts;
  kernels->add_option("--device", device, "auto, cpu or cuda")->capture_default_str();
  kernels->add_flag("--small", kopts.small, "tiny shapes (a smoke test; runs on the CPU too)");
  kernels->add_option("--iters", kopts.iters, "timed calls per measurement")->capture_default_str();
  kernels->add_option("--json", json_path, "also write the results as JSON here");

  auto* e2e = app.add_subcommand("e2e", "training-step and inference images/s and peak memory, dense ViT and ViMoE");
  vimoe::app::E2EOptions eopts;
  e2e->add_option("--device", device, "auto, cpu or cuda")->capture_default_str();
  e2e->add_option("--preset", eopts.preset, "model preset: vit_tiny, vit_s14, vit_b14, vit_l14")->capture_default_str();
  e2e->add_option("--image-size", eopts.image_size, "input side")->capture_default_str();
  e2e->add_option("--batch", eopts.batch, "images per step")->capture_default_str();
  e2e->add_option("--classes", eopts.num_classes, "classifier outputs")->capture_default_str();
  e2e->add_option("--steps", eopts.steps, "timed iterations per measurement")->capture_default_str();
  e2e->add_option("--warmup", eopts.warmup, "untimed iterations before them")->capture_default_str();
  e2e->add_option("--precision", eopts.precision, "bf16 (autocast) or f32")->capture_default_str();
  e2e->add_option("--models", eopts.models, "dense (the ViT), moe (8 experts in the last 2 blocks, shared "
                  "expert, image-level top-1 routing)")->delimiter(',')->capture_default_str();
  e2e->add_option("--seed", eopts.seed, "weights and synthetic data")->capture_default_str();
  e2e->add_option("--json", json_path, "also write the results as JSON here (bench/compare_e2e.py reads it)");

  auto* loader = app.add_subcommand("loader", "images/s of the data loader alone (decode, crop, flip, normalise)");
  vimoe::app::LoaderBenchOptions lopts;
  lopts.workers = {static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};
  loader->add_option("--data-dir", lopts.data_dir, "an image folder, one sub-directory per class")->required();
  loader->add_option("--image-size", lopts.image_size, "RandomResizedCrop output side")->capture_default_str();
  loader->add_option("--batch", lopts.batch, "images per batch")->capture_default_str();
  loader->add_option("--workers", lopts.workers, "loader threads; a list (1,2,4) measures each (default: all cores)")
      ->delimiter(',')
      ->capture_default_str();
  loader->add_option("--batches", lopts.batches, "timed batches per measurement")->capture_default_str();
  loader->add_option("--warmup", lopts.warmup_batches, "batches pulled first (fills the file cache)")
      ->capture_default_str();
  loader->add_flag("!--no-pin", lopts.pin_memory, "plain host memory even when a CUDA device is usable");
  loader->add_option("--json", json_path, "also write the results as JSON here");

  return vimoe::app::guarded_main("vimoe-bench", [&] {
    CLI11_PARSE(app, argc, argv);
    if (*kernels) return run_kernels(device, kopts, json_path);
    if (*e2e) return run_e2e(device, eopts, json_path);
    return run_loader(lopts, json_path);
  });
}
