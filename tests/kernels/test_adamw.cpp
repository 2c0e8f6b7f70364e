// The optimiser on the GPU beyond the op-parity rows (tests/op_parity/cases_adamw.cpp: AdamW
// steps on odd sizes; cases_reduce.cpp: grad_norm and clip_grad_norm on odd tensor lists):
// AdamW over many tensors in several groups and launches, and gradient clipping over a
// realistic parameter list, each against its CPU twin.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/optim/adamw.h"
#include "tests/op_parity/op_case.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::parity::compare;
using vimoe::parity::Tol;
using vimoe::testing::uniform;

namespace {

// cases_adamw.cpp: f32 on both sides in the same order up to fused multiply-adds, a few ulps
// of terms of size <= 1 per step.
constexpr Tol kAdamWTol{0, 1e-5, 1e-6};

}  // namespace

// Many tensors of odd sizes in several groups (more than one launch holds, one tensor spanning
// several chunks, empty and one-element tensors), f32 and f64 side by side, some without a
// gradient: every one must match its CPU twin, and the gradient-less ones stay untouched.
TEST(AdamWCuda, ManyTensorsInFewLaunchesMatchTheCpu) {
  VIMOE_REQUIRE_GPU();
  std::vector<Tensor> cpu_params, gpu_params;
  std::vector<optim::ParamGroup> cpu_groups(3), gpu_groups(3);
  const double lr_scale[3] = {1.0, 0.5, 0.25}, decay[3] = {0.05, 0.0, 0.1};
  for (int i = 0; i < 300; ++i) {
    const int64_t n = i == 7 ? 40000 : i == 11 ? 0 : (i * 37) % 401 + 1;
    const DType dt = i % 50 == 3 ? DType::F64 : DType::F32;
    Tensor c = uniform({n}, 100 + i, -1, 1, dt), d = c.cuda();
    c.set_requires_grad(true);
    d.set_requires_grad(true);
    cpu_params.push_back(c);
    gpu_params.push_back(d);
    cpu_groups[i % 3].params.push_back(c);
    gpu_groups[i % 3].params.push_back(d);
  }
  for (int g = 0; g < 3; ++g) {
    cpu_groups[g].lr_scale = gpu_groups[g].lr_scale = lr_scale[g];
    cpu_groups[g].weight_decay = gpu_groups[g].weight_decay = decay[g];
  }
  optim::AdamW cpu_opt(cpu_groups, {.lr = 0.01}), gpu_opt(gpu_groups, {.lr = 0.01});
  std::vector<Tensor> initial;
  for (const Tensor& p : cpu_params) initial.push_back(p.detach().clone());
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < cpu_params.size(); ++i) {
      if (i % 17 == 5) continue;  // never gets a gradient
      const Tensor g = uniform(cpu_params[i].shape(), 1000 * step + i, -1, 1, cpu_params[i].dtype());
      cpu_params[i].set_grad(g);
      gpu_params[i].set_grad(g.cuda());
    }
    cpu_opt.step();
    gpu_opt.step();
  }
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const std::string what = "tensor " + std::to_string(i);
    EXPECT_TRUE(compare(gpu_params[i].detach(), cpu_params[i].detach(), kAdamWTol, what));
    if (i % 17 == 5) {
      EXPECT_TRUE(compare(gpu_params[i].detach(), initial[i], parity::kExact, what + " (no gradient)"));
    }
  }
}

namespace {

// The parameter list of a 4-block ViT-S-width encoder (width 384, MLP 1536, 257 tokens):
// 59 tensors from 10 to 590k elements, 7.4M in all. Every fifth gradient is bf16 (the others
// f32), one is a transposed view (tensor 8, [384, 384]) and one parameter has no gradient
// (tensor 7); gradients uniform in [-0.05, 0.05) give a norm of ~80, clipped at max_norm 1.
struct ParamList {
  std::vector<Tensor> params;
};

ParamList vit_params(Device dev) {
  std::vector<Shape> shapes = {{384, 3, 14, 14}, {384}, {1, 1, 384}, {1, 257, 384}};
  for (int b = 0; b < 4; ++b)
    for (const Shape& s : std::vector<Shape>{{384}, {384}, {1152, 384}, {1152}, {384, 384}, {384},
                                             {384}, {384}, {384}, {1536, 384}, {1536}, {384, 1536},
                                             {384}})
      shapes.push_back(s);
  shapes.push_back({384});
  shapes.push_back({10, 384});
  shapes.push_back({10});
  ParamList l;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const DType dt = i % 5 == 2 ? DType::BF16 : DType::F32;
    Tensor p = Tensor::zeros(shapes[i], TensorOptions(dt, dev));
    p.set_requires_grad(true);
    if (i == 7) {  // no gradient: skipped by both
      l.params.push_back(p);
      continue;
    }
    Tensor g = uniform(shapes[i], 50 + i, -0.05, 0.05, dt).to(dev);
    if (i == 8) g = g.transpose(0, 1).contiguous().transpose(0, 1);  // strided
    p.set_grad(g);
    l.params.push_back(p);
  }
  return l;
}

}  // namespace

TEST(ClipGradNormCuda, MatchesTheCpuOnAVitParameterList) {
  VIMOE_REQUIRE_GPU();
  ParamList h = vit_params(Device::cpu()), d = vit_params(Device::cuda());
  ASSERT_GE(h.params.size(), 50u);
  ASSERT_FALSE(d.params[8].grad().is_contiguous()) << "the test wants one strided gradient";
  std::vector<Tensor> grads_d;
  for (const Tensor& p : d.params) grads_d.push_back(p.grad());
  // f64 squares and sums on both sides (kernels/multi_tensor.cu): only the order of the
  // additions differs, 1e-10 relative is ample (cases_reduce.cpp).
  const Tol norm_tol{0, 1e-10, 0};
  const Tensor gn = optim::grad_norm(grads_d);
  ASSERT_TRUE(gn.is_cuda());
  const Tensor nd = optim::clip_grad_norm(d.params, 1.0), nh = optim::clip_grad_norm(h.params, 1.0);
  EXPECT_GT(nh.item<double>(), 10.0) << "the list must be clipped";
  EXPECT_TRUE(compare(nd, nh, norm_tol, "norm"));
  EXPECT_TRUE(compare(gn, nh, norm_tol, "grad_norm before clipping"));
  // The factors agree to ~1e-15; rounded to a gradient's dtype they are the same value and
  // each product rounds once: equal bits but for a rare one-ulp flip of an f32 product.
  for (size_t i = 0; i < h.params.size(); ++i)
    EXPECT_TRUE(compare(d.params[i].grad(), h.params[i].grad(), Tol{0, 1e-6, 0},
                        "clipped gradient " + std::to_string(i)));
  EXPECT_FALSE(d.params[7].grad().defined());
  // After clipping the norm is max_norm (up to eps and the gradients' rounding).
  EXPECT_NEAR(optim::grad_norm(grads_d).item<double>(), 1.0, 1e-3);
  // Below the limit nothing changes, bit for bit.
  std::vector<Tensor> before;
  for (const Tensor& g : grads_d) before.push_back(g.defined() ? g.cpu() : Tensor());
  const Tensor again = optim::clip_grad_norm(d.params, 10.0);
  EXPECT_NEAR(again.item<double>(), 1.0, 1e-3);
  for (size_t i = 0; i < grads_d.size(); ++i)
    EXPECT_TRUE(compare(grads_d[i], before[i], parity::kExact, "unclipped gradient " + std::to_string(i)));
}

// The multi-tensor norm adds its chunks in a fixed order: run twice, the same bits.
TEST(ClipGradNormCuda, GradNormIsDeterministic) {
  VIMOE_REQUIRE_GPU();
  const ParamList d = vit_params(Device::cuda());
  std::vector<Tensor> grads;
  for (const Tensor& p : d.params) grads.push_back(p.grad());
  const Tensor a = optim::grad_norm(grads), b = optim::grad_norm(grads);
  EXPECT_TRUE(compare(a, b.cpu(), parity::kExact, "second run"));
}

TEST(ClipGradNormCuda, GradientsOnTwoDevicesAreRejected) {
  VIMOE_REQUIRE_GPU();
  EXPECT_VIMOE_ERROR(optim::grad_norm({Tensor::zeros({2}, Device::cuda()), Tensor::zeros({3})}),
                     "grad_norm", "one device", "position 0", "position 1", "cuda", "cpu");
}
