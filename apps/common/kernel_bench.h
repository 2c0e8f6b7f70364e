// Kernel benchmarks: each op family on the ViT-S/14 training shapes (B=256 images,
// T=257 tokens, D=384, 6 heads of 64, MLP 1536, N=8 experts), timed with device events,
// reported as time and achieved TFLOP/s or GB/s. The PyTorch peer (bench/peer_kernels.py)
// measures the same work in the same run; bench/compare.py turns both into the ratio table.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/device.h"

namespace vimoe::app {

struct KernelResult {
  std::string family;  // attention, layernorm, gelu, routing, dispatch, adamw, copy, gemm
  std::string name;    // e.g. "attention fwd+bwd"
  std::string shape;   // human-readable problem size
  double ms = 0;       // per call
  double tflops = 0;   // achieved (0 when the op is bandwidth-bound)
  double gbps = 0;     // achieved bytes/s / 1e9 (0 when compute-bound)
};

struct KernelBenchOptions {
  Device device = Device::cuda();
  bool small = false;  // tiny shapes: a smoke test that runs anywhere (CPU included)
  int warmup = 3, iters = 20;
  // Called with each result as soon as it is measured (progress for long runs); may be empty.
  std::function<void(const KernelResult&)> on_result;
};

std::vector<KernelResult> run_kernel_benchmarks(const KernelBenchOptions& options);

}  // namespace vimoe::app
