// The batch loader: shuffles a dataset by epoch, decodes and augments samples on worker
// threads, and hands out batches in order.
//
// Determinism: batch b of epoch e is a pure function of (seed, e, b) -- the epoch's
// permutation comes from the stream (seed, Shuffle, e), sample i's augmentation from
// (seed, Sample, e, i) and the batch's mixup/cutmix from (seed, Batch, e, b) -- so the
// batches are bit-identical for any number of workers, and seek(e, b) resumes exactly.
//
//   Loader loader(dataset, {.batch_size = 256, .seed = 1, .num_workers = 8,
//                           .transform = train_transform(224)});
//   loader.seek(state.epoch, state.batch);           // when resuming a checkpoint
//   for (;;) {
//     while (std::optional<Batch> b = loader.next()) train_step(*b);
//     // next() returned nullopt: the epoch is over; the loader moved to the next one
//   }
//
// Unreadable samples: an item whose get() throws UnreadableSample (a truncated or corrupt
// image) is left out of its batch and listed in Batch::skipped with the reason, so that batch
// is smaller; the same item is skipped (and listed) in every epoch. A batch in which no item
// is readable is an error. Any other exception is an error.
//
// Threads: the Loader itself is used from one thread (the consumer). Workers build whole
// batches; at most `prefetch` batches are claimed ahead of the consumer. A worker's exception
// reaches the consumer as a vimoe::Error naming the sample's dataset index, thrown from the
// next() that would have returned that batch (and again on every retry). The destructor
// stops the workers and joins them (each finishes the batch it is building).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/seg_transforms.h"
#include "data/transforms.h"
#include "engine/storage.h"
#include "engine/tensor.h"

namespace vimoe::data {

// Recycles equally sized host buffers for batch tensors: a Storage from acquire() returns
// its memory to the pool when the last tensor viewing it goes away (or frees it when the
// pool already caches `max_cached` buffers). Storages may outlive every other owner of the
// pool: they keep it alive. Thread-safe.
class HostBufferPool : public std::enable_shared_from_this<HostBufferPool> {
 public:
  using AllocFn = std::function<void*(size_t nbytes)>;
  using FreeFn = std::function<void(void* ptr)>;

  // Plain 64-byte aligned memory.
  static std::shared_ptr<HostBufferPool> create(size_t max_cached);
  // Page-locked memory (cudaHostAlloc) so host-to-device copies run at full speed; throws
  // vimoe::Error in a build without CUDA or when no device is usable.
  static std::shared_ptr<HostBufferPool> create_pinned(size_t max_cached);
  // Custom allocation functions (alloc returns null on failure).
  static std::shared_ptr<HostBufferPool> create(AllocFn alloc, FreeFn free, size_t max_cached);
  ~HostBufferPool();

  std::shared_ptr<Storage> acquire(size_t nbytes);
  int64_t allocations() const;  // buffers allocated so far (reuses not counted)
  int64_t cached() const;       // free buffers held now

 private:
  HostBufferPool(AllocFn alloc, FreeFn free, size_t max_cached)
      : alloc_(std::move(alloc)), free_(std::move(free)), max_cached_(max_cached) {}
  void give_back(void* ptr, size_t nbytes);

  AllocFn alloc_;
  FreeFn free_;
  size_t max_cached_;
  mutable std::mutex mutex_;
  std::vector<std::pair<void*, size_t>> free_list_;
  int64_t allocations_ = 0;
};

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;  // drop an epoch's final partial batch
  uint64_t seed = 0;
  int num_workers = 2;  // 0: batches are built on the consumer's thread inside next()
  int prefetch = 0;     // batches claimed ahead of the consumer; 0: 2 * num_workers
  // Per-sample transform after decoding to float CHW in [0, 1]; empty: none (then every
  // image of a batch must already have the same size). The model's input channel count
  // and normalisation belong here (see train_transform / eval_transform).
  Transform transform;
  // Segmentation datasets (Dataset::dense_labels()): the joint transform each (image, label
  // map) pair goes through instead of `transform` (which must then be empty), normalisation
  // included. Empty: none. The images of a batch must come out of one size, and so must its
  // label maps (which may differ from the images': evaluation at the label's resolution).
  // Mixing (`mix`) is refused for such datasets.
  PairTransform pair_transform;
  // Batch-level mixup / cutmix; its num_classes defaults (0) to the dataset's. When set,
  // every batch carries soft targets.
  std::optional<MixConfig> mix;
  // Images in page-locked memory when a CUDA device is usable (ignored otherwise). Such a
  // buffer is reused once its batch tensor is gone, so copy it to the device with a copy
  // that has finished when it returns (Tensor::to does).
  bool pin_memory = false;
};

struct SkippedSample {
  int64_t index = 0;   // dataset index
  std::string reason;  // the UnreadableSample message (it names the file)
};

struct Batch {
  Tensor images;                 // [B, C, H, W] f32 CPU, contiguous
  Tensor labels;                 // [B] i64
  Tensor targets;                // [B, classes] f32 soft targets when mixing; else undefined
  Tensor masks;                  // [B, h, w] i64 label maps of a segmentation dataset (class
                                 // indices or its ignore index); else undefined
  std::vector<int64_t> indices;  // the samples' dataset indices, in batch order
  std::vector<SkippedSample> skipped;  // this batch's unreadable samples, left out of it
  int64_t epoch = 0, batch = 0;  // where this batch sits
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // the batch next() returns next; batches_per_epoch(): the epoch is over
  friend bool operator==(const LoaderPosition&, const LoaderPosition&) = default;
};

class Loader {
 public:
  // Throws vimoe::Error for a null dataset or invalid options.
  Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch of the current epoch, or nullopt once the epoch is exhausted (the
  // position then moves to batch 0 of the next epoch).
  std::optional<Batch> next();
  LoaderPosition position() const { return {epoch_, batch_}; }
  // Makes next() continue at `batch` (0 <= batch <= batches_per_epoch()) of `epoch` >= 0,
  // dropping batches prefetched for the old position.
  void seek(int64_t epoch, int64_t batch = 0);

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // Dataset indices in the order epoch `epoch` visits them.
  std::vector<int64_t> order(int64_t epoch) const;
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }
  // Whether batch images live in page-locked memory.
  bool pinned() const { return pinned_; }

 private:
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };

  std::shared_ptr<const std::vector<int64_t>> permutation(int64_t epoch) const;
  Batch build(int64_t global_batch) const;
  void start_workers();
  void worker_loop();

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  int64_t batches_per_epoch_ = 0;
  int64_t depth_ = 1;  // prefetch window in batches
  bool pinned_ = false;
  std::shared_ptr<HostBufferPool> pool_;

  // Consumer-side position.
  int64_t epoch_ = 0, batch_ = 0;

  // Shared with the workers, under mutex_.
  std::mutex mutex_;
  std::condition_variable work_cv_, ready_cv_;
  int64_t next_claim_ = 0;  // the next global batch (epoch * batches_per_epoch + batch) to build
  int64_t consume_ = 0;     // the global batch the consumer waits for
  int64_t generation_ = 0;  // bumped by seek(): results of older claims are dropped
  bool stop_ = false;
  std::map<int64_t, Slot> ready_;
  std::vector<std::thread> workers_;

  // Recently used epoch permutations (shuffling a large dataset once per batch would cost).
  mutable std::mutex perm_mutex_;
  mutable std::vector<std::pair<int64_t, std::shared_ptr<const std::vector<int64_t>>>> perms_;
};

// Pulls `batches` batches from the loader (crossing epoch ends as needed) and returns the
// images delivered per second of wall time. Advances the loader.
double measure_loader_throughput(Loader& loader, int batches);

}  // namespace vimoe::data
