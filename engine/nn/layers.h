// General-purpose layers. Model-specific blocks live in models/.
#pragma once
#include <memory>

#include "engine/nn/module.h"
#include "engine/ops/conv.h"

namespace vimoe::nn {

// y = x @ weight^T + bias, weight [out, in]. Initialised like torch.nn.Linear
// (uniform within +-1/sqrt(in)) from the default generator; models re-initialise as they need.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;  // bias undefined when built without one
};

// A 2-d convolution over NCHW input (engine/ops/conv.h): weight [out, in / groups, kH, kW],
// bias [out]. Initialised like torch.nn.Conv2d (uniform within +-1/sqrt(fan_in), fan_in =
// in / groups * kH * kW, for both) from the default generator.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, Conv2dOptions options = {},
         bool bias = true);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;  // bias undefined when built without one
  Conv2dOptions options;
};

// The transformer MLP: fc2(gelu(fc1(x))) over the last dimension, fc1 [hidden, dim] and fc2
// [dim, hidden] (timm's and DINOv2's "mlp.fc1" / "mlp.fc2"); the GELU is tanh-free (erf),
// fused with fc1's bias.
class Mlp : public Module {
 public:
  Mlp(int64_t dim, int64_t hidden);
  Tensor forward(const Tensor& x) const;
  std::shared_ptr<Linear> fc1, fc2;
};

// A learned per-channel scale over the last dimension, gamma [dim] filled with `init`
// (CaiT's LayerScale; DINOv2's "ls1.gamma").
class LayerScale : public Module {
 public:
  LayerScale(int64_t dim, double init);
  Tensor forward(const Tensor& x) const;
  Tensor gamma;
};

// Stochastic depth (Huang et al. 2016): in training, each sample's branch is zeroed with
// probability p and the survivors scaled by 1 / (1 - p); the identity in evaluation or at
// p = 0. No parameters. Draws from the default generator.
class DropPath : public Module {
 public:
  explicit DropPath(double p);
  Tensor forward(const Tensor& x) const;
  double p;
};

// LayerNorm over the last dimension, with a learned scale (ones) and shift (zeros).
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-6);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  double eps;
};

}  // namespace vimoe::nn
