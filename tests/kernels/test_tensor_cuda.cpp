// The core on the GPU: transfers, strided copies and conversions, fill, the binary kernels,
// sum, autograd through CUDA ops, and the caching allocator — each against the CPU.
#include <gtest/gtest.h>

#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

TEST(TensorCuda, RoundTripAndStridedCopies) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I32, DType::I64, DType::U8}) {
    const Tensor host = uniform({3, 257, 5}, 1, 0, 100, DType::F32).to(dt);
    const Tensor dev = host.cuda();
    EXPECT_TRUE(dev.is_cuda());
    EXPECT_TRUE(all_close(dev.cpu(), host, 0, 0)) << dtype_name(dt);
    // Permuted and sliced views made contiguous on the device match the CPU.
    EXPECT_TRUE(all_close(dev.permute({2, 0, 1}).contiguous().cpu(), host.permute({2, 0, 1}).contiguous(), 0, 0));
    EXPECT_TRUE(all_close(dev.slice(1, 3, 257, 7).contiguous().cpu(), host.slice(1, 3, 257, 7).contiguous(), 0, 0));
    EXPECT_TRUE(all_close(dev.select(2, 4).expand({2, 3, 257}).contiguous().cpu(),
                          host.select(2, 4).expand({2, 3, 257}).contiguous(), 0, 0));
  }
}

TEST(TensorCuda, ConversionsMatchTheCpuBitForBit) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = uniform({385, 3}, 2, -70000, 70000, DType::F64);
  for (DType from : {DType::F64, DType::F32, DType::BF16, DType::F16}) {
    for (DType to : {DType::F32, DType::BF16, DType::F16, DType::I32, DType::F64}) {
      const Tensor src = x.to(from);
      EXPECT_TRUE(all_close(src.cuda().to(to).cpu(), src.to(to), 0, 0))
          << dtype_name(from) << " -> " << dtype_name(to);
    }
  }
  const int64_t big = (int64_t{1} << 60) + 3;
  const Tensor i = Tensor::from_vector<int64_t>({big, 1, -big}, {3}).cuda();
  EXPECT_EQ(i.slice(0, 0, 3, 2).contiguous().to_vector<int64_t>(), (std::vector<int64_t>{big, -big}));
}

TEST(TensorCuda, FillAndCopyIntoViews) {
  VIMOE_REQUIRE_GPU();
  Tensor d = Tensor::zeros({257, 3}, TensorOptions(DType::BF16, Device::cuda()));
  d.slice(0, 1, 257, 2).fill_(2.5);
  Tensor h = Tensor::zeros({257, 3}, DType::BF16);
  h.slice(0, 1, 257, 2).fill_(2.5);
  EXPECT_TRUE(all_close(d.cpu(), h, 0, 0));
  const Tensor src = uniform({3, 257}, 3);
  d.t().copy_(src.cuda());
  h.t().copy_(src);
  EXPECT_TRUE(all_close(d.cpu(), h, 0, 0));
  d.copy_(src.t());  // host source into a device destination
  EXPECT_TRUE(all_close(d.cpu(), src.t().to(DType::BF16), 0, 0));
}

TEST(TensorCuda, BinaryOpsAndSumMatchTheCpu) {
  VIMOE_REQUIRE_GPU();
  // f32 is exact elementwise; bf16 results are rounded once from f32 on both sides.
  for (DType dt : {DType::F32, DType::BF16, DType::F64, DType::I32}) {
    const Tensor a = uniform({257, 1, 3}, 4, 1, 5).to(dt), b = uniform({385, 1}, 5, 1, 5).to(dt);
    EXPECT_TRUE(all_close((a.cuda() + b.cuda()).cpu(), a + b, 0, 0)) << dtype_name(dt);
    EXPECT_TRUE(all_close((a.cuda() * b.cuda()).cpu(), a * b, 0, 0)) << dtype_name(dt);
    EXPECT_TRUE(all_close((a.cuda() - b.cuda().t()).cpu(), a - b.t(), 0, 0)) << dtype_name(dt);
    EXPECT_TRUE(all_close((a.cuda() / b.cuda()).cpu(), a / b, 0, 0)) << dtype_name(dt);
  }
  // Sums: the GPU accumulates in f32 in a different order than the CPU's double loop.
  const Tensor x = uniform({3, 257, 385}, 6);
  for (std::vector<int64_t> dims : {std::vector<int64_t>{}, {0}, {1}, {2}, {0, 2}, {1, 2}}) {
    EXPECT_TRUE(all_close(sum(x.cuda(), dims).cpu(), sum(x, dims), 1e-4, 1e-5));
    EXPECT_TRUE(all_close(sum(x.to(DType::BF16).cuda(), dims).cpu(), sum(x.to(DType::BF16), dims), 1e-1, 1e-2));
  }
  EXPECT_EQ(sum(Tensor::ones({1000}, DType::U8).cuda()).item<int64_t>(), 1000);
  EXPECT_VIMOE_ERROR(x + x.cuda(), "add", "cpu", "cuda:0");
}

TEST(TensorCuda, AutogradRunsOnTheDevice) {
  VIMOE_REQUIRE_GPU();
  Tensor a = uniform({257, 3}, 7), b = uniform({1, 3}, 8, 0.5, 2);
  Tensor ad = a.cuda(), bd = b.cuda();
  for (Tensor* t : {&a, &b, &ad, &bd}) t->set_requires_grad(true);
  sum((a * b + a) / b).backward();
  sum((ad * bd + ad) / bd).backward();
  EXPECT_TRUE(ad.grad().is_cuda());
  EXPECT_TRUE(all_close(ad.grad().cpu(), a.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(all_close(bd.grad().cpu(), b.grad(), 1e-3, 1e-4));
  // A leaf on the CPU used on the GPU gets its gradient back on the CPU.
  Tensor c = uniform({3}, 9);
  c.set_requires_grad(true);
  sum(c.cuda() * 2.0).backward();
  EXPECT_FALSE(c.grad().is_cuda());
  EXPECT_TRUE(all_close(c.grad(), Tensor::full({3}, 2.0), 0, 0));
}

TEST(TensorCuda, CachingAllocatorReusesBlocksAndTracksPeaks) {
  VIMOE_REQUIRE_GPU();
  cuda::synchronize();
  cuda::empty_cache();
  cuda::reset_peak_stats();
  const cuda::MemoryStats s0 = cuda::memory_stats();
  {
    const Tensor a = Tensor::empty({1 << 20}, Device::cuda());  // 4 MiB
    const cuda::MemoryStats s1 = cuda::memory_stats();
    EXPECT_EQ(s1.allocated_bytes - s0.allocated_bytes, cuda::round_allocation(4u << 20));
    EXPECT_GE(s1.peak_allocated_bytes, s1.allocated_bytes);
  }
  const cuda::MemoryStats s2 = cuda::memory_stats();
  EXPECT_EQ(s2.allocated_bytes, s0.allocated_bytes);
  EXPECT_GT(s2.reserved_bytes, s0.reserved_bytes);  // kept in the cache
  {
    const Tensor b = Tensor::empty({(1 << 20) - 100}, Device::cuda());  // fits the cached block
    const cuda::MemoryStats s3 = cuda::memory_stats();
    EXPECT_EQ(s3.num_device_mallocs, s2.num_device_mallocs);
    EXPECT_EQ(s3.num_cache_hits, s2.num_cache_hits + 1);
  }
  cuda::empty_cache();
  EXPECT_EQ(cuda::memory_stats().reserved_bytes, cuda::memory_stats().allocated_bytes);
  // An impossible request is a clean error naming the size, not a crash.
  EXPECT_VIMOE_ERROR(Tensor::empty({int64_t{1} << 45}, Device::cuda()), "out of memory", "bytes");
}
