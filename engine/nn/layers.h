// General-purpose layers. Model-specific blocks live in models/.
#pragma once
#include "engine/nn/module.h"

namespace vimoe::nn {

// y = x @ weight^T + bias, weight [out, in]. Initialised like torch.nn.Linear
// (uniform within +-1/sqrt(in)) from the default generator; models re-initialise as they need.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;  // bias undefined when built without one
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
