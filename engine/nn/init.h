// Weight initialisation by module type, as timm's `_init_weights` applies one rule per layer
// type to every module of a model (Module::named_modules walks them). Each draw is keyed by
// (seed, the parameter's full dotted name): a model's weights do not depend on the order its
// modules are visited in, and adding a module leaves every other module's draws unchanged.
#pragma once
#include <cstdint>
#include <string>

#include "engine/nn/layers.h"

namespace vimoe::nn::init {

// The Philox stream (engine/ops/random.h's `offset`) for a parameter name: FNV-1a of the name.
uint64_t stream(const std::string& name);

// trunc_normal_(std, bounds +-2 absolute, as timm's defaults) for `name`'s tensor.
void trunc_normal(Tensor& t, double std, uint64_t seed, const std::string& name);
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear and Conv2d parameters.
void fan_in_uniform(Tensor& t, int64_t fan_in, uint64_t seed, const std::string& name);
void normal(Tensor& t, double std, uint64_t seed, const std::string& name);

// The rules timm's ViT and ConvNeXt share, for the module at `path` ("" for the root):
// Linear weight trunc_normal(std), bias 0; LayerNorm weight 1, bias 0. Returns whether the
// module was one of these.
bool linear_and_norm(const std::string& path, Module& m, double std, uint64_t seed);

// "a.b" + "." + "c", or "c" at the root.
inline std::string join(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

}  // namespace vimoe::nn::init
