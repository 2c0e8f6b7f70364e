#include "engine/cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/error.h"

namespace vimoe::cpu {

namespace {

thread_local bool t_in_region = false;

// Marks the calling thread as inside a parallel region for its lifetime.
struct RegionGuard {
  bool prev = t_in_region;
  RegionGuard() { t_in_region = true; }
  ~RegionGuard() { t_in_region = prev; }
};

// One parallel_for: chunks [begin + i * chunk, ...) handed out through `next`.
struct Job {
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t begin = 0, end = 0, chunk = 1, chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> finished{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // the first exception, written once under `failed`
  int workers_inside = 0;    // guarded by the pool's mutex

  // Runs chunks until none is left; returns once this thread can take no more.
  void work() {
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= chunks) return;
      if (!failed.load(std::memory_order_relaxed)) {
        const int64_t b = begin + i * chunk, e = std::min(end, b + chunk);
        try {
          (*fn)(b, e);
        } catch (...) {
          if (!failed.exchange(true)) error = std::current_exception();
        }
      }
      finished.fetch_add(1, std::memory_order_acq_rel);
    }
  }
};

class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int threads() const { return threads_; }

  // False (and nothing run) when another thread is using the pool.
  bool try_run(Job& job) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      ++generation_;
    }
    wake_.notify_all();
    {
      RegionGuard region;
      job.work();
    }
    // The job lives on the caller's stack: it may go only once every chunk is finished and
    // no worker holds it any more.
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] {
      return job.finished.load(std::memory_order_acquire) == job.chunks && job.workers_inside == 0;
    });
    job_ = nullptr;
    return true;
  }

 private:
  void worker_loop() {
    t_in_region = true;  // ops inside a chunk never fan out again
    uint64_t seen = 0;
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;  // null when the caller already finished the job alone
        if (job == nullptr) continue;
        ++job->workers_inside;
      }
      job->work();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --job->workers_inside;
      }
      done_.notify_all();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex busy_;   // held by the thread whose job the pool is running
  std::mutex mutex_;  // guards job_, generation_, stop_ and Job::workers_inside
  std::condition_variable wake_, done_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

int threads_from_environment() {
  if (const char* v = std::getenv("VIMOE_CPU_THREADS"); v != nullptr && v[0] != '\0') {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    VIMOE_CHECK(*end == '\0' && n >= 1 && n <= 1024,
                "VIMOE_CPU_THREADS must be an integer in [1, 1024], found \"", v, "\"");
    return static_cast<int>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex g_pool_mutex;  // guards g_pool and g_threads
// Deliberately leaked at exit (never destroyed): a static destructor elsewhere may still
// run ops after ours would have joined the workers.
Pool* g_pool = nullptr;
int g_threads = 0;  // 0: not configured yet

// The pool, created on first use.
Pool& pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) {
    if (g_threads == 0) g_threads = threads_from_environment();
    g_pool = new Pool(g_threads);
  }
  return *g_pool;
}

}  // namespace

int num_threads() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_threads == 0) g_threads = threads_from_environment();
  return g_threads;
}

void set_num_threads(int n) {
  VIMOE_CHECK(n >= 1 && n <= 1024, "set_num_threads: expected 1..1024 threads, found ", n);
  VIMOE_CHECK(!t_in_region, "set_num_threads: called inside a parallel_for");
  Pool* old = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    old = g_pool;
    g_pool = nullptr;
    g_threads = n;
  }
  delete old;  // joins its workers, outside the lock
}

bool in_parallel_region() { return t_in_region; }

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t n = end - begin;
  if (n <= grain || t_in_region) {
    fn(begin, end);
    return;
  }
  Pool& p = pool();
  if (p.threads() == 1) {
    fn(begin, end);
    return;
  }
  // A few chunks per thread, so a thread that starts late (a busy machine) still finds work
  // and no one waits for a single straggler chunk.
  const int64_t max_chunks = std::min<int64_t>((n + grain - 1) / grain, 4 * p.threads());
  Job job;
  job.fn = &fn;
  job.begin = begin;
  job.end = end;
  job.chunk = (n + max_chunks - 1) / max_chunks;
  job.chunks = (n + job.chunk - 1) / job.chunk;
  if (!p.try_run(job)) {
    fn(begin, end);
    return;
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace vimoe::cpu
