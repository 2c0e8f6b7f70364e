#include "models/pos_embed.h"

#include <cmath>
#include <vector>

#include "engine/autograd.h"

namespace vimoe::models {

namespace {

constexpr double kA = -0.75;

// Weights of the four taps at offsets -1, 0, 1, 2 around floor(x) for fraction t.
void cubic_weights(double t, double w[4]) {
  auto near = [](double x) { return ((kA + 2) * x - (kA + 3)) * x * x + 1; };        // |x| <= 1
  auto far = [](double x) { return ((kA * x - 5 * kA) * x + 8 * kA) * x - 4 * kA; };  // 1 < |x| < 2
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}

// For each output index: the four clamped source indices and their weights.
struct Taps {
  std::vector<int64_t> idx;  // 4 per output
  std::vector<double> w;
};

Taps taps(int64_t in, int64_t out) {
  Taps t;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t o = 0; o < out; ++o) {
    const double real = scale * (static_cast<double>(o) + 0.5) - 0.5;
    const double base = std::floor(real);
    double w[4];
    cubic_weights(real - base, w);
    for (int k = 0; k < 4; ++k) {
      const int64_t i = static_cast<int64_t>(base) - 1 + k;
      t.idx.push_back(std::min(std::max<int64_t>(i, 0), in - 1));
      t.w.push_back(w[k]);
    }
  }
  return t;
}

}  // namespace

Tensor resample_pos_embed(const Tensor& table, int64_t extra, int64_t out_h, int64_t out_w) {
  VIMOE_CHECK(table.dim() == 3 && table.size(0) == 1, "resample_pos_embed: expected a [1, rows, width] "
              "table, found ", shape_str(table.shape()));
  const int64_t rows = table.size(1) - extra, D = table.size(2);
  const int64_t g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(rows))));
  VIMOE_CHECK(extra >= 0 && rows > 0 && g * g == rows, "resample_pos_embed: ", table.size(1),
              " rows minus ", extra, " leading rows is not a square grid");
  VIMOE_CHECK(out_h > 0 && out_w > 0, "resample_pos_embed: invalid target grid ", out_h, "x", out_w);
  NoGradGuard no_grad;
  if (out_h == g && out_w == g) return table.detach().cpu().clone();
  const Tensor src = table.detach().cpu().to(DType::F64).contiguous();
  const double* in = src.data<double>();
  Tensor dst = Tensor::zeros({1, extra + out_h * out_w, D}, DType::F64);
  double* out = dst.data<double>();
  std::copy(in, in + extra * D, out);
  const Taps ty = taps(g, out_h), tx = taps(g, out_w);
  const double* grid_in = in + extra * D;
  double* grid_out = out + extra * D;
  for (int64_t oy = 0; oy < out_h; ++oy)
    for (int64_t ox = 0; ox < out_w; ++ox) {
      double* o = grid_out + (oy * out_w + ox) * D;
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) {
          const double w = ty.w[oy * 4 + a] * tx.w[ox * 4 + b];
          const double* s = grid_in + (ty.idx[oy * 4 + a] * g + tx.idx[ox * 4 + b]) * D;
          for (int64_t d = 0; d < D; ++d) o[d] += w * s[d];
        }
    }
  return dst.to(table.dtype());
}

}  // namespace vimoe::models
