// The loader: coverage and order of epochs, determinism across worker counts, exact resume,
// drop_last, error propagation, shutdown, buffer recycling.
#include <algorithm>
#include <atomic>
#include <numeric>
#include <set>

#include "data/loader.h"
#include "test_util.h"

namespace vimoe::data {
namespace {

// N in-memory images; item i is h x w x c with pixel p = (31 i + p) % 251 and label i % K.
// Item `fail_at` throws vimoe::Error when decoded, items in `unreadable` UnreadableSample; `size_at` gives some items another size.
class SyntheticDataset : public Dataset {
 public:
  SyntheticDataset(int64_t n, int64_t h, int64_t w, int64_t c, int64_t classes)
      : n_(n), h_(h), w_(w), c_(c) {
    for (int64_t k = 0; k < classes; ++k) names_.push_back(std::string(1, 'c').append(std::to_string(k)));
  }
  int64_t size() const override { return n_; }
  Sample get(int64_t index) const override {
    check_index(*this, index);
    gets_++;
    if (index == fail_at_) throw vimoe::Error("boom: cannot decode this one");
    if (unreadable_.count(index)) throw UnreadableSample("cannot decode item " + std::to_string(index));
    const int64_t h = index == odd_size_at_ ? h_ + 1 : h_;
    Sample s;
    s.image = Image(h, w_, c_);
    for (size_t p = 0; p < s.image.pixels.size(); ++p)
      s.image.pixels[p] = static_cast<uint8_t>((31 * index + static_cast<int64_t>(p)) % 251);
    s.label = label(index);
    return s;
  }
  int64_t label(int64_t index) const override { return index % num_classes(); }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string name() const override { return "Synthetic"; }

  int64_t fail_at_ = -1, odd_size_at_ = -1;
  std::set<int64_t> unreadable_;  // items that throw UnreadableSample
  mutable std::atomic<int64_t> gets_{0};

 private:
  int64_t n_, h_, w_, c_;
  std::vector<std::string> names_;
};

std::shared_ptr<SyntheticDataset> synthetic(int64_t n = 103) {
  return std::make_shared<SyntheticDataset>(n, 6, 5, 1, 10);
}

// Every batch of `epochs` epochs, in order.
std::vector<Batch> drain(Loader& loader, int epochs) {
  std::vector<Batch> out;
  for (int e = 0; e < epochs; ++e)
    while (std::optional<Batch> b = loader.next()) out.push_back(std::move(*b));
  return out;
}

void expect_same(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.batch, b.batch);
  EXPECT_EQ(a.indices, b.indices);
  ASSERT_EQ(a.images.shape(), b.images.shape());
  EXPECT_EQ(a.images.to_vector<float>(), b.images.to_vector<float>());  // bit-identical
  EXPECT_EQ(a.labels.to_vector<int64_t>(), b.labels.to_vector<int64_t>());
  ASSERT_EQ(a.targets.defined(), b.targets.defined());
  if (a.targets.defined()) {
    EXPECT_EQ(a.targets.to_vector<float>(), b.targets.to_vector<float>());
  }
}

// Augmentation with random crops, flips and mixing, so determinism is really exercised.
LoaderOptions augmenting(int workers) {
  LoaderOptions o;
  o.batch_size = 8;
  o.seed = 42;
  o.num_workers = workers;
  o.transform = tf::compose({tf::random_resized_crop(4, 4), tf::random_hflip(), tf::channels(3)});
  o.mix = MixConfig{};
  return o;
}

TEST(DataLoader, EverySampleOncePerEpochWithItsPixels) {
  auto ds = synthetic();
  LoaderOptions o;
  o.batch_size = 10;
  o.seed = 3;
  o.num_workers = 3;
  Loader loader(ds, o);
  EXPECT_EQ(loader.batches_per_epoch(), 11);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<int64_t> seen;
    int64_t batch = 0;
    while (std::optional<Batch> b = loader.next()) {
      EXPECT_EQ(b->epoch, epoch);
      EXPECT_EQ(b->batch, batch++);
      const int64_t n = b->images.size(0);
      EXPECT_EQ(b->images.shape(), (Shape{n, 1, 6, 5}));
      EXPECT_EQ(n, batch == 11 ? 3 : 10);
      EXPECT_FALSE(b->targets.defined());
      const std::vector<float> px = b->images.to_vector<float>();
      const std::vector<int64_t> labels = b->labels.to_vector<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        const int64_t index = b->indices[i];
        EXPECT_EQ(labels[i], index % 10);
        for (int64_t p = 0; p < 30; ++p)
          ASSERT_EQ(px[i * 30 + p], static_cast<float>((31 * index + p) % 251) / 255.0f);
      }
      seen.insert(seen.end(), b->indices.begin(), b->indices.end());
    }
    EXPECT_EQ(seen, loader.order(epoch));
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(103);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all);
    EXPECT_EQ(loader.position(), (LoaderPosition{epoch + 1, 0}));
  }
}

TEST(DataLoader, ShufflesDifferPerEpochAndSeed) {
  auto ds = synthetic();
  LoaderOptions o;
  o.num_workers = 0;
  o.seed = 1;
  Loader a(ds, o);
  std::vector<int64_t> identity(103);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(a.order(0), identity);
  EXPECT_NE(a.order(0), a.order(1));
  EXPECT_EQ(a.order(0), a.order(0));
  o.seed = 2;
  Loader b(ds, o);
  EXPECT_NE(a.order(0), b.order(0));
  o.shuffle = false;
  Loader c(ds, o);
  EXPECT_EQ(c.order(5), identity);
}

TEST(DataLoader, SameBatchesForAnyWorkerCount) {
  auto ds = synthetic(45);
  Loader l0(ds, augmenting(0)), l1(ds, augmenting(1)), l4(ds, augmenting(4));
  const std::vector<Batch> b0 = drain(l0, 2), b1 = drain(l1, 2), b4 = drain(l4, 2);
  ASSERT_EQ(b1.size(), 12u);  // ceil(45 / 8) per epoch
  ASSERT_EQ(b0.size(), b1.size());
  ASSERT_EQ(b4.size(), b1.size());
  for (size_t i = 0; i < b1.size(); ++i) {
    SCOPED_TRACE(i);
    expect_same(b0[i], b1[i]);
    expect_same(b4[i], b1[i]);
    EXPECT_EQ(b1[i].images.shape(), (Shape{b1[i].images.size(0), 3, 4, 4}));
    // Soft targets: one row per image, each a distribution.
    const std::vector<float> t = b1[i].targets.to_vector<float>();
    ASSERT_EQ(b1[i].targets.shape(), (Shape{b1[i].images.size(0), 10}));
    for (int64_t r = 0; r < b1[i].images.size(0); ++r)
      EXPECT_NEAR(std::accumulate(t.begin() + r * 10, t.begin() + r * 10 + 10, 0.0), 1.0, 1e-5);
  }
  // Epoch 1 visits the samples in another order than epoch 0.
  EXPECT_NE(b1[0].indices, b1[6].indices);
}

TEST(DataLoader, SeekResumesExactly) {
  auto ds = synthetic(45);
  Loader reference(ds, augmenting(2));
  const std::vector<Batch> all = drain(reference, 3);  // 6 batches per epoch
  ASSERT_EQ(all.size(), 18u);

  // A fresh loader (another worker count) resumed at epoch 1, batch 4.
  Loader resumed(ds, augmenting(3));
  resumed.seek(1, 4);
  EXPECT_EQ(resumed.position(), (LoaderPosition{1, 4}));
  for (size_t i = 10; i < 18; ++i) {
    if (i == 12) {
      ASSERT_FALSE(resumed.next().has_value());  // end of epoch 1
    }
    std::optional<Batch> b = resumed.next();
    ASSERT_TRUE(b.has_value());
    expect_same(*b, all[i]);
  }
  // Seeking back on a running loader drops what it prefetched.
  resumed.seek(0, 1);
  expect_same(*resumed.next(), all[1]);
  // The end-of-epoch position is a valid place to resume too.
  resumed.seek(0, 6);
  EXPECT_FALSE(resumed.next().has_value());
  expect_same(*resumed.next(), all[6]);
  EXPECT_VIMOE_ERROR(resumed.seek(0, 7), "Loader::seek", "(0, 7)", "[0, 6]");
  EXPECT_VIMOE_ERROR(resumed.seek(-1, 0), "Loader::seek");
}

TEST(DataLoader, DropLast) {
  auto ds = synthetic();
  LoaderOptions o;
  o.batch_size = 10;
  o.drop_last = true;
  o.num_workers = 2;
  Loader loader(ds, o);
  EXPECT_EQ(loader.batches_per_epoch(), 10);
  const std::vector<Batch> batches = drain(loader, 1);
  ASSERT_EQ(batches.size(), 10u);
  std::set<int64_t> seen;
  for (const Batch& b : batches) {
    EXPECT_EQ(b.images.size(0), 10);
    seen.insert(b.indices.begin(), b.indices.end());
  }
  EXPECT_EQ(seen.size(), 100u);  // 3 samples of the epoch's permutation are left out

  // A dataset smaller than one batch yields no batch at all, epoch after epoch.
  o.batch_size = 200;
  Loader empty(ds, o);
  EXPECT_EQ(empty.batches_per_epoch(), 0);
  EXPECT_FALSE(empty.next().has_value());
  EXPECT_FALSE(empty.next().has_value());
  EXPECT_EQ(empty.position(), (LoaderPosition{2, 0}));
}

TEST(DataLoader, WorkerErrorsReachTheConsumerWithTheIndex) {
  for (int workers : {0, 1, 3}) {
    SCOPED_TRACE(workers);
    auto ds = synthetic();
    ds->fail_at_ = 37;
    LoaderOptions o;
    o.batch_size = 10;
    o.num_workers = workers;
    o.shuffle = false;
    Loader loader(ds, o);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(loader.next().has_value());
    // Batch 3 holds samples 30..39; it fails, and keeps failing, without moving on.
    EXPECT_VIMOE_ERROR(loader.next(), "sample 37", "Synthetic", "epoch 0, batch 3", "boom");
    EXPECT_VIMOE_ERROR(loader.next(), "sample 37");
    EXPECT_EQ(loader.position(), (LoaderPosition{0, 3}));
    // Skipping past it works.
    loader.seek(0, 4);
    EXPECT_EQ(loader.next()->indices.front(), 40);
  }
  // Images that disagree in size without a transform to fix them: named too.
  auto ds = synthetic();
  ds->odd_size_at_ = 12;
  LoaderOptions o;
  o.batch_size = 10;
  o.shuffle = false;
  Loader loader(ds, o);
  loader.next();
  EXPECT_VIMOE_ERROR(loader.next(), "sample 12", "[1, 7, 5]", "[1, 6, 5]");
}

TEST(DataLoader, UnreadableSamplesAreSkippedAndListed) {
  std::vector<Batch> reference;
  for (int workers : {0, 1, 3}) {
    SCOPED_TRACE(workers);
    auto ds = synthetic();
    ds->unreadable_ = {3, 37, 38, 102};
    LoaderOptions o = augmenting(workers);
    Loader loader(ds, o);
    const std::vector<Batch> batches = drain(loader, 2);
    ASSERT_EQ(batches.size(), 2u * 13u);  // 103 items in batches of 8: 13 per epoch, as without skips
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      std::multiset<int64_t> seen, skipped;
      for (const Batch& b : batches) {
        if (b.epoch != epoch) continue;
        const auto n = static_cast<int64_t>(b.indices.size());
        // The batch holds only its readable samples, with matching labels and targets.
        EXPECT_EQ(b.images.size(0), n);
        EXPECT_EQ(b.labels.size(0), n);
        EXPECT_EQ(b.targets.size(0), n);
        EXPECT_EQ(n + static_cast<int64_t>(b.skipped.size()), b.batch < 12 ? 8 : 103 - 12 * 8);
        const std::vector<int64_t> labels = b.labels.to_vector<int64_t>();
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(labels[i], b.indices[i] % 10);
        seen.insert(b.indices.begin(), b.indices.end());
        for (const SkippedSample& s : b.skipped) {
          skipped.insert(s.index);
          EXPECT_EQ(s.reason, "cannot decode item " + std::to_string(s.index));
        }
      }
      // Every epoch reads every readable item once and lists each unreadable one once.
      EXPECT_EQ(seen.size(), 99u);
      EXPECT_EQ(skipped, (std::multiset<int64_t>{3, 37, 38, 102}));
      for (int64_t bad : ds->unreadable_) EXPECT_EQ(seen.count(bad), 0u);
    }
    // The same batches for any number of workers.
    if (reference.empty()) reference = batches;
    else
      for (size_t i = 0; i < batches.size(); ++i) expect_same(batches[i], reference[i]);
  }
  // A batch of unreadable samples only is an error naming the first one.
  auto ds = synthetic(10);
  ds->unreadable_ = {4, 5, 6, 7};
  LoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  Loader loader(ds, o);
  EXPECT_EQ(loader.next()->indices.size(), 4u);
  EXPECT_VIMOE_ERROR(loader.next(), "batch 1 of epoch 0", "none of its 4 samples is readable",
                     "cannot decode item 4");
}

TEST(DataLoader, ShutdownWithWorkToDo) {
  auto ds = synthetic(2000);
  LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = 4;
  o.prefetch = 16;
  {
    Loader loader(ds, o);
    ASSERT_TRUE(loader.next().has_value());
  }  // joins with batches in flight
  // Prefetch is bounded: at most `prefetch` batches beyond what was consumed.
  EXPECT_LE(ds->gets_.load(), (1 + 16) * 4);
  { Loader never_used(ds, o); }  // no thread was started
}

TEST(DataLoader, BatchesOutliveTheLoader) {
  auto ds = synthetic();
  LoaderOptions o;
  o.num_workers = 2;
  o.batch_size = 5;
  o.shuffle = false;
  std::optional<Batch> kept;
  {
    Loader loader(ds, o);
    kept = loader.next();
  }
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->images.to_vector<float>()[30], static_cast<float>((31 * 1) % 251) / 255.0f);
}

TEST(DataLoader, HostBufferPoolRecycles) {
  std::atomic<int> live{0};
  auto pool = HostBufferPool::create(
      [&](size_t n) { ++live; return std::malloc(n); }, [&](void* p) { --live; std::free(p); }, 1);
  void* first = nullptr;
  {
    auto s = pool->acquire(64);
    first = s->data();
  }
  EXPECT_EQ(pool->cached(), 1);
  {
    auto s = pool->acquire(64);  // the cached buffer comes back
    EXPECT_EQ(s->data(), first);
    auto t = pool->acquire(64);  // a second one is allocated
    EXPECT_NE(t->data(), first);
    auto u = pool->acquire(32);  // another size never reuses
    EXPECT_EQ(pool->allocations(), 3);
  }
  EXPECT_EQ(pool->cached(), 1);  // only one kept; the rest freed
  EXPECT_EQ(live.load(), 1);
  auto survivor = pool->acquire(64);  // the cached 32-byte buffer does not fit: a new one
  EXPECT_EQ(live.load(), 2);
  pool.reset();      // the storage keeps the pool alive...
  EXPECT_EQ(live.load(), 2);
  survivor.reset();  // ...and when it goes, both its buffer and the cached one are freed
  EXPECT_EQ(live.load(), 0);
}

TEST(DataLoader, PinnedOnlyWithADevice) {
  auto ds = synthetic(20);
  LoaderOptions o;
  o.batch_size = 7;
  o.shuffle = false;
  o.pin_memory = true;
  Loader pinned(ds, o);
  EXPECT_EQ(pinned.pinned(), cuda::is_available());
  o.pin_memory = false;
  Loader plain(ds, o);
  const std::vector<Batch> a = drain(pinned, 1), b = drain(plain, 1);
  ASSERT_EQ(a.size(), 3u);
  for (size_t i = 0; i < a.size(); ++i) expect_same(a[i], b[i]);
  if (!cuda::is_available()) EXPECT_VIMOE_ERROR(HostBufferPool::create_pinned(1), "pinned memory");
}

TEST(DataLoader, ThroughputAndOptionErrors) {
  auto ds = synthetic(30);
  Loader loader(ds, augmenting(2));
  EXPECT_GT(measure_loader_throughput(loader, 6), 0.0);  // crosses an epoch end (4 per epoch)
  EXPECT_EQ(loader.position(), (LoaderPosition{1, 2}));
  EXPECT_VIMOE_ERROR(measure_loader_throughput(loader, 0), "batches must be > 0");
  LoaderOptions o;
  o.batch_size = 0;
  EXPECT_VIMOE_ERROR(Loader(ds, o), "batch_size must be > 0");
  o.batch_size = 1;
  o.num_workers = -1;
  EXPECT_VIMOE_ERROR(Loader(ds, o), "num_workers");
  EXPECT_VIMOE_ERROR(Loader(nullptr, LoaderOptions{}), "no dataset");
}

}  // namespace
}  // namespace vimoe::data
