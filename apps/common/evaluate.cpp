#include "apps/common/evaluate.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/ops/index.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"

namespace vimoe::app {

EvalResult evaluate(models::ImageModel& model, data::Loader& loader, Device device, bool progress,
                    std::optional<DType> autocast, const std::vector<int64_t>* group_of) {
  NoGradGuard no_grad;
  AutocastGuard mixed(autocast.value_or(DType::BF16), autocast.has_value());
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  const int64_t classes = loader.dataset().num_classes();
  r.class_total.assign(classes, 0);
  r.class_correct.assign(classes, 0);
  r.confusion.assign(classes, std::vector<int64_t>(classes, 0));
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0, router_hits = 0;
  std::set<std::vector<int32_t>> paths;
  const bool tty = ::isatty(::fileno(stderr));
  const int64_t epoch = loader.position().epoch;
  loader.seek(epoch, 0);
  int64_t done = 0;
  while (std::optional<data::Batch> b = loader.next()) {
    r.skipped.insert(r.skipped.end(), b->skipped.begin(), b->skipped.end());
    const auto out = model.forward(b->images.to(device));
    const Tensor logits = out.logits.to(DType::F32).cpu();
    const int64_t B = logits.size(0);
    loss_sum += cross_entropy(logits, b->labels).item<double>() * static_cast<double>(B);
    const int64_t k = std::min<int64_t>(5, classes);
    const std::vector<int64_t> best = topk(logits, k, 1).indices.to_vector<int64_t>();
    const std::vector<int64_t> labels = b->labels.to_vector<int64_t>();
    for (int64_t i = 0; i < B; ++i) {
      ++r.class_total[labels[i]];
      ++r.confusion[labels[i]][best[i * k]];
      if (best[i * k] == labels[i]) {
        ++top1;
        ++r.class_correct[labels[i]];
      }
      for (int64_t j = 0; j < k; ++j) top5 += best[i * k + j] == labels[i];
    }
    if (group_of && out.router_logits.defined()) {
      const std::vector<int64_t> chosen = argmax(out.router_logits.to(DType::F32), 1).cpu().to_vector<int64_t>();
      for (int64_t i = 0; i < B; ++i) router_hits += chosen[i] == (*group_of)[labels[i]];
    }
    // Routing: count each image's (or token's) top-1 expert per class and layer.
    if (r.routing_counts.empty()) {
      r.moe_blocks = out.moe_blocks;
      r.routing_grids = out.routing_grids;
      for (const Routing& rt : out.routing) {
        r.routing_counts.emplace_back(classes, std::vector<int64_t>(rt.probs.size(1), 0));
        r.expert_counts.emplace_back(rt.probs.size(1));
      }
    }
    std::vector<std::vector<int32_t>> image_paths(B);
    // The batch's images that become routing maps: each the first of its class, while fewer
    // than kRoutedImages classes have one.
    std::vector<int64_t> mapped;
    const bool spatial = !out.routing_grids.empty() && out.routing_grids[0].height > 0;
    for (int64_t i = 0; i < B && spatial; ++i) {
      const bool seen = std::any_of(r.routed_images.begin(), r.routed_images.end(),
                                    [&](const EvalResult::RoutedImage& m) { return m.label == labels[i]; });
      if (!seen && static_cast<int64_t>(r.routed_images.size()) < kRoutedImages) {
        mapped.push_back(i);
        r.routed_images.push_back({b->images.select(0, i).to(DType::F32).cpu().contiguous(), labels[i], {}});
      }
    }
    if (!out.routing.empty()) r.image_labels.insert(r.image_labels.end(), labels.begin(), labels.end());
    for (size_t l = 0; l < out.routing.size(); ++l) {
      const Routing& rt = out.routing[l];
      const int64_t k = rt.expert_ids.size(1), experts = rt.probs.size(1);
      const std::vector<int32_t> ids = rt.expert_ids.contiguous().cpu().to_vector<int32_t>();
      const std::vector<float> keep =
          rt.keep.defined() ? rt.keep.to(DType::F32).contiguous().cpu().to_vector<float>() : std::vector<float>{};
      const int64_t per_image = static_cast<int64_t>(ids.size()) / (B * k);
      for (int64_t i = 0; i < B; ++i) {
        std::vector<int32_t> per_expert(experts, 0);
        for (int64_t t = 0; t < per_image; ++t) {
          const int64_t row = i * per_image + t;
          ++r.routing_counts[l][labels[i]][ids[row * k]];
          for (int64_t j = 0; j < k; ++j)
            if (keep.empty() || keep[row * k + j] > 0) ++per_expert[ids[row * k + j]];
        }
        r.expert_counts[l].add_image(per_expert);
        if (per_image == 1) image_paths[i].push_back(ids[i * k]);
      }
      const models::RoutingGrid& grid = out.routing_grids[l];
      for (size_t m = 0; m < mapped.size(); ++m) {
        std::vector<int32_t> top(grid.height * grid.width);
        for (int64_t p = 0; p < grid.height * grid.width; ++p)
          top[p] = ids[(mapped[m] * per_image + grid.first + p) * k];
        r.routed_images[r.routed_images.size() - mapped.size() + m].top_expert.push_back(std::move(top));
      }
    }
    if (!out.routing.empty() && !image_paths[0].empty())
      for (auto& p : image_paths) paths.insert(p);
    done += B;
    if (progress && tty)
      std::fprintf(stderr, "\r  evaluating %lld/%lld", static_cast<long long>(done + static_cast<int64_t>(r.skipped.size())),
                   static_cast<long long>(loader.dataset().size()));
  }
  if (progress && tty) std::fprintf(stderr, "\n");
  r.images = done;
  r.loss = done ? loss_sum / static_cast<double>(done) : 0;
  r.top1 = done ? static_cast<double>(top1) / static_cast<double>(done) : 0;
  r.top5 = done ? static_cast<double>(top5) / static_cast<double>(done) : 0;
  r.distinct_paths = static_cast<int64_t>(paths.size());
  if (group_of && done && r.routing_counts.size() > 0 && model.moe_config().single_router)
    r.router_accuracy = static_cast<double>(router_hits) / static_cast<double>(done);
  model.train(was_training);
  return r;
}

}  // namespace vimoe::app
