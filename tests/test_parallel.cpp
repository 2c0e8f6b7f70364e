// The CPU thread pool (engine/cpu/parallel.h): coverage, nesting, exceptions, and the
// promise behind it: every op gives bit-identical results whatever the number of threads.
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "engine/cpu/parallel.h"
#include "engine/optim/adamw.h"
#include "test_util.h"

namespace vimoe {
namespace {

using testing::uniform;

// Runs the test body with `n` pool threads and restores the previous count afterwards.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(cpu::num_threads()) { cpu::set_num_threads(n); }
  ~ThreadCount() { cpu::set_num_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

TEST(Parallel, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadCount tc(threads);
    for (const auto& [begin, end, grain] :
         std::vector<std::array<int64_t, 3>>{{0, 0, 1}, {5, 6, 1}, {0, 1000, 1}, {-7, 993, 10},
                                             {3, 100003, 4096}, {0, 257, 1000}, {0, 64, 0}}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(std::max<int64_t>(end - begin, 0)));
      std::atomic<int> calls{0}, bad_ranges{0};
      cpu::parallel_for(begin, end, grain, [&](int64_t b, int64_t e) {
        ++calls;
        if (b < begin || b >= e || e > end) {
          ++bad_ranges;
          return;
        }
        for (int64_t i = b; i < e; ++i) ++hits[i - begin];
      });
      EXPECT_EQ(bad_ranges.load(), 0);
      for (size_t i = 0; i < hits.size(); ++i)
        ASSERT_EQ(hits[i].load(), 1) << "index " << begin + static_cast<int64_t>(i) << " of ["
                                     << begin << ", " << end << ") grain " << grain
                                     << " with " << threads << " threads";
      if (end - begin <= std::max<int64_t>(grain, 1)) {
        EXPECT_LE(calls.load(), 1);
      }
    }
  }
}

TEST(Parallel, UsesSeveralThreadsAndChunksOfAtLeastTheGrain) {
  ThreadCount tc(2);
  std::mutex m;
  std::condition_variable both_seen;
  std::set<std::thread::id> ids;
  std::vector<int64_t> sizes;
  cpu::parallel_for(0, 1 << 16, 1000, [&](int64_t b, int64_t e) {
    // Each chunk waits (for at most 10 s) until two threads have taken one: proof that the
    // worker runs chunks alongside the caller, however loaded the machine is.
    std::unique_lock<std::mutex> lock(m);
    ids.insert(std::this_thread::get_id());
    sizes.push_back(e - b);
    both_seen.notify_all();
    both_seen.wait_for(lock, std::chrono::seconds(10), [&] { return ids.size() >= 2; });
  });
  EXPECT_EQ(ids.size(), 2u);
  int64_t total = 0;
  for (int64_t size : sizes) {
    total += size;
    EXPECT_GE(size, 1000);
  }
  EXPECT_EQ(total, 1 << 16);
}

TEST(Parallel, NestedCallsRunSeriallyOnTheCallingThread) {
  ThreadCount tc(2);
  EXPECT_FALSE(cpu::in_parallel_region());
  std::vector<std::atomic<int>> hits(64 * 100);
  std::atomic<int> bad_inner{0};
  cpu::parallel_for(0, 64, 1, [&](int64_t b, int64_t e) {
    EXPECT_TRUE(cpu::in_parallel_region());
    for (int64_t i = b; i < e; ++i) {
      const std::thread::id outer = std::this_thread::get_id();
      int inner_calls = 0;
      cpu::parallel_for(0, 100, 1, [&](int64_t ib, int64_t ie) {
        ++inner_calls;
        if (std::this_thread::get_id() != outer || ib != 0 || ie != 100) ++bad_inner;
        for (int64_t j = ib; j < ie; ++j) ++hits[i * 100 + j];
      });
      if (inner_calls != 1) ++bad_inner;
    }
  });
  EXPECT_FALSE(cpu::in_parallel_region());
  EXPECT_EQ(bad_inner.load(), 0);
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i;
}

TEST(Parallel, ExceptionsFromWorkersPropagate) {
  for (int threads : {1, 2}) {
    ThreadCount tc(threads);
    std::atomic<int> ran{0};
    // Every chunk throws; whichever thread throws first, the caller sees a vimoe::Error.
    EXPECT_VIMOE_ERROR(cpu::parallel_for(0, 1000, 1,
                                         [&](int64_t b, int64_t) {
                                           ++ran;
                                           VIMOE_FAIL("chunk at ", b, " failed");
                                         }),
                       "chunk at", "failed");
    EXPECT_GE(ran.load(), 1);
    // Only the chunk holding index 777 throws, and its own exception type comes back.
    EXPECT_THROW(cpu::parallel_for(0, 1000, 1,
                                   [](int64_t b, int64_t e) {
                                     if (b <= 777 && 777 < e) throw std::out_of_range("777");
                                   }),
                 std::out_of_range);
    // The pool still works afterwards.
    std::atomic<int64_t> sum{0};
    cpu::parallel_for(0, 1000, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    EXPECT_EQ(sum.load(), 999 * 1000 / 2);
  }
}

TEST(Parallel, RejectsBadThreadCounts) {
  EXPECT_VIMOE_ERROR(cpu::set_num_threads(0), "set_num_threads", "0");
  EXPECT_VIMOE_ERROR(cpu::set_num_threads(-3), "set_num_threads");
  EXPECT_GE(cpu::num_threads(), 1);
}

// ---- ops: one thread and two threads give the same bits ------------------------------

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.detach().contiguous(), cb = b.detach().contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

// Every tensor a training step of a small ViMoE-like computation produces, forward and
// backward, on inputs big enough that each op splits over threads (and, for the strided
// ones, that chunk boundaries fall inside rows).
std::vector<Tensor> representative_ops() {
  std::vector<Tensor> out;
  auto keep = [&](const Tensor& t) {
    out.push_back(t.detach().contiguous().clone());
    return t;
  };
  Tensor x = uniform({16, 50, 72}, 1).set_requires_grad(true);  // 57600 elements
  Tensor w = uniform({72}, 2).set_requires_grad(true);
  Tensor b = uniform({72}, 3).set_requires_grad(true);
  Tensor bias = uniform({72}, 4).set_requires_grad(true);
  // Elementwise: same-shape, broadcast over the last dim and over a middle dim, scalar,
  // permuted and sliced operands; comparisons and where.
  Tensor y = keep(x * w + b);
  Tensor perm = x.permute({2, 0, 1});  // [72, 16, 50]
  keep(perm.contiguous());
  keep(exp(perm) - uniform({72, 1, 50}, 5));
  keep(x.slice(2, 1, 71, 3) * 2.5);
  keep(where(gt(x, w), x, b));
  // Reductions by rows, by leading columns and over permuted axes.
  keep(sum(y, {0, 1}));
  keep(mean(y, {-1}));
  keep(sum(perm, {1}));
  keep(var(y, {2}));
  keep(max(y, 1));
  // Products big enough to be cut into blocks of C: a linear layer, a batched matmul.
  Tensor wmat = uniform({96, 72}, 9).set_requires_grad(true);
  Tensor lin = keep(linear(y, wmat, uniform({96}, 10)));
  keep(matmul(lin.transpose(1, 2), uniform({16, 50, 40}, 11)));
  // LayerNorm, GELU, softmax, attention.
  Tensor ln = keep(layer_norm(y + sum(lin, {-1}, true), w, b, 1e-5));
  Tensor g = keep(bias_gelu(ln, bias));
  keep(gelu(ln));
  keep(log_softmax(g, -1));
  Tensor qkv = g.view({16, 50, 3, 4, 6}).permute({2, 0, 3, 1, 4});
  Tensor att = keep(attention(qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2)));
  // MoE dispatch with an uneven split between 3 experts.
  std::vector<int32_t> ids(16);
  for (int i = 0; i < 16; ++i) ids[i] = (i * 7) % 3;
  const DispatchPlan plan = plan_dispatch(Tensor::from_vector(ids, {16, 1}), 3);
  Tensor buf = keep(dispatch_rows(att.permute({0, 2, 1, 3}).reshape({16, 50, 24}), plan));
  Tensor gates = uniform({16, 1}, 6).set_requires_grad(true);
  Tensor moe = keep(combine_rows(gelu(buf), gates, plan));
  Tensor loss = keep(sum(moe * moe) + sum(g));
  loss.backward();
  for (const Tensor& t : {x, w, b, bias, gates, wmat}) keep(t.grad());
  // AdamW on the gradients.
  Tensor p = x.detach().clone().set_requires_grad(true);
  p.set_grad(x.grad().clone());
  optim::AdamW opt({{{p}, 1.0, 0.1}}, {});
  opt.step();
  keep(p);
  return out;
}

TEST(Parallel, OpsAreBitIdenticalWithOneAndTwoThreads) {
  std::vector<Tensor> one, two;
  {
    ThreadCount tc(1);
    one = representative_ops();
  }
  {
    ThreadCount tc(2);
    two = representative_ops();
  }
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i)
    EXPECT_TRUE(same_bits(one[i], two[i])) << "result " << i << " " << describe(one[i])
                                           << " differs between 1 and 2 threads";
}

// Chunk boundaries land inside rows of strided views: check such a split against values
// computed here element by element.
TEST(Parallel, StridedElementwiseSplitInsideRows) {
  ThreadCount tc(3);
  const Tensor a = uniform({37, 29, 61}, 7, -1, 1, DType::F64);  // 65453 elements
  const Tensor c = uniform({61}, 8, -1, 1, DType::F64);
  const Tensor pa = a.permute({2, 0, 1}).slice(0, 0, 61, 2);  // [31, 37, 29], no unit stride
  const Tensor sum_ = pa + c.slice(0, 0, 31).unsqueeze(1).unsqueeze(2);
  const Tensor copied = pa.contiguous();
  const std::vector<double> va = a.to_vector<double>(), vc = c.to_vector<double>();
  const std::vector<double> vs = sum_.to_vector<double>(), vp = copied.to_vector<double>();
  size_t n = 0;
  for (int64_t i = 0; i < 31; ++i)
    for (int64_t j = 0; j < 37; ++j)
      for (int64_t k = 0; k < 29; ++k, ++n) {
        const double src = va[(j * 29 + k) * 61 + 2 * i];
        ASSERT_EQ(vp[n], src) << "copy at " << i << ", " << j << ", " << k;
        ASSERT_EQ(vs[n], src + vc[i]) << "add at " << i << ", " << j << ", " << k;
      }
}

}  // namespace
}  // namespace vimoe
