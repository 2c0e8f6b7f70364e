#include "apps/common/kernel_bench.h"

#include <functional>

#include "apps/common/timing.h"
#include "engine/engine.h"
#include "engine/optim/adamw.h"

namespace vimoe::app {

namespace {

double time_ms(const std::function<void()>& fn, const KernelBenchOptions& o) {
  return app::time_ms(fn, o.warmup, o.iters);
}

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t x : d) {
    if (!s.empty()) s += 'x';
    s += std::to_string(x);
  }
  return s;
}

Tensor rnd(const Shape& shape, uint64_t seed, DType dt, Device dev, double scale = 1.0) {
  Tensor t = randn(shape, seed, TensorOptions(DType::F32, dev));
  return (t * scale).to(dt);
}

}  // namespace

std::vector<KernelResult> run_kernel_benchmarks(const KernelBenchOptions& o) {
  const Device dev = o.device;
  const DType bf16 = DType::BF16;
  // ViT-S/14 at 224, batch 256; --small divides everything down to a smoke test.
  const int64_t B = o.small ? 2 : 256, H = 6, S = o.small ? 17 : 257, Dh = 64, D = H * Dh;
  const int64_t rows = B * S, hidden = 4 * D, experts = 8;
  std::vector<KernelResult> out;
  auto add = [&](std::string family, std::string name, std::string shape, double ms, double flops, double bytes) {
    out.push_back({std::move(family), std::move(name), std::move(shape), ms,
                   flops > 0 ? flops / (ms * 1e-3) / 1e12 : 0, bytes > 0 ? bytes / (ms * 1e-3) / 1e9 : 0});
    if (o.on_result) o.on_result(out.back());
  };

  {  // Device-to-device copy: the bandwidth the memory-bound kernels are measured against.
    const Tensor src = rnd({rows, D}, 1, bf16, dev);
    Tensor dst = Tensor::empty({rows, D}, TensorOptions(bf16, dev));
    const double ms = time_ms([&] { dst.copy_(src); }, o);
    add("copy", "copy", dims({rows, D}) + " bf16", ms, 0, 2.0 * src.nbytes());
  }
  {  // GEMM: a large bf16 product, the machine's matrix ceiling.
    const int64_t n = o.small ? 64 : 8192;
    const Tensor a = rnd({n, n}, 2, bf16, dev), b = rnd({n, n}, 3, bf16, dev);
    NoGradGuard g;
    const double ms = time_ms([&] { matmul(a, b); }, o);
    add("gemm", "gemm", dims({n, n, n}) + " bf16", ms, 2.0 * n * n * n, 0);
  }
  {  // Attention, forward and forward + backward.
    Tensor q = rnd({B, H, S, Dh}, 4, bf16, dev), k = rnd({B, H, S, Dh}, 5, bf16, dev), v = rnd({B, H, S, Dh}, 6, bf16, dev);
    const double fwd_flops = 4.0 * B * H * S * S * Dh;
    {
      NoGradGuard g;
      add("attention", "attention fwd", dims({B, H, S, Dh}) + " bf16", time_ms([&] { attention(q, k, v); }, o),
          fwd_flops, 0);
    }
    for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
    const Tensor dout = rnd({B, H, S, Dh}, 7, bf16, dev);
    const double ms = time_ms([&] { attention(q, k, v).backward(dout); }, o);
    add("attention", "attention fwd+bwd", dims({B, H, S, Dh}) + " bf16", ms, 3.5 * fwd_flops, 0);
  }
  {  // LayerNorm over D.
    Tensor x = rnd({rows, D}, 8, bf16, dev), w = rnd({D}, 9, bf16, dev), b = rnd({D}, 10, bf16, dev);
    {
      NoGradGuard g;
      add("layernorm", "layernorm fwd", dims({rows, D}) + " bf16",
          time_ms([&] { layer_norm(x, w, b, 1e-6); }, o), 0, 2.0 * x.nbytes());
    }
    for (Tensor* t : {&x, &w, &b}) t->set_requires_grad(true);
    const Tensor dy = rnd({rows, D}, 11, bf16, dev);
    add("layernorm", "layernorm fwd+bwd", dims({rows, D}) + " bf16",
        time_ms([&] { layer_norm(x, w, b, 1e-6).backward(dy); }, o), 0, 5.0 * x.nbytes());
  }
  {  // Bias + GELU on the MLP hidden activations.
    Tensor x = rnd({rows, hidden}, 12, bf16, dev), b = rnd({hidden}, 13, bf16, dev);
    {
      NoGradGuard g;
      add("gelu", "bias+gelu fwd", dims({rows, hidden}) + " bf16", time_ms([&] { bias_gelu(x, b); }, o), 0,
          2.0 * x.nbytes());
    }
    for (Tensor* t : {&x, &b}) t->set_requires_grad(true);
    const Tensor dy = rnd({rows, hidden}, 14, bf16, dev);
    add("gelu", "bias+gelu fwd+bwd", dims({rows, hidden}) + " bf16",
        time_ms([&] { bias_gelu(x, b).backward(dy); }, o), 0, 5.0 * x.nbytes());
  }
  {  // Routing: image-level (one row per image) and token-level (one per token).
    for (int64_t r : {B, rows}) {
      Tensor logits = rnd({r, experts}, 15, DType::F32, dev);
      logits.set_requires_grad(true);
      const double ms = time_ms([&] {
        const Routing rt = route_topk(logits, 1, false, 0.01);
        (sum(rt.gates) + rt.aux_loss).backward();
      }, o);
      add("routing", r == B ? "routing fwd+bwd (image)" : "routing fwd+bwd (token)",
          dims({r, experts}) + " f32", ms, 0, 3.0 * logits.nbytes());
    }
  }
  {  // Dispatch: image-level top-1 over 8 experts, the full expert FFN path forward + backward.
    Tensor x = rnd({B, S, D}, 16, bf16, dev);
    Tensor w1 = rnd({experts, hidden, D}, 17, bf16, dev, 0.02), w2 = rnd({experts, D, hidden}, 18, bf16, dev, 0.02);
    Tensor gates = rnd({B, 1}, 19, DType::F32, dev);
    for (Tensor* t : {&x, &w1, &w2, &gates}) t->set_requires_grad(true);
    const Tensor ids = (rand({B, 1}, 20, TensorOptions(DType::F32, dev)) * static_cast<double>(experts)).to(DType::I32);
    const Tensor dy = rnd({B, S, D}, 21, bf16, dev);
    const double ms = time_ms([&] {
      const DispatchPlan plan = plan_dispatch(ids, experts);
      const Tensor h = gelu(grouped_linear(dispatch_rows(x, plan), w1, Tensor(), plan));
      combine_rows(grouped_linear(h, w2, Tensor(), plan), gates, plan).backward(dy);
    }, o);
    add("dispatch", "expert FFN fwd+bwd (image top-1)", dims({B, S, D, hidden, experts}) + " bf16", ms,
        3.0 * 2.0 * 2.0 * rows * D * hidden, 0);
  }
  {  // AdamW over ViT-S/14's parameter count, as one tensor per block-sized piece.
    const int64_t total = o.small ? 4096 : 22'000'000, pieces = 150;
    std::vector<Tensor> params;
    for (int64_t i = 0; i < pieces; ++i) {
      Tensor p = Tensor::zeros({total / pieces}, TensorOptions(DType::F32, dev));
      p.set_requires_grad(true);
      p.set_grad(Tensor::ones({total / pieces}, TensorOptions(DType::F32, dev)));
      params.push_back(p);
    }
    optim::AdamW opt({{params, 1.0, 0.05}}, {});
    add("adamw", "adamw step", std::to_string(total) + " params in " + std::to_string(pieces) + " tensors f32",
        time_ms([&] { opt.step(); }, o), 0, 28.0 * static_cast<double>(total));  // read p, g, m, v; write p, m, v
  }
  return out;
}

}  // namespace vimoe::app
