// General-purpose layers. Model-specific blocks live in models/.
#pragma once
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

// LayerNorm over the last dimension, with a learned scale (ones) and shift (zeros).
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-6);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  double eps;
};

}  // namespace vimoe::nn
