#include "data/loader.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "data/random_stream.h"
#include "engine/cuda/runtime.h"
#include "engine/error.h"

namespace vimoe::data {

// ---- HostBufferPool --------------------------------------------------------------------

std::shared_ptr<HostBufferPool> HostBufferPool::create(AllocFn alloc, FreeFn free,
                                                       size_t max_cached) {
  return std::shared_ptr<HostBufferPool>(
      new HostBufferPool(std::move(alloc), std::move(free), max_cached));
}

std::shared_ptr<HostBufferPool> HostBufferPool::create(size_t max_cached) {
  return create(
      [](size_t n) { return std::aligned_alloc(64, (std::max<size_t>(n, 1) + 63) / 64 * 64); },
      [](void* p) { std::free(p); }, max_cached);
}

std::shared_ptr<HostBufferPool> HostBufferPool::create_pinned(size_t max_cached) {
#ifdef VIMOE_WITH_CUDA
  VIMOE_CHECK(cuda::is_available(), "HostBufferPool: pinned memory needs a CUDA device: ",
              cuda::unavailable_reason());
  return create(
      [](size_t n) -> void* {
        void* p = nullptr;
        return cudaHostAlloc(&p, std::max<size_t>(n, 1), cudaHostAllocDefault) == cudaSuccess
                   ? p
                   : nullptr;
      },
      // At process exit the CUDA context may already be gone; nothing useful to do then.
      [](void* p) { (void)cudaFreeHost(p); }, max_cached);
#else
  (void)max_cached;
  VIMOE_FAIL("HostBufferPool: pinned memory needs a build with CUDA");
#endif
}

HostBufferPool::~HostBufferPool() {
  for (auto& [ptr, n] : free_list_) free_(ptr);
}

std::shared_ptr<Storage> HostBufferPool::acquire(size_t nbytes) {
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find_if(free_list_.begin(), free_list_.end(),
                           [&](const auto& e) { return e.second == nbytes; });
    if (it != free_list_.end()) {
      ptr = it->first;
      free_list_.erase(it);
    }
  }
  if (ptr == nullptr) {
    ptr = alloc_(nbytes);
    VIMOE_CHECK(ptr != nullptr, "HostBufferPool: cannot allocate ", nbytes, " bytes");
    std::lock_guard<std::mutex> lock(mutex_);
    ++allocations_;
  }
  // The closure owns the pool, so a batch tensor kept past the loader still frees correctly.
  std::shared_ptr<HostBufferPool> self = shared_from_this();
  return Storage::wrap(ptr, nbytes, Device::cpu(),
                       [self, nbytes](void* p) { self->give_back(p, nbytes); });
}

void HostBufferPool::give_back(void* ptr, size_t nbytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_list_.size() < max_cached_) {
      free_list_.emplace_back(ptr, nbytes);
      return;
    }
  }
  free_(ptr);
}

int64_t HostBufferPool::allocations() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return allocations_;
}

int64_t HostBufferPool::cached() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(free_list_.size());
}

// ---- Loader ------------------------------------------------------------------------------

Loader::Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  VIMOE_CHECK(dataset_ != nullptr, "Loader: no dataset given");
  VIMOE_CHECK(options_.batch_size > 0, "Loader: batch_size must be > 0, got ", options_.batch_size);
  VIMOE_CHECK(options_.num_workers >= 0 && options_.prefetch >= 0, "Loader: num_workers (",
              options_.num_workers, ") and prefetch (", options_.prefetch, ") must be >= 0");
  if (dataset_->dense_labels()) {
    VIMOE_CHECK(!options_.transform && !options_.mix, "Loader: ", dataset_->name(), " has label maps: its samples "
                "take a pair_transform (image and label together), not an image transform or mixing");
  } else {
    VIMOE_CHECK(!options_.pair_transform, "Loader: ", dataset_->name(), " has image labels, not label maps: give "
                "an image transform instead of a pair_transform");
  }
  if (options_.mix) {
    if (options_.mix->num_classes == 0) options_.mix->num_classes = dataset_->num_classes();
    VIMOE_CHECK(options_.mix->num_classes > 0, "Loader: mixing needs num_classes > 0 (",
                dataset_->name(), " has ", dataset_->num_classes(), ")");
  }
  const int64_t n = dataset_->size(), bs = options_.batch_size;
  batches_per_epoch_ = options_.drop_last ? n / bs : (n + bs - 1) / bs;
  depth_ = options_.prefetch > 0 ? options_.prefetch : std::max(2 * options_.num_workers, 1);
  pinned_ = options_.pin_memory && cuda::is_available();
  // Enough cached buffers for every batch that can be in flight or waiting, plus the one the
  // consumer holds.
  const auto cache = static_cast<size_t>(depth_ + options_.num_workers + 2);
  pool_ = pinned_ ? HostBufferPool::create_pinned(cache) : HostBufferPool::create(cache);
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

std::shared_ptr<const std::vector<int64_t>> Loader::permutation(int64_t epoch) const {
  std::lock_guard<std::mutex> lock(perm_mutex_);
  for (auto it = perms_.begin(); it != perms_.end(); ++it) {
    if (it->first != epoch) continue;
    auto hit = *it;  // move to the back: most recently used
    perms_.erase(it);
    perms_.push_back(hit);
    return hit.second;
  }
  auto perm = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(dataset_->size()));
  std::iota(perm->begin(), perm->end(), int64_t{0});
  if (options_.shuffle) {
    // Fisher-Yates driven by the epoch's own stream: a pure function of (seed, epoch).
    RandomStream rng(options_.seed, StreamPurpose::Shuffle, static_cast<uint64_t>(epoch), 0);
    for (int64_t i = static_cast<int64_t>(perm->size()) - 1; i > 0; --i)
      std::swap((*perm)[i], (*perm)[rng.randint(0, i + 1)]);
  }
  // Workers straddle at most an epoch boundary (two permutations), a seek adds one more.
  if (perms_.size() >= 3) perms_.erase(perms_.begin());
  perms_.emplace_back(epoch, perm);
  return perm;
}

std::vector<int64_t> Loader::order(int64_t epoch) const {
  VIMOE_CHECK(epoch >= 0, "Loader::order: epoch must be >= 0, got ", epoch);
  return *permutation(epoch);
}

Batch Loader::build(int64_t global_batch) const {
  const int64_t epoch = global_batch / batches_per_epoch_, b = global_batch % batches_per_epoch_;
  const std::shared_ptr<const std::vector<int64_t>> perm = permutation(epoch);
  const int64_t start = b * options_.batch_size;
  const int64_t n = std::min(options_.batch_size, dataset_->size() - start);

  Batch out;
  out.epoch = epoch;
  out.batch = b;
  out.indices.reserve(static_cast<size_t>(n));
  std::vector<int64_t> labels;
  labels.reserve(static_cast<size_t>(n));
  const bool dense = dataset_->dense_labels();
  std::vector<int64_t> masks;  // the label maps, one after another
  int64_t mask_h = 0, mask_w = 0;
  int64_t C = 0, H = 0, W = 0;
  float* images = nullptr;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t index = (*perm)[static_cast<size_t>(start + i)];
    try {
      Sample s;
      try {
        s = dataset_->get(index);
      } catch (const UnreadableSample& e) {
        out.skipped.push_back({index, e.what()});
        continue;
      }
      RandomStream rng(options_.seed, StreamPurpose::Sample, static_cast<uint64_t>(epoch),
                       static_cast<uint64_t>(index));
      FloatImage img;
      if (dense) {
        SegPair pair{to_float(s.image), std::move(s.mask)};
        if (options_.pair_transform) pair = options_.pair_transform(std::move(pair), rng);
        if (out.indices.empty()) mask_h = pair.mask.height, mask_w = pair.mask.width;
        VIMOE_CHECK(pair.mask.channels == 1 && pair.mask.height == mask_h && pair.mask.width == mask_w,
                    "the label map is ", pair.mask.height, "x", pair.mask.width, " but the batch's first is ", mask_h,
                    "x", mask_w, "; a pair transform must bring label maps to one size");
        masks.insert(masks.end(), pair.mask.pixels.begin(), pair.mask.pixels.end());
        img = std::move(pair.image);
      } else {
        img = to_float(s.image);
        if (options_.transform) img = options_.transform(std::move(img), rng);
      }
      if (images == nullptr) {
        C = img.channels;
        H = img.height;
        W = img.width;
        // A full batch's worth of bytes even for a short batch, so buffers recycle.
        const size_t nbytes = static_cast<size_t>(options_.batch_size * C * H * W) * sizeof(float);
        out.images = Tensor::from_storage(pool_->acquire(nbytes), DType::F32, {n, C, H, W},
                                          contiguous_strides({n, C, H, W}), 0);
        images = out.images.data<float>();
      }
      VIMOE_CHECK(img.channels == C && img.height == H && img.width == W, "the sample is [",
                  img.channels, ", ", img.height, ", ", img.width, "] but the batch's first is [",
                  C, ", ", H, ", ", W, "]; a transform must bring images to one size");
      VIMOE_CHECK(static_cast<int64_t>(img.values.size()) == C * H * W, "the transform returned ",
                  img.values.size(), " values for a [", C, ", ", H, ", ", W, "] image");
      const auto kept = static_cast<int64_t>(labels.size());
      std::memcpy(images + kept * C * H * W, img.values.data(), img.values.size() * sizeof(float));
      labels.push_back(s.label);
      out.indices.push_back(index);
    } catch (const std::exception& e) {
      VIMOE_FAIL("Loader: sample ", index, " of ", dataset_->name(), " (epoch ", epoch,
                 ", batch ", b, "): ", e.what());
    }
  }
  const auto kept = static_cast<int64_t>(labels.size());
  VIMOE_CHECK(kept > 0, "Loader: batch ", b, " of epoch ", epoch, " of ", dataset_->name(),
              ": none of its ", n, " samples is readable; the first: ", out.skipped.front().reason);
  if (kept < n) {  // the same buffer, viewed as the readable samples only
    out.images = Tensor::from_storage(out.images.storage(), DType::F32, {kept, C, H, W},
                                      contiguous_strides({kept, C, H, W}), 0);
  }
  out.labels = Tensor::empty({kept}, DType::I64);
  std::memcpy(out.labels.data<int64_t>(), labels.data(), labels.size() * sizeof(int64_t));
  if (dense) out.masks = Tensor::from_vector<int64_t>(masks, {kept, mask_h, mask_w});
  if (options_.mix) {
    try {
      RandomStream rng(options_.seed, StreamPurpose::Batch, static_cast<uint64_t>(epoch),
                       static_cast<uint64_t>(b));
      out.targets = mix_batch(out.images, out.labels, *options_.mix, rng).targets;
    } catch (const std::exception& e) {
      VIMOE_FAIL("Loader: mixing batch ", b, " of epoch ", epoch, ": ", e.what());
    }
  }
  return out;
}

void Loader::start_workers() {
  if (!workers_.empty() || options_.num_workers == 0) return;
  for (int i = 0; i < options_.num_workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

void Loader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || (batches_per_epoch_ > 0 && next_claim_ < consume_ + depth_); });
    if (stop_) return;
    const int64_t g = next_claim_++, generation = generation_;
    lock.unlock();
    Slot slot;
    try {
      slot.batch = build(g);
    } catch (...) {
      slot.error = std::current_exception();
    }
    lock.lock();
    if (generation == generation_) {
      ready_.emplace(g, std::move(slot));
      ready_cv_.notify_all();
    }
  }
}

std::optional<Batch> Loader::next() {
  if (batch_ >= batches_per_epoch_) {  // the epoch is over (or holds no batch at all)
    ++epoch_;
    batch_ = 0;
    return std::nullopt;
  }
  const int64_t g = epoch_ * batches_per_epoch_ + batch_;
  Batch out;
  if (options_.num_workers == 0) {
    out = build(g);
  } else {
    std::unique_lock<std::mutex> lock(mutex_);
    if (workers_.empty()) start_workers();
    ready_cv_.wait(lock, [&] { return ready_.count(g) != 0; });
    auto it = ready_.find(g);
    // A failed batch stays put: retrying next() reports the same error.
    if (it->second.error) std::rethrow_exception(it->second.error);
    out = std::move(*it->second.batch);
    ready_.erase(it);
    consume_ = g + 1;
    work_cv_.notify_all();
  }
  ++batch_;
  return out;
}

void Loader::seek(int64_t epoch, int64_t batch) {
  VIMOE_CHECK(epoch >= 0 && batch >= 0 && batch <= batches_per_epoch_, "Loader::seek: position (",
              epoch, ", ", batch, ") is outside epoch >= 0, batch in [0, ", batches_per_epoch_,
              "]");
  std::map<int64_t, Slot> dropped;  // destroyed after the lock is released
  {
    std::lock_guard<std::mutex> lock(mutex_);
    epoch_ = epoch;
    batch_ = batch;
    consume_ = next_claim_ = epoch * batches_per_epoch_ + batch;
    ++generation_;
    dropped.swap(ready_);
  }
  work_cv_.notify_all();
}

double measure_loader_throughput(Loader& loader, int batches) {
  VIMOE_CHECK(batches > 0, "measure_loader_throughput: batches must be > 0, got ", batches);
  VIMOE_CHECK(loader.batches_per_epoch() > 0, "measure_loader_throughput: ",
              loader.dataset().name(), " yields no batch per epoch");
  const auto t0 = std::chrono::steady_clock::now();
  int64_t images = 0;
  for (int done = 0; done < batches;) {
    std::optional<Batch> b = loader.next();
    if (!b) continue;  // an epoch ended; the next call starts the following one
    images += b->images.size(0);
    ++done;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(images) / std::max(seconds, 1e-9);
}

}  // namespace vimoe::data
