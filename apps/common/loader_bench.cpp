#include "apps/common/loader_bench.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "data/image_folder.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "engine/cuda/runtime.h"
#include "engine/error.h"

namespace vimoe::app {

LoaderBenchReport run_loader_benchmark(const LoaderBenchOptions& o) {
  VIMOE_CHECK(!o.data_dir.empty(), "loader: --data-dir is required (an image folder, one sub-directory per class)");
  VIMOE_CHECK(o.image_size > 0 && o.batch > 0 && o.batches > 0 && o.warmup_batches >= 0,
              "loader: image size, batch and batches must be positive and warm-up batches >= 0, found ",
              o.image_size, ", ", o.batch, ", ", o.batches, " and ", o.warmup_batches);
  VIMOE_CHECK(!o.workers.empty(), "loader: no worker count given");
  for (int w : o.workers) VIMOE_CHECK(w >= 0, "loader: worker counts must be >= 0, found ", w);

  auto folder = std::make_shared<data::ImageFolder>(o.data_dir);
  LoaderBenchReport report;
  report.dataset = folder->name();
  report.dataset_images = folder->size();
  report.classes = folder->num_classes();

  auto make_loader = [&](int workers) {
    data::LoaderOptions lo;
    lo.batch_size = o.batch;
    lo.shuffle = true;
    lo.seed = o.seed;
    lo.num_workers = workers;
    lo.transform = data::train_transform(o.image_size);
    lo.pin_memory = o.pin_memory && cuda::is_available();
    return std::make_unique<data::Loader>(folder, lo);
  };
  for (int workers : o.workers) {
    if (o.warmup_batches > 0) {
      // A separate loader, so the timed one starts with nothing prefetched.
      auto warm = make_loader(workers);
      data::measure_loader_throughput(*warm, o.warmup_batches);
    }
    auto loader = make_loader(workers);
    LoaderBenchResult r;
    r.workers = workers;
    r.pinned = loader->pinned();
    r.images_per_s = data::measure_loader_throughput(*loader, o.batches);
    r.images_per_s_per_worker = r.images_per_s / std::max(workers, 1);
    if (o.progress) {
      char line[160];
      std::snprintf(line, sizeof line, "%d worker(s): %.1f img/s (%.1f per worker)", workers, r.images_per_s,
                    r.images_per_s_per_worker);
      o.progress(line);
    }
    report.results.push_back(r);
  }
  return report;
}

}  // namespace vimoe::app
