// Times training steps of the CPU demo model: the vit_tiny ViMoE (28x28x1 images in 4x4
// patches, width 64, depth 4, MoE with 4 experts, top-1, a shared expert and image-level
// routing in the last two blocks) on random Fashion-MNIST-shaped data.
//
// One step is what the demo's training loop does: zero_grad, forward,
// cross_entropy + aux loss, backward, AdamW. Prints the time per step (best and median),
// images per second, the split into forward / backward / optimiser, and, with
// --profile-steps, the op profiler's per-step breakdown (engine/profiler.h), measured in
// separate steps so that the profiler's own cost does not touch the timings.
//
//   cpu_train_step [--steps N] [--warmup N] [--batch B] [--profile-steps N] [--threads N]
//                  [--profile-clock wall|cpu]
//
// --profile-clock cpu profiles the main thread's CPU time instead of wall time: steadier on a
// shared machine, and exact for single-threaded runs (--threads 1).
// --threads sets the engine's CPU threads (as VIMOE_CPU_THREADS does); they run the GEMMs
// too, the BLAS itself being kept single-threaded (OPENBLAS_NUM_THREADS has no effect).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "engine/cpu/host_allocator.h"
#include "engine/cpu/parallel.h"
#include "engine/engine.h"
#include "engine/optim/adamw.h"
#include "engine/profiler.h"
#include "models/vit.h"

using namespace vimoe;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU time of the whole process (every thread, OpenBLAS's included). On a machine shared
// with other work, wall time swings with the load while the CPU time a step needs does not,
// as long as no thread busy-waits.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Args {
  int steps = 20, warmup = 3, batch = 128, profile_steps = 0, threads = 0;
  bool cpu_clock = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    auto value = [&](const char* flag) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", flag);
        std::exit(2);
      }
      return std::atoi(argv[++i]);
    };
    if (!std::strcmp(argv[i], "--steps")) a.steps = value("--steps");
    else if (!std::strcmp(argv[i], "--warmup")) a.warmup = value("--warmup");
    else if (!std::strcmp(argv[i], "--batch")) a.batch = value("--batch");
    else if (!std::strcmp(argv[i], "--profile-steps")) a.profile_steps = value("--profile-steps");
    else if (!std::strcmp(argv[i], "--threads")) a.threads = value("--threads");
    else if (!std::strcmp(argv[i], "--profile-clock") && i + 1 < argc &&
             (!std::strcmp(argv[i + 1], "wall") || !std::strcmp(argv[i + 1], "cpu")))
      a.cpu_clock = !std::strcmp(argv[++i], "cpu");
    else {
      std::fprintf(stderr,
                   "usage: %s [--steps N] [--warmup N] [--batch B] [--profile-steps N] "
                   "[--threads N] [--profile-clock wall|cpu]\n",
                   argv[0]);
      std::exit(2);
    }
  }
  if (a.steps < 1 || a.warmup < 0 || a.batch < 1 || a.profile_steps < 0 || a.threads < 0) {
    std::fprintf(stderr, "invalid arguments\n");
    std::exit(2);
  }
  return a;
}

// Labels from a small LCG: the benchmark does not depend on the engine's random ops.
Tensor random_labels(int64_t n, int64_t classes, uint64_t seed) {
  std::vector<int64_t> v(n);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(classes));
  }
  return Tensor::from_vector(v, {n});
}

struct StepTimes {
  double forward = 0, backward = 0, optimiser = 0;
  double cpu = 0;  // process CPU seconds
  double total() const { return forward + backward + optimiser; }
};

}  // namespace

int main(int argc, char** argv) {
  vimoe::cpu::tune_host_allocator();
  const Args args = parse(argc, argv);
  if (args.threads > 0) cpu::set_num_threads(args.threads);
  // The timed steps run unprofiled whatever VIMOE_PROFILE says; --profile-steps adds some.
  profiler::set_enabled(false);

  models::ViTConfig vit = models::preset("vit_tiny");
  vit.num_classes = 10;
  models::MoEConfig moe;
  moe.experts = 4;
  moe.top_k = 1;
  moe.shared_expert = true;
  moe.routing = models::RoutingLevel::Image;
  moe.blocks = models::last_blocks(vit.depth, 2);
  auto model = std::make_shared<models::VisionTransformer>(vit, moe);
  model->init_weights(1234);
  model->train();

  // Weight decay on matrices only, as usual for ViTs: not on norms, biases, tokens, scales.
  optim::ParamGroup decay, no_decay;
  decay.weight_decay = 0.05;
  for (auto& [name, p] : model->named_parameters()) {
    const bool matrix = p.dim() >= 2 && name.find("token") == std::string::npos &&
                        name.find("pos_embed") == std::string::npos;
    (matrix ? decay : no_decay).params.push_back(p);
  }
  optim::AdamW opt({decay, no_decay}, {});

  const int64_t B = args.batch;
  const Tensor images = randn({B, vit.in_channels, vit.image_size, vit.image_size}, 7);
  const Tensor labels = random_labels(B, vit.num_classes, 11);

  double last_loss = 0;
  auto step = [&]() {
    StepTimes t;
    const double cpu0 = process_cpu_seconds();
    Clock::time_point t0 = Clock::now();
    opt.zero_grad();
    const models::VisionTransformer::Output out = model->forward(images);
    const Tensor loss = cross_entropy(out.logits, labels) + out.aux_loss;
    t.forward = seconds_since(t0);
    t0 = Clock::now();
    loss.backward();
    t.backward = seconds_since(t0);
    t0 = Clock::now();
    {
      VIMOE_PROFILE_SCOPE("optim:adamw");
      opt.step();
    }
    t.optimiser = seconds_since(t0);
    t.cpu = process_cpu_seconds() - cpu0;
    last_loss = loss.item<double>();
    return t;
  };

  std::printf("model: vit_tiny ViMoE, %lld parameters, batch %lld, %d engine thread(s)\n",
              static_cast<long long>(model->num_parameters()), static_cast<long long>(B),
              cpu::num_threads());
  for (int i = 0; i < args.warmup; ++i) step();
  std::vector<StepTimes> times;
  for (int i = 0; i < args.steps; ++i) times.push_back(step());

  std::vector<double> totals, cpus;
  StepTimes mean;
  for (const StepTimes& t : times) {
    totals.push_back(t.total());
    cpus.push_back(t.cpu);
    mean.forward += t.forward / times.size();
    mean.backward += t.backward / times.size();
    mean.optimiser += t.optimiser / times.size();
  }
  std::sort(totals.begin(), totals.end());
  std::sort(cpus.begin(), cpus.end());
  const double best = totals.front(), median = totals[totals.size() / 2];
  std::printf("steps: %d timed after %d warm-up; final loss %.4f\n", args.steps, args.warmup,
              last_loss);
  std::printf("ms/step: best %.1f, median %.1f, mean %.1f\n", 1e3 * best, 1e3 * median,
              1e3 * mean.total());
  std::printf("images/s: %.0f (best step), %.0f (median step)\n", B / best, B / median);
  std::printf("mean split: forward %.1f ms, backward %.1f ms, optimiser %.1f ms\n",
              1e3 * mean.forward, 1e3 * mean.backward, 1e3 * mean.optimiser);
  std::printf("process CPU time per step: best %.1f ms, median %.1f ms (all threads)\n",
              1e3 * cpus.front(), 1e3 * cpus[cpus.size() / 2]);

  if (args.profile_steps > 0) {
    profiler::reset();
    profiler::set_clock(args.cpu_clock ? profiler::ProfileClock::ThreadCpu
                                       : profiler::ProfileClock::Wall);
    profiler::set_enabled(true);
    for (int i = 0; i < args.profile_steps; ++i) step();
    profiler::set_enabled(false);
    std::printf("\nper-step profile over %d steps, %s (self = excluding nested scopes):\n%s",
                args.profile_steps, args.cpu_clock ? "main-thread CPU time" : "wall time",
                profiler::report(args.profile_steps, 45).c_str());
  }
  return 0;
}
