// Concatenation and indexing on the GPU against the CPU reference, forward and backward, in
// f32 and bf16 on odd shapes ([257, 385], rows of 1 and 3), with non-contiguous operands,
// i32 and i64 indices, and the bad-index path (an error, never a device assert).
#include <gtest/gtest.h>

#include <functional>
#include <limits>

#include "engine/ops/index.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Tol {
  double atol, rtol;
};
// Ops that only move values (concat, split, index_select, gather, one_hot, topk, and the
// gradients that are slices or gathers) must match bit for bit.
constexpr Tol kExact{0, 0};
// index_add / scatter_add (and the gradients of index_select / gather, which are those):
// CUDA adds with atomics in arbitrary order in f32, the CPU in double. f32: a few ulp of
// sums of ~10 terms of size ~1. bf16 (and the f32-accumulated bf16 path): both sides round
// the sum once, so they differ by at most one bf16 ulp (2^-8 relative) near a rounding
// boundary.
constexpr Tol kSumF32{1e-5, 1e-5};
constexpr Tol kSumBF16{1e-2, 8e-3};

Tol sum_tol(DType dt) { return dt == DType::BF16 ? kSumBF16 : kSumF32; }

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

// Runs fn on CPU copies and on CUDA copies of `inputs` (floating ones as leaves that require
// grad); compares the outputs, then the gradients of every floating input for one fixed
// upstream gradient.
void check(const Fn& fn, const std::vector<Tensor>& inputs, Tol fwd, Tol bwd) {
  std::vector<Tensor> h, d;
  for (const Tensor& x : inputs) {
    Tensor hx = x.detach().clone(), dx = x.detach().cuda();
    if (is_floating(x.dtype())) {
      hx.set_requires_grad(true);
      dx.set_requires_grad(true);
    }
    h.push_back(hx);
    d.push_back(dx);
  }
  const Tensor ho = fn(h), dout = fn(d);
  ASSERT_TRUE(dout.is_cuda());
  ASSERT_EQ(dout.dtype(), ho.dtype());
  EXPECT_TRUE(all_close(dout, ho, fwd.atol, fwd.rtol)) << "forward";
  if (!ho.requires_grad()) return;
  const Tensor g = uniform(ho.shape(), 99, -1, 1, ho.dtype());
  ho.backward(g);
  dout.backward(g.cuda());
  for (size_t i = 0; i < h.size(); ++i) {
    if (!h[i].requires_grad()) continue;
    ASSERT_TRUE(d[i].grad().defined()) << "input " << i;
    EXPECT_TRUE(all_close(d[i].grad(), h[i].grad(), bwd.atol, bwd.rtol)) << "gradient of input " << i;
  }
}

const DType kDtypes[] = {DType::F32, DType::BF16};

}  // namespace

TEST(IndexGpu, Concat) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor a = uniform({257, 385}, 1, -1, 1, dt), b = uniform({3, 257}, 2, -1, 1, dt);
    const Tensor c = uniform({257, 1}, 3, -1, 1, dt);
    check([](const std::vector<Tensor>& in) { return concat({in[0], in[1].t(), in[2]}, 1); },
          {a, b, c}, kExact, kExact);
    check([](const std::vector<Tensor>& in) {
      return concat({in[0].slice(0, 0, 257, 2), in[1], in[0]}, -2);
    }, {a, uniform({1, 385}, 4, -1, 1, dt)}, kExact, kExact);
    // More inputs than one launch carries (kConcatMaxSources = 8), some empty.
    std::vector<Tensor> many;
    for (int i = 0; i < 19; ++i) many.push_back(uniform({3, i % 5, 7}, 10 + i, -1, 1, dt));
    check([](const std::vector<Tensor>& in) { return concat(in, 1); }, many, kExact, kExact);
  }
  // Mixed dtypes promote (bf16 + f32 -> f32; integers -> f32).
  check([](const std::vector<Tensor>& in) { return concat({in[0], in[1], in[2]}, 0); },
        {uniform({2, 385}, 5, -1, 1, DType::BF16), uniform({3, 385}, 6),
         random_index({1, 385}, 9, 7, DType::I32)},
        kExact, kExact);
}

TEST(IndexGpu, StackAndSplit) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor a = uniform({257, 385}, 1, -1, 1, dt), b = uniform({385, 257}, 2, -1, 1, dt);
    check([](const std::vector<Tensor>& in) { return stack({in[0], in[1].t(), in[0]}, 1); },
          {a, b}, kExact, kExact);
    check([](const std::vector<Tensor>& in) {
      const std::vector<Tensor> p = split(in[0], 128, -1);  // 128, 128, 128, 1
      return concat({p[3], p[1], p[0] * 2.0, p[2]}, 1);
    }, {a}, kExact, kExact);
    check([](const std::vector<Tensor>& in) {
      const std::vector<Tensor> p = split(in[0].t(), std::vector<int64_t>{1, 3, 253}, 1);
      return concat({p[2], p[0], p[1]}, 1);
    }, {a}, kExact, kExact);
  }
}

TEST(IndexGpu, IndexSelect) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = uniform({257, 385}, 1, -1, 1, dt);
    for (DType it : {DType::I64, DType::I32}) {
      const Tensor rows = random_index({300}, 257, 2, it), cols = random_index({129}, 385, 3, it);
      check([](const std::vector<Tensor>& in) { return index_select(in[0], 0, in[1]); },
            {x, rows}, kExact, sum_tol(dt));
      check([](const std::vector<Tensor>& in) { return index_select(in[0], -1, in[1]); },
            {x, cols}, kExact, sum_tol(dt));
      // Transposed x, strided index.
      check([](const std::vector<Tensor>& in) {
        return index_select(in[0].t(), 1, in[1].slice(0, 1, 300, 3));
      }, {x, rows}, kExact, sum_tol(dt));
    }
    // Rows of 1 and 3.
    for (int64_t r : {1, 3}) {
      const Tensor idx = random_index({5}, r, 4);
      check([](const std::vector<Tensor>& in) { return index_select(in[0], 0, in[1]); },
            {uniform({r, 385}, 5, -1, 1, dt), idx}, kExact, sum_tol(dt));
      check([](const std::vector<Tensor>& in) { return index_select(in[0], 1, in[1]); },
            {uniform({257, r}, 6, -1, 1, dt), idx}, kExact, sum_tol(dt));
    }
  }
}

TEST(IndexGpu, IndexAdd) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = uniform({257, 385}, 1, -1, 1, dt);
    const Tensor rows = random_index({600}, 257, 2), cols = random_index({100}, 385, 3, DType::I32);
    check([](const std::vector<Tensor>& in) { return index_add(in[0], 0, in[2], in[1]); },
          {x, uniform({600, 385}, 4, -1, 1, dt), rows}, sum_tol(dt), sum_tol(dt));
    check([](const std::vector<Tensor>& in) { return index_add(in[0], 1, in[2], in[1].t()); },
          {x, uniform({100, 257}, 5, -1, 1, dt), cols}, sum_tol(dt), sum_tol(dt));
    for (int64_t r : {1, 3}) {
      const Tensor idx = random_index({7}, r, 6);
      check([](const std::vector<Tensor>& in) { return index_add(in[0], 0, in[2], in[1]); },
            {uniform({r, 385}, 7, -1, 1, dt), uniform({7, 385}, 8, -1, 1, dt), idx}, sum_tol(dt),
            sum_tol(dt));
    }
  }
  // f64 and integers add exactly (integer sums are order-independent).
  const Tensor idx = random_index({50}, 3, 9);
  const Fn add0 = [](const std::vector<Tensor>& in) { return index_add(in[0], 0, in[2], in[1]); };
  check(add0, {random_index({3, 385}, 1000, 10), random_index({50, 385}, 1000, 11), idx}, kExact,
        kExact);
  check(add0,
        {random_index({3, 385}, 1000, 10, DType::I32),
         random_index({50, 385}, 1000, 11, DType::I32), idx},
        kExact, kExact);
  check(add0,
        {uniform({3, 385}, 12, -1, 1, DType::F64), uniform({50, 385}, 13, -1, 1, DType::F64), idx},
        {1e-13, 1e-13}, {1e-13, 1e-13});
}

TEST(IndexGpu, Gather) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = uniform({257, 385}, 1, -1, 1, dt);
    const Tensor i1 = random_index({257, 100}, 385, 2), i0 = random_index({300, 385}, 257, 3, DType::I32);
    const Fn gather1 = [](const std::vector<Tensor>& in) { return gather(in[0], 1, in[1]); };
    check(gather1, {x, i1}, kExact, sum_tol(dt));
    check([](const std::vector<Tensor>& in) { return gather(in[0], -2, in[1]); }, {x, i0}, kExact,
          sum_tol(dt));
    // Transposed x and transposed index; index smaller than x in the other axis.
    check([](const std::vector<Tensor>& in) {
      return gather(in[0].t(), 0, in[1].t().slice(0, 0, 200));
    }, {x, random_index({100, 385}, 257, 4)}, kExact, sum_tol(dt));
    for (int64_t r : {1, 3})
      check(gather1, {uniform({257, r}, 6, -1, 1, dt), random_index({257, 5}, r, 5)}, kExact,
            sum_tol(dt));
  }
}

TEST(IndexGpu, ScatterAdd) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = uniform({257, 385}, 1, -1, 1, dt);
    // src larger than index; many collisions along dim 1.
    const Tensor i1 = random_index({257, 150}, 385, 2, DType::I32);
    const Fn scatter1 = [](const std::vector<Tensor>& in) {
      return scatter_add(in[0], 1, in[2], in[1]);
    };
    check(scatter1, {x, uniform({257, 200}, 3, -1, 1, dt), i1}, sum_tol(dt), sum_tol(dt));
    const Tensor i0 = random_index({600, 385}, 257, 4);
    check([](const std::vector<Tensor>& in) { return scatter_add(in[0].t(), 0, in[2], in[1].t()); },
          {uniform({385, 257}, 9, -1, 1, dt), uniform({385, 600}, 5, -1, 1, dt), i0}, sum_tol(dt),
          sum_tol(dt));
    for (int64_t r : {1, 3}) {
      check(scatter1,
            {uniform({257, r}, 7, -1, 1, dt), uniform({257, 9}, 8, -1, 1, dt),
             random_index({257, 9}, r, 6)},
            sum_tol(dt), sum_tol(dt));
    }
  }
  check([](const std::vector<Tensor>& in) { return scatter_add(in[0], 0, in[2], in[1]); },
        {random_index({3, 385}, 1000, 10), random_index({3, 385}, 1000, 11),
         random_index({3, 385}, 3, 9)},
        kExact, kExact);
}

TEST(IndexGpu, OneHot) {
  VIMOE_REQUIRE_GPU();
  for (DType out : {DType::F32, DType::BF16, DType::I64}) {
    SCOPED_TRACE(dtype_name(out));
    for (DType it : {DType::I64, DType::I32}) {
      check([&](const std::vector<Tensor>& in) { return one_hot(in[0], 385, out); },
            {random_index({257}, 385, 1, it)}, kExact, kExact);
      check([&](const std::vector<Tensor>& in) { return one_hot(in[0].t(), 3, out); },
            {random_index({3, 257}, 3, 2, it)}, kExact, kExact);
      check([&](const std::vector<Tensor>& in) { return one_hot(in[0], 1, out); },
            {random_index({257}, 1, 3, it)}, kExact, kExact);
    }
  }
}

TEST(IndexGpu, Topk) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    // On a grid of 16 values: rows of 385 are full of ties.
    const Tensor coarse = (uniform({257, 385}, 1, 0, 16)).to(DType::I32).to(dt);
    const Tensor fine = uniform({257, 385}, 2, -1, 1, dt);
    for (const Tensor& x : {coarse, fine}) {
      for (int64_t k : {1, 2, 5, 385}) {
        for (bool largest : {true, false}) {
          SCOPED_TRACE(::testing::Message() << "k " << k << " largest " << largest);
          const TopK h = topk(x, k, -1, largest), d = topk(x.cuda(), k, -1, largest);
          EXPECT_TRUE(all_close(d.values, h.values, 0, 0));
          EXPECT_TRUE(all_close(d.indices, h.indices, 0, 0));
        }
      }
      // Along the first axis (rows are strided in x), k up to the length 257.
      for (int64_t k : {1, 5, 257}) {
        const TopK h = topk(x.t(), k, 1), d = topk(x.cuda().t(), k, 1);
        EXPECT_TRUE(all_close(d.values, h.values, 0, 0)) << "k " << k;
        EXPECT_TRUE(all_close(d.indices, h.indices, 0, 0)) << "k " << k;
      }
    }
    // Rows of 1 and 3 (the block is one warp with idle lanes).
    for (int64_t n : {1, 3}) {
      const Tensor x = uniform({257, n}, 3, 0, 2, dt).to(DType::I32).to(dt);  // ties
      for (int64_t k = 1; k <= n; ++k) {
        const TopK h = topk(x, k), d = topk(x.cuda(), k);
        EXPECT_TRUE(all_close(d.values, h.values, 0, 0)) << "n " << n << " k " << k;
        EXPECT_TRUE(all_close(d.indices, h.indices, 0, 0)) << "n " << n << " k " << k;
      }
    }
    // Backward scatters into the selected positions: exact.
    check([](const std::vector<Tensor>& in) { return topk(in[0], 5, 1).values; }, {fine},
          kExact, kExact);
    check([](const std::vector<Tensor>& in) { return topk(in[0], 2, 0, false).values; },
          {uniform({3, 385}, 4, -1, 1, dt)}, kExact, kExact);
  }
  // NaN ranks above every number; integers compare exactly.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor xn = Tensor::from_vector(std::vector<float>{1, nan, 3, nan, -2, 3}, {1, 6});
  for (bool largest : {true, false}) {
    const TopK h = topk(xn, 4, -1, largest), d = topk(xn.cuda(), 4, -1, largest);
    EXPECT_TRUE(all_close(d.values, h.values, 0, 0));
    EXPECT_TRUE(all_close(d.indices, h.indices, 0, 0));
  }
  const Tensor xi = random_index({257, 385}, 50, 5);
  const TopK hi = topk(xi, 5), di = topk(xi.cuda(), 5);
  EXPECT_TRUE(all_close(di.values, hi.values, 0, 0));
  EXPECT_TRUE(all_close(di.indices, hi.indices, 0, 0));
  // More rows than the grid (65535 * 16 blocks): blocks stride over rows.
  const Tensor many = uniform({65535 * 16 + 5, 3}, 6);
  const TopK hm = topk(many, 2), dm = topk(many.cuda(), 2);
  EXPECT_TRUE(all_close(dm.indices, hm.indices, 0, 0));
}

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
