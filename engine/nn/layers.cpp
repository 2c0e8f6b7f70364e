#include "engine/nn/layers.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/gelu.h"
#include "engine/ops/layernorm.h"
#include "engine/ops/linalg.h"
#include "engine/ops/random.h"

namespace vimoe::nn {

namespace {
// torch's default for Linear and Conv2d weights and biases: uniform within +-1/sqrt(fan_in).
Tensor fan_in_uniform(const Shape& shape, int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  Tensor t = Tensor::empty(shape);
  uniform_(t, -bound, bound, next_seed());
  return t;
}
}  // namespace

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias) {
  VIMOE_CHECK(in_features > 0 && out_features > 0, "Linear: invalid sizes ", in_features, " -> ",
              out_features);
  weight = fan_in_uniform({out_features, in_features}, in_features);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = fan_in_uniform({out_features}, in_features);
    register_parameter("bias", &bias);
  }
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, weight, bias); }

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, Conv2dOptions opts,
               bool with_bias)
    : options(opts) {
  VIMOE_CHECK(in_channels > 0 && out_channels > 0 && kernel[0] > 0 && kernel[1] > 0 && opts.groups >= 1 &&
                  in_channels % opts.groups == 0 && out_channels % opts.groups == 0,
              "Conv2d: invalid sizes ", in_channels, " -> ", out_channels, " channels, kernel ", kernel[0], "x",
              kernel[1], ", groups ", opts.groups, " (groups must divide both channel counts)");
  const int64_t fan_in = in_channels / opts.groups * kernel[0] * kernel[1];
  weight = fan_in_uniform({out_channels, in_channels / opts.groups, kernel[0], kernel[1]}, fan_in);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = fan_in_uniform({out_channels}, fan_in);
    register_parameter("bias", &bias);
  }
}

Tensor Conv2d::forward(const Tensor& x) const { return conv2d(x, weight, bias, options); }

Mlp::Mlp(int64_t dim, int64_t hidden) {
  fc1 = register_module("fc1", std::make_shared<Linear>(dim, hidden));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, dim));
}

Tensor Mlp::forward(const Tensor& x) const { return fc2->forward(bias_gelu(linear(x, fc1->weight), fc1->bias)); }

LayerScale::LayerScale(int64_t dim, double init) {
  gamma = Tensor::full({dim}, init);
  register_parameter("gamma", &gamma);
}

Tensor LayerScale::forward(const Tensor& x) const { return x * gamma; }

DropPath::DropPath(double p_in) : p(p_in) {
  VIMOE_CHECK(p >= 0 && p < 1, "DropPath: the drop probability must be in [0, 1), found ", p);
}

Tensor DropPath::forward(const Tensor& x) const {
  if (!is_training() || p == 0) return x;
  return drop_path(x, p, true, next_seed());
}

LayerNorm::LayerNorm(int64_t dim, double eps_in) : eps(eps_in) {
  weight = Tensor::ones({dim});
  bias = Tensor::zeros({dim});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }

}  // namespace vimoe::nn
