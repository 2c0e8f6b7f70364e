#include "models/routing_analysis.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "engine/error.h"

namespace vimoe::models {

void ImageExpertCounts::add_image(const std::vector<int32_t>& image_counts) {
  VIMOE_CHECK(static_cast<int64_t>(image_counts.size()) == experts, "ImageExpertCounts: expected ", experts,
              " counts for an image, found ", image_counts.size());
  counts.insert(counts.end(), image_counts.begin(), image_counts.end());
}

std::vector<int64_t> distinct_experts(const ImageExpertCounts& c) {
  std::vector<int64_t> out(c.images(), 0);
  for (int64_t i = 0; i < c.images(); ++i)
    for (int64_t e = 0; e < c.experts; ++e) out[i] += c.at(i, e) > 0;
  return out;
}

double mean_distinct_experts(const ImageExpertCounts& c) {
  if (c.images() == 0) return 0;
  double sum = 0;
  for (int64_t d : distinct_experts(c)) sum += static_cast<double>(d);
  return sum / static_cast<double>(c.images());
}

std::vector<double> expert_pair_similarity(const ImageExpertCounts& c) {
  const int64_t N = c.experts;
  std::vector<double> shared(N * N, 0), total(N * N, 0);
  for (int64_t img = 0; img < c.images(); ++img)
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) {
        const double a = c.at(img, i), b = c.at(img, j);
        // Images where neither appears add 0 to both sums: "where either appears" holds.
        shared[i * N + j] += a + b - std::abs(a - b);
        total[i * N + j] += a + b;
      }
  std::vector<double> s(N * N);
  for (int64_t k = 0; k < N * N; ++k)
    s[k] = total[k] > 0 ? shared[k] / total[k] : std::numeric_limits<double>::quiet_NaN();
  return s;
}

std::vector<int64_t> activated_params_per_image(const std::vector<ImageExpertCounts>& layers, const ModelSize& size) {
  VIMOE_CHECK(layers.size() == size.expert_params.size(), "activated_params_per_image: ", layers.size(),
              " layers of counts for a model with ", size.expert_params.size(), " MoE layers");
  const int64_t images = layers.empty() ? 0 : layers[0].images();
  std::vector<int64_t> out(images, size.total_params);
  for (size_t l = 0; l < layers.size(); ++l) {
    VIMOE_CHECK(layers[l].images() == images, "activated_params_per_image: layer ", l, " counts ",
                layers[l].images(), " images, layer 0 ", images);
    const std::vector<int64_t> used = distinct_experts(layers[l]);
    for (int64_t i = 0; i < images; ++i) out[i] -= (layers[l].experts - used[i]) * size.expert_params[l];
  }
  return out;
}

double activated_params_at(const ModelSize& size, int64_t experts, double routed_experts_per_image) {
  const auto L = static_cast<double>(size.expert_params.size());
  VIMOE_CHECK(L > 0, "activated_params_at: the model has no MoE layer");
  VIMOE_CHECK(routed_experts_per_image >= 0 && routed_experts_per_image <= L * static_cast<double>(experts),
              "activated_params_at: expected between 0 and ", L * static_cast<double>(experts),
              " routed experts per image (", experts, " experts in ", L, " layers), found ", routed_experts_per_image);
  double out = static_cast<double>(size.total_params);
  const double unused_per_layer = static_cast<double>(experts) - routed_experts_per_image / L;
  for (int64_t p : size.expert_params) out -= unused_per_layer * static_cast<double>(p);
  return out;
}

std::vector<std::vector<double>> rows_per_expert_cdf(const ImageExpertCounts& c, int64_t max_rows) {
  VIMOE_CHECK(max_rows >= 0, "rows_per_expert_cdf: max_rows must be >= 0, found ", max_rows);
  std::vector<std::vector<double>> cdf(c.experts, std::vector<double>(max_rows + 1, 0));
  if (c.images() == 0) return cdf;
  for (int64_t e = 0; e < c.experts; ++e) {
    std::vector<int64_t> histogram(max_rows + 1, 0);
    for (int64_t i = 0; i < c.images(); ++i) {
      const int32_t n = c.at(i, e);
      VIMOE_CHECK(n >= 0 && n <= max_rows, "rows_per_expert_cdf: image ", i, " gives expert ", e, " ", n,
                  " rows; expected 0..", max_rows);
      ++histogram[n];
    }
    int64_t below = 0;
    for (int64_t x = 0; x <= max_rows; ++x) {
      below += histogram[x];
      cdf[e][x] = static_cast<double>(below) / static_cast<double>(c.images());
    }
  }
  return cdf;
}

double class_expert_nmi(const std::vector<std::vector<int64_t>>& counts) {
  const size_t classes = counts.size(), experts = classes ? counts[0].size() : 0;
  std::vector<double> pc(classes, 0), pe(experts, 0);
  double total = 0;
  for (size_t c = 0; c < classes; ++c) {
    VIMOE_CHECK(counts[c].size() == experts, "class_expert_nmi: class ", c, " has ", counts[c].size(),
                " expert counts, class 0 has ", experts);
    for (size_t e = 0; e < experts; ++e) {
      VIMOE_CHECK(counts[c][e] >= 0, "class_expert_nmi: a negative count (", counts[c][e], ") at class ", c,
                  ", expert ", e);
      pc[c] += static_cast<double>(counts[c][e]);
      pe[e] += static_cast<double>(counts[c][e]);
    }
    total += pc[c];
  }
  if (total == 0) return std::numeric_limits<double>::quiet_NaN();
  auto entropy = [total](const std::vector<double>& n) {
    double h = 0;
    for (double v : n)
      if (v > 0) h -= v / total * std::log(v / total);
    return h;
  };
  double mi = 0;
  for (size_t c = 0; c < classes; ++c)
    for (size_t e = 0; e < experts; ++e)
      if (const double n = static_cast<double>(counts[c][e]); n > 0)
        mi += n / total * std::log(n * total / (pc[c] * pe[e]));
  const double norm = (entropy(pc) + entropy(pe)) / 2;
  // Rounding can leave a hair below 0 for independent tables.
  return norm > 0 ? std::max(0.0, mi / norm) : 0.0;
}

}  // namespace vimoe::models
