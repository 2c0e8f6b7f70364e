#include "apps/common/evaluate.h"

#include <unistd.h>

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
      for (const Routing& rt : out.routing)
        r.routing_counts.emplace_back(classes, std::vector<int64_t>(rt.probs.size(1), 0));
    }
    std::vector<std::vector<int32_t>> image_paths(B);
    for (size_t l = 0; l < out.routing.size(); ++l) {
      const Tensor ids = out.routing[l].expert_ids.select(1, 0).contiguous().cpu();
      const std::vector<int32_t> e = ids.to_vector<int32_t>();
      const int64_t per_image = static_cast<int64_t>(e.size()) / B;
      for (int64_t i = 0; i < B; ++i)
        for (int64_t t = 0; t < per_image; ++t) ++r.routing_counts[l][labels[i]][e[i * per_image + t]];
      if (per_image == 1)
        for (int64_t i = 0; i < B; ++i) image_paths[i].push_back(e[i]);
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
