#include "engine/nn/layers.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/layernorm.h"
#include "engine/ops/linalg.h"
#include "engine/ops/random.h"

namespace vimoe::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias) {
  VIMOE_CHECK(in_features > 0 && out_features > 0, "Linear: invalid sizes ", in_features, " -> ",
              out_features);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight = Tensor::empty({out_features, in_features});
  uniform_(weight, -bound, bound, next_seed());
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = Tensor::empty({out_features});
    uniform_(bias, -bound, bound, next_seed());
    register_parameter("bias", &bias);
  }
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, weight, bias); }

LayerNorm::LayerNorm(int64_t dim, double eps_in) : eps(eps_in) {
  weight = Tensor::ones({dim});
  bias = Tensor::zeros({dim});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }

}  // namespace vimoe::nn
