// The host-side preparation of strided launches (kernels/strided.h), checked on the CPU:
// dimension collapsing keeps every element's offset, the common-shape step of elementwise
// launches, the 32-bit eligibility test, the fast divider against `/` and `%`, and the
// indexer the kernels use against strided_offset().
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/strided.h"

using namespace vimoe::kernels;

namespace {

StridedLayout layout(std::vector<int64_t> sizes, std::vector<int64_t> strides, int64_t offset = 0) {
  StridedLayout l;
  l.ndim = static_cast<int>(sizes.size());
  for (int d = 0; d < l.ndim; ++d) {
    l.sizes[d] = sizes[d];
    l.strides[d] = strides[d];
  }
  l.offset = offset;
  return l;
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> s(sizes.size());
  int64_t st = 1;
  for (size_t d = sizes.size(); d-- > 0;) {
    s[d] = st;
    st *= sizes[d];
  }
  return s;
}

StridedLayout contiguous(std::vector<int64_t> sizes, int64_t offset = 0) {
  const std::vector<int64_t> st = contiguous_strides(sizes);
  return layout(std::move(sizes), st, offset);
}

// The layout of `base` (contiguous `sizes`) seen through permute(perm).
StridedLayout permuted(const std::vector<int64_t>& sizes, const std::vector<int>& perm) {
  const std::vector<int64_t> st = contiguous_strides(sizes);
  std::vector<int64_t> ps, pst;
  for (int p : perm) {
    ps.push_back(sizes[p]);
    pst.push_back(st[p]);
  }
  return layout(ps, pst);
}

std::string str(const StridedLayout& l) {
  std::string s = "sizes [";
  for (int d = 0; d < l.ndim; ++d) s += (d ? ", " : "") + std::to_string(l.sizes[d]);
  s += "] strides [";
  for (int d = 0; d < l.ndim; ++d) s += (d ? ", " : "") + std::to_string(l.strides[d]);
  return s + "] offset " + std::to_string(l.offset);
}

// Collapses a copy of `ls` and checks that every element of every layout keeps its offset,
// that no size-1 dimension survives (bar the single-element [1]) and that no adjacent pair
// left could still merge. Returns the collapsed layouts.
std::vector<StridedLayout> collapse_checked(const std::vector<StridedLayout>& ls) {
  std::vector<StridedLayout> c = ls;
  EXPECT_TRUE(collapse_dims(c.data(), static_cast<int>(c.size())));
  const int64_t n = layout_numel(ls[0]);
  for (size_t k = 0; k < ls.size(); ++k) {
    SCOPED_TRACE("operand " + std::to_string(k) + ": " + str(ls[k]) + " -> " + str(c[k]));
    EXPECT_EQ(layout_numel(c[k]), n);
    EXPECT_EQ(c[k].ndim, c[0].ndim);
    EXPECT_GE(c[k].ndim, 1);
    EXPECT_LE(c[k].ndim, std::max(ls[k].ndim, 1));
    int64_t moved = -1;  // the first element whose offset changed
    for (int64_t i = 0; i < n && moved < 0; ++i)
      if (strided_offset(c[k], i) != strided_offset(ls[k], i)) moved = i;
    EXPECT_EQ(moved, -1) << "the offset of linear index " << moved << " changed";
    for (int d = 0; d < c[k].ndim; ++d) {
      EXPECT_EQ(c[k].sizes[d], c[0].sizes[d]);
      if (n > 1) {
        EXPECT_NE(c[k].sizes[d], 1) << "size-1 dimension " << d << " left";
      }
    }
  }
  for (int d = 0; d + 1 < c[0].ndim; ++d) {
    bool mergeable = true;
    for (const StridedLayout& l : c) mergeable &= l.strides[d] == l.strides[d + 1] * l.sizes[d + 1];
    EXPECT_FALSE(mergeable) << "dimensions " << d << " and " << d + 1 << " could still merge";
  }
  return c;
}

}  // namespace

TEST(StridedLayout, ContiguousCollapsesToOneDimension) {
  for (const std::vector<int64_t>& sizes :
       {std::vector<int64_t>{24}, {2, 3, 4}, {1, 5, 1, 7}, {3, 1}, {2, 2, 2, 2, 2, 2, 2, 2}}) {
    const auto c = collapse_checked({contiguous(sizes, 5)});
    ASSERT_EQ(c[0].ndim, 1);
    EXPECT_EQ(c[0].strides[0], 1);
    EXPECT_EQ(c[0].offset, 5);
  }
  // Size-1 dimensions may carry any stride; they are dropped first.
  const auto c = collapse_checked({layout({4, 1, 6}, {6, 1000, 1})});
  ASSERT_EQ(c[0].ndim, 1);
  EXPECT_EQ(c[0].sizes[0], 24);
  // Several contiguous operands stay one dimension together.
  EXPECT_EQ(collapse_checked({contiguous({3, 5, 7}), contiguous({3, 5, 7}, 9)})[0].ndim, 1);
}

TEST(StridedLayout, SingleElementBecomesOneDimensionOfStrideZero) {
  for (const StridedLayout& l : {layout({}, {}), layout({1}, {1}), layout({1, 1, 1}, {7, 3, 1})}) {
    const auto c = collapse_checked({l, l});
    ASSERT_EQ(c[0].ndim, 1);
    EXPECT_EQ(c[0].sizes[0], 1);
    EXPECT_EQ(c[0].strides[0], 0);
  }
}

TEST(StridedLayout, TransposesKeepTheirDimensions) {
  // [B, T, D] seen as [B, D, T] (transpose(1, 2)) against a contiguous [B, D, T] output.
  const int64_t B = 3, T = 5, D = 4;
  auto c = collapse_checked({permuted({B, T, D}, {0, 2, 1}), contiguous({B, D, T})});
  EXPECT_EQ(c[0].ndim, 3);
  c = collapse_checked({permuted({1, T, D}, {0, 2, 1}), contiguous({1, D, T})});
  EXPECT_EQ(c[0].ndim, 2);
  // The transposed operand alone, [B, D, T] with strides [T*D, 1, D]: no stride is the next
  // one's times its size, so nothing merges either.
  c = collapse_checked({permuted({B, T, D}, {0, 2, 1})});
  EXPECT_EQ(c[0].ndim, 3);
  // The qkv split of attention: [B, T, 3, H, hd] permuted to [3, B, H, T, hd], copied to a
  // contiguous tensor. hd is contiguous on both sides but nothing merges.
  const std::vector<int64_t> qkv = {2, 7, 3, 2, 8};
  c = collapse_checked({permuted(qkv, {2, 0, 3, 1, 4}), contiguous({3, 2, 2, 7, 8})});
  EXPECT_EQ(c[0].ndim, 5);
  EXPECT_EQ(c[0].strides[4], 1);
  EXPECT_EQ(c[1].strides[4], 1);
  // Permuting only outer dimensions keeps the merged inner block: [A, B, C, D] -> [B, A, C, D]
  // with C, D contiguous on both sides collapses to [B, A, C*D].
  c = collapse_checked({permuted({3, 4, 5, 6}, {1, 0, 2, 3}), contiguous({4, 3, 5, 6})});
  ASSERT_EQ(c[0].ndim, 3);
  EXPECT_EQ(c[0].sizes[2], 30);
}

TEST(StridedLayout, SlicesAndNarrows) {
  // Every second column of [10, 8]: strides [8, 2] step evenly through memory: one dimension.
  auto c = collapse_checked({layout({10, 4}, {8, 2}, 1)});
  ASSERT_EQ(c[0].ndim, 1);
  EXPECT_EQ(c[0].strides[0], 2);
  EXPECT_EQ(c[0].offset, 1);
  // The first 5 of 8 columns: rows are not adjacent, two dimensions, the inner one contiguous.
  c = collapse_checked({layout({10, 5}, {8, 1}, 2), contiguous({10, 5})});
  ASSERT_EQ(c[0].ndim, 2);
  EXPECT_EQ(c[0].strides[1], 1);
  EXPECT_EQ(c[0].strides[0], 8);
  EXPECT_EQ(c[1].strides[0], 5);
  // A narrowed middle dimension of [4, 6, 3]: [4, 2, 3] with strides [18, 3, 1] -> [4, 6].
  c = collapse_checked({layout({4, 2, 3}, {18, 3, 1})});
  ASSERT_EQ(c[0].ndim, 2);
  EXPECT_EQ(c[0].sizes[1], 6);
}

TEST(StridedLayout, BroadcastDimensionsMergeOnlyWithEachOther) {
  // [4, 5, 6] expanded from [6]: the two stride-0 dimensions merge; the stride-1 one stays.
  auto c = collapse_checked({layout({4, 5, 6}, {0, 0, 1})});
  ASSERT_EQ(c[0].ndim, 2);
  EXPECT_EQ(c[0].sizes[0], 20);
  EXPECT_EQ(c[0].strides[0], 0);
  // Expanded from [4, 1, 1]: [4] with stride 1 outside a stride-0 block of 30.
  c = collapse_checked({layout({4, 5, 6}, {1, 0, 0})});
  ASSERT_EQ(c[0].ndim, 2);
  EXPECT_EQ(c[0].sizes[1], 30);
  EXPECT_EQ(c[0].strides[1], 0);
  // Entirely stride 0: one dimension of stride 0.
  c = collapse_checked({layout({4, 5, 6}, {0, 0, 0})});
  ASSERT_EQ(c[0].ndim, 1);
  EXPECT_EQ(c[0].strides[0], 0);
  // A bias [C] broadcast over [R, C] next to a contiguous [R, C]: two dimensions, because
  // the contiguous operand would merge but the broadcast one cannot.
  c = collapse_checked({contiguous({7, 9}), layout({7, 9}, {0, 1})});
  ASSERT_EQ(c[0].ndim, 2);
  EXPECT_EQ(c[1].strides[0], 0);
  // A column [R, 1] broadcast over [R, C] and a row [1, C]: [R, C] with strides [1, 0] and
  // [0, 1]; nothing merges.
  c = collapse_checked({layout({7, 9}, {1, 0}), layout({7, 9}, {0, 1}), contiguous({7, 9})});
  EXPECT_EQ(c[0].ndim, 2);
  // A stride-0 dimension next to one of stride 0 * size... is stride 0 only: [3, 4] with
  // strides [0, 5] does not merge (0 != 5 * 4).
  c = collapse_checked({layout({3, 4}, {0, 5})});
  EXPECT_EQ(c[0].ndim, 2);
}

TEST(StridedLayout, DifferentSizesAreRefused) {
  StridedLayout ls[2] = {contiguous({3, 4}), contiguous({4, 3})};
  const StridedLayout before = ls[0];
  EXPECT_FALSE(collapse_dims(ls, 2));
  EXPECT_EQ(ls[0].ndim, before.ndim);
  EXPECT_EQ(ls[0].sizes[0], 3);
  EXPECT_EQ(ls[1].sizes[0], 4);
  // Size-1 dimensions aside, the sizes agree: accepted.
  StridedLayout ok[2] = {contiguous({3, 1, 4}), layout({3, 4}, {1, 3})};
  EXPECT_TRUE(collapse_dims(ok, 2));
}

TEST(StridedLayout, RandomLayoutsKeepTheirOffsets) {
  std::mt19937_64 rng(12345);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  for (int trial = 0; trial < 3000; ++trial) {
    const int nd = static_cast<int>(pick(0, 6));
    std::vector<int64_t> sizes(nd);
    for (int64_t& s : sizes) s = pick(1, 4);
    const int count = static_cast<int>(pick(1, 4));
    std::vector<StridedLayout> ls;
    for (int k = 0; k < count; ++k) {
      // Each operand: a permutation of a contiguous tensor, some dimensions broadcast, some
      // strides stretched (a slice with a step), an offset.
      std::vector<int> perm(nd);
      std::iota(perm.begin(), perm.end(), 0);
      if (pick(0, 1)) std::shuffle(perm.begin(), perm.end(), rng);
      std::vector<int64_t> st(nd);
      int64_t s = pick(1, 2);
      for (int j = nd - 1; j >= 0; --j) {
        st[perm[j]] = s;
        s *= sizes[perm[j]] + (pick(0, 3) == 0 ? pick(1, 2) : 0);
      }
      for (int64_t& x : st)
        if (pick(0, 4) == 0) x = 0;
      ls.push_back(layout(sizes, st, pick(0, 9)));
    }
    SCOPED_TRACE("trial " + std::to_string(trial));
    const std::vector<StridedLayout> c = collapse_checked(ls);
    if (::testing::Test::HasFailure()) return;
    // The kernels' indexer on the collapsed layouts gives the originals' offsets.
    const int64_t n = layout_numel(ls[0]);
    StridedIndexer<uint64_t, 4> ix64;
    StridedIndexer<uint32_t, 4> ix32;
    std::vector<StridedLayout> padded = c;
    while (padded.size() < 4) padded.push_back(c[0]);
    ix64 = make_indexer<uint64_t, 4>(padded.data());
    ASSERT_TRUE(fits_32bit_indexing(padded.data(), 4, n));
    ix32 = make_indexer<uint32_t, 4>(padded.data());
    for (int64_t i = 0; i < n; ++i) {
      const auto o64 = ix64.offsets(static_cast<uint64_t>(i));
      const auto o32 = ix32.offsets(static_cast<uint32_t>(i));
      for (int k = 0; k < count; ++k) {
        ASSERT_EQ(o64.v[k] + c[k].offset, strided_offset(ls[k], i)) << "operand " << k << ", i " << i;
        ASSERT_EQ(int64_t{o32.v[k]} + c[k].offset, strided_offset(ls[k], i)) << "operand " << k;
      }
    }
  }
}

TEST(StridedLayout, ConformGivesElementwiseInputsOneShape) {
  // A contiguous input handed over as [n] next to a transposed one of shape [3, 5].
  StridedLayout ls[3] = {contiguous({15}, 2), permuted({5, 3}, {1, 0}), layout({3, 1, 5}, {0, 9, 0}, 4)};
  const StridedLayout orig[3] = {ls[0], ls[1], ls[2]};
  ASSERT_TRUE(conform_layouts(ls, 3, 15));
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(ls[k].ndim, 2) << k;
    EXPECT_EQ(ls[k].sizes[0], 3);
    EXPECT_EQ(ls[k].sizes[1], 5);
    for (int64_t i = 0; i < 15; ++i) EXPECT_EQ(strided_offset(ls[k], i), strided_offset(orig[k], i));
  }
  EXPECT_TRUE(collapse_dims(ls, 3));
  // Only dense and scalar inputs: the launch shape is [n].
  StridedLayout d[2] = {contiguous({3, 5}), layout({}, {}, 7)};
  ASSERT_TRUE(conform_layouts(d, 2, 15));
  EXPECT_EQ(d[0].ndim, 1);
  EXPECT_EQ(d[1].ndim, 1);
  EXPECT_EQ(d[1].strides[0], 0);
  EXPECT_EQ(d[1].offset, 7);
  // Two views of different shapes, or an element count that is not n: refused, unchanged.
  StridedLayout bad[2] = {permuted({5, 3}, {1, 0}), permuted({3, 5}, {1, 0})};
  EXPECT_FALSE(conform_layouts(bad, 2, 15));
  EXPECT_EQ(bad[0].sizes[0], 3);
  StridedLayout wrong_n[2] = {permuted({5, 3}, {1, 0}), contiguous({16})};
  EXPECT_FALSE(conform_layouts(wrong_n, 2, 15));
  StridedLayout wrong_shape[1] = {permuted({5, 3}, {1, 0})};
  EXPECT_FALSE(conform_layouts(wrong_shape, 1, 16));
}

TEST(StridedLayout, ThirtyTwoBitIndexingOnlyWhereEverythingFits) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  StridedLayout l = contiguous({kMax});
  EXPECT_TRUE(fits_32bit_indexing(&l, 1, kMax));
  l = contiguous({kMax + 1});
  EXPECT_FALSE(fits_32bit_indexing(&l, 1, kMax + 1));
  // Few elements, far apart: the last offset 3 * 2^30 does not fit.
  l = layout({4, 2}, {int64_t{1} << 30, 1});
  EXPECT_FALSE(fits_32bit_indexing(&l, 1, 8));
  l = layout({2, 2}, {int64_t{1} << 30, 1});
  EXPECT_TRUE(fits_32bit_indexing(&l, 1, 4));
  // A negative stride needs signed offsets.
  l = layout({4}, {-1}, 3);
  EXPECT_FALSE(fits_32bit_indexing(&l, 1, 4));
  // The ViT-S/14 qkv copy at batch 256 fits; the offset of the layout does not count.
  StridedLayout qkv[2] = {permuted({256, 257, 3, 6, 64}, {2, 0, 3, 1, 4}),
                          contiguous({3, 256, 6, 257, 64}, int64_t{1} << 40)};
  ASSERT_TRUE(collapse_dims(qkv, 2));
  EXPECT_TRUE(fits_32bit_indexing(qkv, 2, 256 * 257 * 3 * 6 * 64));
  // A second operand out of range is enough to refuse.
  StridedLayout two[2] = {contiguous({8}), layout({8}, {int64_t{1} << 29})};
  EXPECT_FALSE(fits_32bit_indexing(two, 2, 8));
}

namespace {

template <typename U>
void expect_divides(const IntDivider<U>& div, U n) {
  const DivMod<U> qr = div.divmod(n);
  ASSERT_EQ(div.div(n), n / div.divisor) << n << " / " << div.divisor;
  ASSERT_EQ(qr.quotient, n / div.divisor) << n << " / " << div.divisor;
  ASSERT_EQ(qr.remainder, n % div.divisor) << n << " % " << div.divisor;
}

template <typename U>
void check_divisor(U d, U max_dividend, std::mt19937_64& rng) {
  const IntDivider<U> div(d);
  ASSERT_EQ(div.divisor, d);
  // Small dividends, the top of the range, and the neighbourhood of multiples of d (where a
  // wrong magic number shows first), plus random ones.
  for (U n = 0; n < 300; ++n) expect_divides(div, n);
  for (U k = 0; k < 300; ++k) expect_divides(div, static_cast<U>(max_dividend - k));
  for (U q : {U{1}, U{2}, U{3}, static_cast<U>(max_dividend / d), static_cast<U>(max_dividend / d - 1),
              static_cast<U>(max_dividend / d / 2), static_cast<U>(max_dividend / d / 3 + 1)}) {
    if (q == 0 || q > max_dividend / d) continue;
    const U m = static_cast<U>(q * d);
    expect_divides(div, m);
    expect_divides(div, static_cast<U>(m - 1));
    if (m < max_dividend) expect_divides(div, static_cast<U>(m + 1));
  }
  std::uniform_int_distribution<U> any(0, max_dividend);
  for (int i = 0; i < 2000; ++i) expect_divides(div, any(rng));
}

template <typename U>
std::vector<U> divisors(U max_divisor, std::mt19937_64& rng) {
  std::vector<U> ds;
  for (U d = 1; d <= 1000; ++d) ds.push_back(d);
  for (int b = 1; b < static_cast<int>(8 * sizeof(U)); ++b) {
    const U p = U{1} << b;
    if (p > max_divisor) break;
    ds.push_back(p);
    ds.push_back(p - 1);
    if (p + 1 <= max_divisor) ds.push_back(p + 1);
  }
  ds.push_back(static_cast<U>(std::numeric_limits<int32_t>::max()));  // 2^31 - 1
  ds.push_back(max_divisor);
  std::uniform_int_distribution<U> any(1, max_divisor);
  for (int i = 0; i < 300; ++i) ds.push_back(any(rng));
  std::uniform_int_distribution<int> bits(1, 8 * sizeof(U) - 1);
  for (int i = 0; i < 300; ++i) {  // log-uniform: every magnitude
    const U top = static_cast<U>(U{1} << bits(rng));
    ds.push_back(std::uniform_int_distribution<U>(1, std::min<U>(top, max_divisor))(rng));
  }
  return ds;
}

}  // namespace

TEST(StridedLayout, FastDivider32MatchesDivisionForEveryDividend) {
  std::mt19937_64 rng(7);
  const uint32_t kTop = std::numeric_limits<uint32_t>::max();  // dividends up to 2^32 - 1
  for (uint32_t d : divisors<uint32_t>(kTop, rng)) {
    SCOPED_TRACE("divisor " + std::to_string(d));
    check_divisor<uint32_t>(d, kTop, rng);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Exhaustive over all 2^32 dividends would be slow; every dividend of a 2^20 stretch near
  // the top for the divisors that stress the magic number most.
  for (uint32_t d : {3u, 7u, 641u, 2147483647u, 2147483649u, 4294967295u}) {
    const IntDivider<uint32_t> div(d);
    for (uint32_t n = kTop - (1u << 20); n != 0; ++n) {  // wraps to 0 after kTop
      const DivMod<uint32_t> qr = div.divmod(n);
      ASSERT_TRUE(qr.quotient == n / d && qr.remainder == n % d) << n << " / " << d;
    }
  }
}

TEST(StridedLayout, FastDivider64MatchesDivisionForEveryInt64Dividend) {
  std::mt19937_64 rng(8);
  const uint64_t kTop = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());  // 2^63 - 1
  for (uint64_t d : divisors<uint64_t>(uint64_t{1} << 63, rng)) {
    SCOPED_TRACE("divisor " + std::to_string(d));
    check_divisor<uint64_t>(d, kTop, rng);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(StridedLayout, IndexerMatchesStridedOffsetOnLaunchShapes) {
  // The ViT-S/14 qkv permute copy (source view and contiguous destination), sampled.
  StridedLayout qkv[2] = {permuted({256, 257, 3, 6, 64}, {2, 0, 3, 1, 4}),
                          contiguous({3, 256, 6, 257, 64})};
  const StridedLayout orig[2] = {qkv[0], qkv[1]};
  ASSERT_TRUE(collapse_dims(qkv, 2));
  const int64_t n = layout_numel(orig[0]);
  ASSERT_TRUE(fits_32bit_indexing(qkv, 2, n));
  const auto ix32 = make_indexer<uint32_t, 2>(qkv);
  const auto ix64 = make_indexer<uint64_t, 2>(qkv);
  std::mt19937_64 rng(9);
  std::uniform_int_distribution<int64_t> any(0, n - 1);
  for (int t = 0; t < 200000; ++t) {
    const int64_t i = t < 1000 ? t : t < 2000 ? n - 1 - (t - 1000) : any(rng);
    const auto a = ix32.offsets(static_cast<uint32_t>(i));
    const auto b = ix64.offsets(static_cast<uint64_t>(i));
    for (int k = 0; k < 2; ++k) {
      ASSERT_EQ(int64_t{a.v[k]}, strided_offset(orig[k], i)) << i;
      ASSERT_EQ(b.v[k], strided_offset(orig[k], i)) << i;
    }
  }
  // Beyond 32 bits: a [2^17, 2^15 + 1] transposed view (2^32 + 2^17 elements) with the
  // 64-bit indexer near the end of the range.
  const int64_t R = int64_t{1} << 17, C = (int64_t{1} << 15) + 1;
  StridedLayout big[2] = {permuted({C, R}, {1, 0}), contiguous({R, C})};
  const StridedLayout big_orig[2] = {big[0], big[1]};
  ASSERT_TRUE(collapse_dims(big, 2));
  const int64_t nb = R * C;
  EXPECT_FALSE(fits_32bit_indexing(big, 2, nb));
  const auto ixb = make_indexer<uint64_t, 2>(big);
  for (int64_t i : {int64_t{0}, int64_t{1}, C - 1, C, nb / 2, nb - C, nb - 2, nb - 1}) {
    const auto o = ixb.offsets(static_cast<uint64_t>(i));
    for (int k = 0; k < 2; ++k) EXPECT_EQ(o.v[k], strided_offset(big_orig[k], i)) << i;
  }
  // Negative strides (64-bit indexing only) are mapped as well.
  StridedLayout rev[1] = {layout({4, 6}, {-6, -1}, 23)};
  const StridedLayout rev_orig = rev[0];
  ASSERT_TRUE(collapse_dims(rev, 1));
  EXPECT_EQ(rev[0].ndim, 1);
  EXPECT_FALSE(fits_32bit_indexing(rev, 1, 24));
  const auto ixr = make_indexer<uint64_t, 1>(rev);
  for (int64_t i = 0; i < 24; ++i)
    EXPECT_EQ(ixr.offsets(static_cast<uint64_t>(i)).v[0] + rev[0].offset, strided_offset(rev_orig, i));
}
