// Concatenation and indexing on the GPU beyond the op-parity rows
// (tests/op_parity/cases_index.cpp, which compare concat / stack / split, index_select,
// index_add, gather, scatter_add, one_hot and topk with the CPU, forward and backward, on odd
// and ViT-S/14 shapes, views, both index dtypes and integer data): bad indices raise
// vimoe::Error naming the first bad position (never a device assert), also when the kernel
// has nothing to visit, wrong index dtypes and devices are refused, and the device stays
// usable afterwards.
#include <gtest/gtest.h>

#include <vector>

#include "engine/ops/index.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

// Pseudo-random indices in [0, bound).
Tensor random_index(const Shape& shape, int64_t bound, uint64_t seed, DType dtype = DType::I64) {
  std::vector<int64_t> v(shape_numel(shape));
  uint64_t s = seed * 2862933555777941757ull + 3037000493ull;
  for (int64_t& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(bound));
  }
  return Tensor::from_vector(v, shape).to(dtype);
}

}  // namespace

TEST(IndexGpu, BadIndexRaisesAndTheDeviceStaysUsable) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = uniform({257, 385}, 1).cuda();
  std::vector<int64_t> v(300, 5);
  v[7] = 385;  // the first bad position is reported even when later ones are bad too
  v[20] = -4;
  const Tensor bad = Tensor::from_vector(v, {300}).cuda();
  EXPECT_VIMOE_ERROR(index_select(x, 1, bad), "index_select", "index 385", "position [7]",
                     "[0, 385)");
  EXPECT_VIMOE_ERROR(index_select(x, 1, bad.slice(0, 8, 300)), "index_select", "index -4",
                     "position [12]", "negative");
  EXPECT_VIMOE_ERROR(index_add(x, 1, bad.to(DType::I32), Tensor::ones({257, 300}).cuda()),
                     "index_add", "index 385", "position [7]");
  EXPECT_VIMOE_ERROR(gather(x, 0, bad.view({1, 300})), "gather", "index 385", "position [0, 7]",
                     "[0, 257)");
  EXPECT_VIMOE_ERROR(scatter_add(x, 0, bad.view({1, 300}), Tensor::ones({1, 300}).cuda()),
                     "scatter_add", "index 385", "position [0, 7]");
  EXPECT_VIMOE_ERROR(one_hot(bad, 385), "one_hot", "index 385", "position [7]");
  // No element to visit (x has no rows): the index is checked on the host instead.
  EXPECT_VIMOE_ERROR(index_select(Tensor::zeros({0, 385}).cuda(), 1, bad), "index_select",
                     "index 385", "position [7]");
  // Wrong dtype or device.
  EXPECT_VIMOE_ERROR(index_select(x, 0, bad.to(DType::F32)), "index_select", "i64 or i32");
  EXPECT_VIMOE_ERROR(index_select(x, 0, bad.cpu()), "index_select", "one device");
  // The context survived: a valid call still works.
  const Tensor ok = random_index({300}, 385, 2);
  EXPECT_TRUE(all_close(index_select(x, 1, ok.cuda()), index_select(x.cpu(), 1, ok), 0, 0));
}
