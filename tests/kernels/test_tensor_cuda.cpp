// The core on the GPU: what the op-parity rows (tests/op_parity/cases_copy.cpp: strided
// copies, conversions, copy_ into views, fill; cases_elementwise.cpp: the binary kernels)
// do not state. Host <-> device transfers, int64 values beyond double precision, copies
// across devices, sum, autograd through CUDA ops with a CPU leaf, and the caching allocator.
#include <gtest/gtest.h>

#include "tests/op_parity/op_case.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::parity::compare;
using vimoe::parity::kExact;
using vimoe::parity::Tol;
using vimoe::testing::uniform;

TEST(TensorCuda, RoundTrip) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I32, DType::I64, DType::U8}) {
    const Tensor host = uniform({3, 257, 5}, 1, 0, 100, DType::F32).to(dt);
    const Tensor dev = host.cuda();
    EXPECT_TRUE(dev.is_cuda());
    EXPECT_TRUE(compare(dev.cpu(), host, kExact, std::string("round trip ") + dtype_name(dt)));
    // A view goes over as its values.
    EXPECT_TRUE(compare(host.t().cuda(), host.t(), kExact, "transposed view to the device"));
  }
}

TEST(TensorCuda, Int64SurvivesStridedCopies) {
  VIMOE_REQUIRE_GPU();
  // Same-dtype copies move bits: int64 values that double cannot hold come through.
  const int64_t big = (int64_t{1} << 60) + 3;
  const Tensor i = Tensor::from_vector<int64_t>({big, 1, -big}, {3}).cuda();
  EXPECT_EQ(i.slice(0, 0, 3, 2).contiguous().to_vector<int64_t>(), (std::vector<int64_t>{big, -big}));
  Tensor d = Tensor::zeros({3, 2}, TensorOptions(DType::I64, Device::cuda()));
  d.select(1, 1).copy_(i);
  EXPECT_EQ(d.to_vector<int64_t>(), (std::vector<int64_t>{0, big, 0, 1, 0, -big}));
}

TEST(TensorCuda, CopyAcrossDevicesIntoViews) {
  VIMOE_REQUIRE_GPU();
  // A host source (transposed, f32) into a device destination (bf16): moved, then converted.
  Tensor d = Tensor::zeros({257, 3}, TensorOptions(DType::BF16, Device::cuda()));
  const Tensor src = uniform({3, 257}, 3);
  d.copy_(src.t());
  EXPECT_TRUE(d.is_cuda());
  EXPECT_TRUE(compare(d, src.t().to(DType::BF16).contiguous(), kExact, "host -> device copy_"));
  // A device source into a host view.
  Tensor h = Tensor::zeros({3, 257});
  h.t().copy_(d);
  EXPECT_TRUE(compare(h.t().contiguous(), d.to(DType::F32).cpu(), kExact, "device -> host copy_"));
}

TEST(TensorCuda, SumMatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  // The GPU accumulates in f32 in a different order than the CPU's double loop.
  const Tensor x = uniform({3, 257, 385}, 6);
  for (std::vector<int64_t> dims : {std::vector<int64_t>{}, {0}, {1}, {2}, {0, 2}, {1, 2}}) {
    EXPECT_TRUE(compare(sum(x.cuda(), dims), sum(x, dims), Tol{1e-4, 1e-5, 0}, "f32 sum"));
    EXPECT_TRUE(compare(sum(x.to(DType::BF16).cuda(), dims), sum(x.to(DType::BF16), dims),
                        Tol{1e-1, 1e-2, 0}, "bf16 sum"));
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
  EXPECT_TRUE(compare(ad.grad(), a.grad(), Tol{1e-5, 1e-5, 0}, "gradient of a"));
  // b's gradient sums 257 rows.
  EXPECT_TRUE(compare(bd.grad(), b.grad(), Tol{1e-3, 1e-4, 0}, "gradient of b"));
  // A leaf on the CPU used on the GPU gets its gradient back on the CPU.
  Tensor c = uniform({3}, 9);
  c.set_requires_grad(true);
  sum(c.cuda() * 2.0).backward();
  EXPECT_FALSE(c.grad().is_cuda());
  EXPECT_TRUE(compare(c.grad(), Tensor::full({3}, 2.0), kExact, "gradient of the CPU leaf"));
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

#ifdef VIMOE_WITH_CUDA
// The driver runs this build (detection would have refused it otherwise), and the GEMMs'
// shared scratch buffer is the engine allocator's: it shows in the statistics once a GEMM
// has run, and stays the same buffer for every later one.
TEST(TensorCuda, DriverFitsAndGemmWorkspaceComesFromTheAllocator) {
  VIMOE_REQUIRE_GPU();
  EXPECT_EQ(cuda::driver_gap(cuda::driver_version(), cuda::runtime_version()), "");
  const Tensor a = Tensor::full({64, 64}, 1.0, TensorOptions(DType::F32, Device::cuda()));
  (void)matmul(a, a);
  const cuda::Workspace w = cuda::gemm_workspace();
  ASSERT_NE(w.ptr, nullptr);
  EXPECT_GE(w.bytes, size_t{4} << 20);
  EXPECT_GE(cuda::memory_stats().allocated_bytes, w.bytes);
  (void)matmul(a, a);
  EXPECT_EQ(cuda::gemm_workspace().ptr, w.ptr);
}
#endif
