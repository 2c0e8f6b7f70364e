#include "engine/nn/init.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/random.h"

namespace vimoe::nn::init {

uint64_t stream(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

void trunc_normal(Tensor& t, double std, uint64_t seed, const std::string& name) {
  NoGradGuard no_grad;
  trunc_normal_(t, std, -2.0, 2.0, seed, stream(name));
}

void fan_in_uniform(Tensor& t, int64_t fan_in, uint64_t seed, const std::string& name) {
  NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  uniform_(t, -bound, bound, seed, stream(name));
}

void normal(Tensor& t, double std, uint64_t seed, const std::string& name) {
  NoGradGuard no_grad;
  normal_(t, 0.0, std, seed, stream(name));
}

bool linear_and_norm(const std::string& path, Module& m, double std, uint64_t seed) {
  NoGradGuard no_grad;
  if (auto* l = dynamic_cast<Linear*>(&m)) {
    trunc_normal(l->weight, std, seed, join(path, "weight"));
    if (l->bias.defined()) l->bias.zero_();
    return true;
  }
  if (auto* n = dynamic_cast<LayerNorm*>(&m)) {
    n->weight.fill_(1.0);
    n->bias.zero_();
    return true;
  }
  return false;
}

}  // namespace vimoe::nn::init
