// vimoe-bench: performance measurements. `vimoe-bench kernels` times every kernel family on
// the ViT-S/14 training shapes; bench/run_kernels.sh runs it beside the PyTorch peer.
#include <cstdio>
#include <fstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/common/kernel_bench.h"
#include "apps/common/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"vimoe-bench: kernel and end-to-end performance"};
  app.require_subcommand(1);
  auto* kernels = app.add_subcommand("kernels", "time each kernel family on the ViT-S/14 shapes");
  std::string device = "auto", json_path;
  vimoe::app::KernelBenchOptions opts;
  kernels->add_option("--device", device, "auto, cpu or cuda")->capture_default_str();
  kernels->add_flag("--small", opts.small, "tiny shapes (a smoke test; runs on the CPU too)");
  kernels->add_option("--iters", opts.iters, "timed calls per measurement")->capture_default_str();
  kernels->add_option("--json", json_path, "also write the results as JSON here");
  CLI11_PARSE(app, argc, argv);
  try {
    opts.device = vimoe::app::pick_device(device);
    const auto results = vimoe::app::run_kernel_benchmarks(opts);
    std::printf("%-36s %-34s %10s %10s %10s\n", "kernel", "shape", "ms", "TFLOP/s", "GB/s");
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : results) {
      std::printf("%-36s %-34s %10.4f %10.1f %10.1f\n", r.name.c_str(), r.shape.c_str(), r.ms, r.tflops, r.gbps);
      j.push_back({{"family", r.family}, {"name", r.name}, {"shape", r.shape}, {"ms", r.ms},
                   {"tflops", r.tflops}, {"gbps", r.gbps}});
    }
    if (!json_path.empty()) std::ofstream(json_path) << j.dump(2) << "\n";
    return 0;
  } catch (const vimoe::Error& e) {
    std::fprintf(stderr, "vimoe-bench: error: %s\n", e.what());
    return 1;
  }
}
