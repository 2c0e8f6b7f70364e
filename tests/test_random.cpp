// CPU tests for counter-based random numbers (Philox), the initialisers, dropout and
// drop_path. Expected values come from kernels::philox4x32 called directly (checked against
// the published Random123 known answers first) and from closed-form moments and CDFs.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <set>
#include <thread>

#include "engine/ops/random.h"
#include "kernels/philox.h"
#include "kernels/random.h"
#include "test_util.h"

namespace vimoe {
namespace {

using testing::all_close;
using testing::grad_ok;
using testing::leaf64;
using testing::uniform;

// The f32 uniform of counter (i, offset): the top 24 bits of word 0 of the Philox block.
float ref_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return static_cast<float>(kernels::philox4x32(seed, i, offset).v[0] >> 8) / 16777216.0f;
}

double std_normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
double std_normal_pdf(double z) {
  return std::exp(-0.5 * z * z) / std::sqrt(2.0 * std::numbers::pi);
}

struct Moments {
  double mean = 0, var = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size() - 1);
  return m;
}

// |fraction of v below x - expected| within 5 binomial standard deviations.
void expect_cdf_at(const std::vector<double>& v, double x, double expected) {
  const double n = static_cast<double>(v.size());
  const double below = static_cast<double>(std::count_if(v.begin(), v.end(),
                                                         [x](double y) { return y < x; }));
  EXPECT_NEAR(below / n, expected, 5 * std::sqrt(expected * (1 - expected) / n) + 1e-12)
      << "empirical CDF at " << x;
}

// ---- Philox --------------------------------------------------------------------------

// Random123's kat_vectors for philox4x32 with 10 rounds. Its words are ctr.v[0..3] and
// key.v[0..1]; kernels::philox4x32 takes them as little-endian pairs:
// ctr_lo = v[1]:v[0], ctr_hi = v[3]:v[2], seed = key.v[1]:key.v[0].
TEST(RandomPhilox, KnownAnswerVectors) {
  struct Kat {
    uint32_t ctr[4], key[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  const auto pair = [](uint32_t lo, uint32_t hi) { return uint64_t(lo) | (uint64_t(hi) << 32); };
  for (const Kat& k : kats) {
    const kernels::Philox4 r = kernels::philox4x32(pair(k.key[0], k.key[1]),
                                                   pair(k.ctr[0], k.ctr[1]),
                                                   pair(k.ctr[2], k.ctr[3]));
    for (int w = 0; w < 4; ++w)
      EXPECT_EQ(r.v[w], k.out[w]) << "word " << w << " for counter " << std::hex << k.ctr[0];
  }
}

// ---- rand ----------------------------------------------------------------------------

TEST(RandomRand, ElementIUsesCounterIAndOffset) {
  const Tensor a = rand({3, 7}, 42, {}, 5);
  ASSERT_EQ(a.dtype(), DType::F32);
  const std::vector<float> v = a.to_vector<float>();
  for (uint64_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], ref_uniform(42, 5, i)) << i;
  // f64 carries the same 24-bit draw, exactly.
  const std::vector<double> d = rand({3, 7}, 42, DType::F64, 5).to_vector<double>();
  for (uint64_t i = 0; i < d.size(); ++i) EXPECT_EQ(d[i], static_cast<double>(v[i])) << i;
}

TEST(RandomRand, SameSeedSameValuesOtherSeedsAndOffsetsDiffer) {
  const std::vector<float> a = rand({1000}, 7).to_vector<float>();
  EXPECT_EQ(a, rand({1000}, 7).to_vector<float>());
  // The shape does not matter, only the element's row-major index.
  EXPECT_EQ(a, rand({10, 100}, 7).to_vector<float>());
  const std::vector<float> prefix = rand({10}, 7).to_vector<float>();
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), a.begin()));
  const auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
    int64_t n = 0;
    for (size_t i = 0; i < x.size(); ++i) n += x[i] == y[i];
    return n;
  };
  // Two independent 24-bit draws agree with probability 2^-24 each.
  EXPECT_LE(same(a, rand({1000}, 8).to_vector<float>()), 2);
  EXPECT_LE(same(a, rand({1000}, 7, {}, 1).to_vector<float>()), 2);
  EXPECT_LE(same(a, rand({1000}, uint64_t(7) << 32).to_vector<float>()), 2);
}

TEST(RandomRand, UniformMomentsAndHistogram) {
  const int64_t n = 100000;
  const std::vector<double> v = rand({n}, 2024).to_vector<double>();
  EXPECT_GE(*std::min_element(v.begin(), v.end()), 0.0);
  EXPECT_LT(*std::max_element(v.begin(), v.end()), 1.0);
  const Moments m = moments(v);
  // U(0,1): mean 1/2, variance 1/12, fourth central moment 1/80.
  EXPECT_NEAR(m.mean, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  EXPECT_NEAR(m.var, 1.0 / 12, 5 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));
  for (int k = 1; k < 10; ++k) expect_cdf_at(v, k / 10.0, k / 10.0);
}

// bf16 / f16 round the f32 draw to nearest; a draw that rounds up to 1 becomes the largest
// value below 1, so the support stays [0, 1).
TEST(RandomRand, HalfDtypesRoundTheF32DrawAndStayBelowOne) {
  const int64_t n = 1 << 16;
  const uint64_t seed = 99;
  int64_t bf16_clamped = 0, f16_clamped = 0;
  const std::vector<float> b = rand({n}, seed, DType::BF16).to_vector<float>();
  const std::vector<float> h = rand({n}, seed, DType::F16).to_vector<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float u = ref_uniform(seed, 0, i);
    float eb = static_cast<float>(bfloat16(u));
    if (eb >= 1.0f) {
      eb = 1.0f - 1.0f / 256;  // bf16 has 8 significant bits
      ++bf16_clamped;
    }
    float eh = static_cast<float>(float16(u));
    if (eh >= 1.0f) {
      eh = 1.0f - 1.0f / 2048;  // f16 has 11
      ++f16_clamped;
    }
    ASSERT_EQ(b[i], eb) << "bf16 element " << i << " (u = " << u << ")";
    ASSERT_EQ(h[i], eh) << "f16 element " << i << " (u = " << u << ")";
  }
  // P(round up to 1) is 2^-9 for bf16 and 2^-12 for f16: the clamp was exercised.
  EXPECT_GT(bf16_clamped, 0);
  EXPECT_GT(f16_clamped, 0);
}

TEST(RandomRand, OptionsAndErrors) {
  const Tensor t = rand({2, 3}, 1, TensorOptions(DType::F32, Device::cpu(), true));
  EXPECT_TRUE(t.requires_grad());
  EXPECT_TRUE(t.is_leaf());
  EXPECT_EQ(rand({0, 4}, 1).numel(), 0);
  EXPECT_EQ(rand({}, 3).item<float>(), ref_uniform(3, 0, 0));
  EXPECT_VIMOE_ERROR(rand({2, 3}, 1, DType::I32), "rand", "i32", "[2, 3]");
  EXPECT_VIMOE_ERROR(rand({2, -1}, 1), "rand", "[2, -1]");
  EXPECT_VIMOE_ERROR(randn({4}, 1, DType::U8), "randn", "u8");
}

// ---- randn ---------------------------------------------------------------------------

TEST(RandomRandn, MatchesPhiloxNormalAndHasNormalMoments) {
  const int64_t n = 100000;
  const Tensor t = randn({n}, 555, {}, 3);
  const std::vector<float> f = t.to_vector<float>();
  for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(f[i], kernels::philox_normal(555, 3, i)) << i;
  const std::vector<double> v(f.begin(), f.end());
  for (double x : v) ASSERT_TRUE(std::isfinite(x));
  const Moments m = moments(v);
  EXPECT_NEAR(m.mean, 0.0, 5 / std::sqrt(double(n)));
  EXPECT_NEAR(m.var, 1.0, 5 * std::sqrt(2.0 / n));  // Var(s^2) = 2 / n for N(0, 1)
  for (double x : {-2.0, -1.0, -0.3, 0.0, 0.5, 1.0, 2.5}) expect_cdf_at(v, x, std_normal_cdf(x));
  EXPECT_NE(randn({8}, 555).to_vector<float>(), randn({8}, 556).to_vector<float>());
}

// ---- in-place initialisers -----------------------------------------------------------

TEST(RandomInit, UniformFillsViewsInPlaceByRowMajorIndex) {
  Tensor w = Tensor::zeros({4, 6});
  Tensor wt = w.t();  // [6, 4], strides [1, 6]
  uniform_(wt, -0.5, 2.0, 11);
  const std::vector<float> got = wt.to_vector<float>();
  for (uint64_t i = 0; i < got.size(); ++i) {
    const float expect = static_cast<float>(std::fma(2.5, double(ref_uniform(11, 0, i)), -0.5));
    EXPECT_EQ(got[i], expect) << i;
  }
  // A slice fills only itself.
  Tensor z = Tensor::zeros({3, 5});
  Tensor mid = z.narrow(1, 1, 3);
  uniform_(mid, 1.0, 2.0, 12);
  const std::vector<float> zv = z.to_vector<float>();
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 5; ++c) {
      const float x = zv[r * 5 + c];
      if (c == 0 || c == 4) EXPECT_EQ(x, 0.0f);
      else EXPECT_TRUE(x >= 1.0f && x < 2.0f) << x;
    }
}

TEST(RandomInit, UniformMomentsParametersAndBounds) {
  const int64_t n = 100000;
  Tensor t = Tensor::empty({n});
  uniform_(t, -3.0, 5.0, 21);
  const std::vector<double> v = t.to_vector<double>();
  EXPECT_GE(*std::min_element(v.begin(), v.end()), -3.0);
  EXPECT_LT(*std::max_element(v.begin(), v.end()), 5.0);
  const Moments m = moments(v);
  EXPECT_NEAR(m.mean, 1.0, 5 * 8 * std::sqrt(1.0 / 12 / n));
  EXPECT_NEAR(m.var, 64.0 / 12, 5 * 64 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));
  // bf16 parameters: never the upper bound even though many draws round up to it.
  Tensor b = Tensor::empty({n}, DType::BF16);
  uniform_(b, -1.0, 1.0, 22);
  const std::vector<double> bv = b.to_vector<double>();
  EXPECT_GE(*std::min_element(bv.begin(), bv.end()), -1.0);
  EXPECT_EQ(*std::max_element(bv.begin(), bv.end()), 1.0 - 1.0 / 256);
  // A parameter (a leaf that requires grad) is initialised without recording anything.
  Tensor p = Tensor::zeros({3, 3});
  p.set_requires_grad(true);
  uniform_(p, -0.1, 0.1, 23);
  EXPECT_TRUE(p.is_leaf());
  EXPECT_TRUE(p.requires_grad());
  EXPECT_NE(p.to_vector<float>(), std::vector<float>(9, 0.0f));
}

TEST(RandomInit, NormalMoments) {
  const int64_t n = 100000;
  Tensor t = Tensor::empty({n}, DType::F64);
  normal_(t, 3.0, 0.5, 31);
  const std::vector<double> v = t.to_vector<double>();
  for (int64_t i = 0; i < 16; ++i)
    EXPECT_EQ(v[i], std::fma(0.5, double(kernels::philox_normal(31, 0, i)), 3.0)) << i;
  const Moments m = moments(v);
  EXPECT_NEAR(m.mean, 3.0, 5 * 0.5 / std::sqrt(double(n)));
  EXPECT_NEAR(m.var, 0.25, 5 * 0.25 * std::sqrt(2.0 / n));
  normal_(t, -1.5, 0.0, 32);
  for (double x : t.to_vector<double>()) ASSERT_EQ(x, -1.5);
}

// The inverse CDF behind trunc_normal_, against libm's erfc: Phi(quantile(p)) == p to
// near double precision from the far lower tail to the far upper tail.
TEST(RandomInit, NormalQuantileInvertsTheCdf) {
  for (double e = -300; e <= -0.31; e += 0.37) {
    const double p = std::pow(10.0, e);
    EXPECT_NEAR(std_normal_cdf(kernels::normal_quantile(p)) / p, 1.0, 1e-12) << "p = " << p;
    // Upper half: the quantile sees the tail 1 - (1 - p) (not p: 1 - p rounds), so test
    // that, while 1 - p is still below 1.
    if (e < -15) continue;
    const double hi = kernels::normal_quantile(1 - p);
    EXPECT_NEAR(0.5 * std::erfc(hi / std::sqrt(2.0)) / (1 - (1 - p)), 1.0, 1e-12) << "1 - " << p;
  }
  EXPECT_NEAR(kernels::normal_quantile(0.975), 1.959963984540054, 1e-14);
  EXPECT_NEAR(kernels::normal_quantile(0.5), 0.0, 1e-15);
}

// The ViT initialisation: std 0.02 truncated at +-2 std.
TEST(RandomInit, TruncNormalViTInit) {
  const int64_t n = 100000;
  const double sd = 0.02, a = -0.04, b = 0.04;
  Tensor t = Tensor::empty({n});
  trunc_normal_(t, sd, a, b, 41);
  const std::vector<double> v = t.to_vector<double>();
  EXPECT_GE(*std::min_element(v.begin(), v.end()), a);
  EXPECT_LE(*std::max_element(v.begin(), v.end()), b);
  // Symmetric truncation at +-beta std: variance sd^2 (1 - 2 beta phi(beta) / (2 Phi(beta) - 1)).
  const double beta = 2.0;
  const double var =
      sd * sd * (1 - 2 * beta * std_normal_pdf(beta) / (2 * std_normal_cdf(beta) - 1));
  const Moments m = moments(v);
  EXPECT_NEAR(m.mean, 0.0, 5 * std::sqrt(var / n));
  // Var(s^2) <= 2 var^2 / n: the truncated tails are lighter than the normal's.
  EXPECT_NEAR(m.var, var, 5 * var * std::sqrt(2.0 / n));
  const double mass = std_normal_cdf(b / sd) - std_normal_cdf(a / sd);
  for (double x : {-0.035, -0.02, -0.005, 0.0, 0.01, 0.03})
    expect_cdf_at(v, x, (std_normal_cdf(x / sd) - std_normal_cdf(a / sd)) / mass);
  // The value is computed in double and rounded once: f32 is the rounded f64 draw.
  Tensor d = Tensor::empty({n}, DType::F64);
  trunc_normal_(d, sd, a, b, 41);
  const std::vector<double> dv = d.to_vector<double>();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(v[i], double(static_cast<float>(dv[i]))) << i;
}

TEST(RandomInit, TruncNormalOneSidedTailsAndMirroring) {
  const int64_t n = 100000;
  const double inf = std::numeric_limits<double>::infinity();
  // [1, inf): mean lambda = phi(1) / Q(1), variance 1 + lambda - lambda^2 (alpha = 1).
  Tensor up = Tensor::empty({n}, DType::F64);
  trunc_normal_(up, 1.0, 1.0, inf, 51);
  const std::vector<double> u = up.to_vector<double>();
  EXPECT_GE(*std::min_element(u.begin(), u.end()), 1.0);
  const double lambda = std_normal_pdf(1.0) / (1 - std_normal_cdf(1.0));
  const double var = 1 + lambda * 1.0 - lambda * lambda;
  const Moments mu = moments(u);
  EXPECT_NEAR(mu.mean, lambda, 5 * std::sqrt(var / n));
  for (double x : {1.1, 1.5, 2.0, 3.0})
    expect_cdf_at(u, x, (std_normal_cdf(x) - std_normal_cdf(1.0)) / (1 - std_normal_cdf(1.0)));
  // (-inf, -1] is the mirror image: the same draws, negated.
  Tensor down = Tensor::empty({n}, DType::F64);
  trunc_normal_(down, 1.0, -inf, -1.0, 51);
  const std::vector<double> dn = down.to_vector<double>();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(dn[i], -u[i]) << i;
  // Far in the tail, where the CDF difference would cancel in 1 - Phi and rejection would
  // need ~3.5 million draws per value: [5, 6] std.
  Tensor far = Tensor::empty({n}, DType::F64);
  trunc_normal_(far, 2.0, 10.0, 12.0, 52);
  const std::vector<double> f = far.to_vector<double>();
  EXPECT_GE(*std::min_element(f.begin(), f.end()), 10.0);
  EXPECT_LE(*std::max_element(f.begin(), f.end()), 12.0);
  const double q5 = 0.5 * std::erfc(5 / std::sqrt(2.0)), q6 = 0.5 * std::erfc(6 / std::sqrt(2.0));
  const double far_mean = 2.0 * (std_normal_pdf(5) - std_normal_pdf(6)) / (q5 - q6);
  const Moments mf = moments(f);
  EXPECT_NEAR(mf.mean, far_mean, 5 * std::sqrt(mf.var / n));
  expect_cdf_at(f, 10.4, (q5 - 0.5 * std::erfc(5.2 / std::sqrt(2.0))) / (q5 - q6));
  // Fully infinite bounds: a plain normal.
  Tensor all = Tensor::empty({n}, DType::F64);
  trunc_normal_(all, 1.0, -inf, inf, 53);
  const Moments ma = moments(all.to_vector<double>());
  EXPECT_NEAR(ma.mean, 0.0, 5 / std::sqrt(double(n)));
  EXPECT_NEAR(ma.var, 1.0, 5 * std::sqrt(2.0 / n));
}

TEST(RandomInit, Errors) {
  Tensor t = Tensor::zeros({2, 3});
  EXPECT_VIMOE_ERROR(uniform_(t, 1.0, 1.0, 1), "uniform_", "[2, 3]");
  EXPECT_VIMOE_ERROR(uniform_(t, 0.0, std::numeric_limits<double>::infinity(), 1), "uniform_");
  Tensor h = Tensor::zeros({2}, DType::F16);
  EXPECT_VIMOE_ERROR(uniform_(h, 0.0, 1e6, 1), "uniform_", "f16");
  EXPECT_VIMOE_ERROR(normal_(t, 0.0, -1.0, 1), "normal_", "std");
  EXPECT_VIMOE_ERROR(trunc_normal_(t, 0.0, -1.0, 1.0, 1), "trunc_normal_", "std");
  EXPECT_VIMOE_ERROR(trunc_normal_(t, 1.0, 1.0, -1.0, 1), "trunc_normal_", "a < b");
  EXPECT_VIMOE_ERROR(trunc_normal_(t, 1.0, 40.0, 50.0, 1), "trunc_normal_", "30 std");
  EXPECT_VIMOE_ERROR(trunc_normal_(t, 1.0, -50.0, -40.0, 1), "trunc_normal_", "30 std");
  Tensor i = Tensor::zeros({2, 3}, DType::I64);
  EXPECT_VIMOE_ERROR(uniform_(i, 0.0, 1.0, 1), "uniform_", "floating");
  Tensor expanded = Tensor::zeros({1, 3}).expand({4, 3});
  EXPECT_VIMOE_ERROR(normal_(expanded, 0.0, 1.0, 1), "normal_", "expanded");
  Tensor leaf = Tensor::zeros({2, 3});
  leaf.set_requires_grad(true);
  Tensor derived = leaf * 2.0;
  EXPECT_VIMOE_ERROR(uniform_(derived, 0.0, 1.0, 1), "uniform_", "mul");
  Tensor undefined;
  EXPECT_VIMOE_ERROR(normal_(undefined, 0.0, 1.0, 1), "normal_", "undefined");
}

// ---- Generator -----------------------------------------------------------------------

std::vector<uint64_t> take(Generator& g, int n) {
  std::vector<uint64_t> v(n);
  for (uint64_t& s : v) s = g.next_seed();
  return v;
}

TEST(RandomGenerator, DeterministicPerSeedAndResumable) {
  Generator g(123);
  const std::vector<uint64_t> a = take(g, 100);
  EXPECT_EQ(std::set<uint64_t>(a.begin(), a.end()).size(), a.size());
  g.manual_seed(123);
  EXPECT_EQ(take(g, 100), a);
  g.manual_seed(124);
  const std::vector<uint64_t> b = take(g, 100);
  for (uint64_t s : b) EXPECT_EQ(std::count(a.begin(), a.end(), s), 0);
  // Save and restore mid-sequence.
  g.manual_seed(123);
  take(g, 40);
  const Generator::State saved = g.state();
  EXPECT_EQ(saved, (Generator::State{123, 40}));
  const std::vector<uint64_t> rest = take(g, 10);
  EXPECT_TRUE(std::equal(rest.begin(), rest.end(), a.begin() + 40));
  g.set_state(saved);
  EXPECT_EQ(take(g, 10), rest);
  // The process-wide generator follows manual_seed() the same way.
  manual_seed(123);
  const uint64_t first = next_seed();
  EXPECT_EQ(first, a[0]);
  EXPECT_EQ(next_seed(), a[1]);
}

TEST(RandomGenerator, ThreadSafeCallsShareOneSequence) {
  constexpr int kThreads = 4, kPerThread = 2000;
  Generator g(77);
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&g, &got, t] { got[t] = take(g, kPerThread); });
  for (std::thread& th : threads) th.join();
  std::vector<uint64_t> all;
  for (const auto& v : got) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  Generator fresh(77);
  std::vector<uint64_t> expect = take(fresh, kThreads * kPerThread);
  std::sort(expect.begin(), expect.end());
  EXPECT_EQ(all, expect);  // every call handed out exactly once, none lost or repeated
  EXPECT_EQ(g.state().calls, uint64_t(kThreads * kPerThread));
}

// ---- dropout -------------------------------------------------------------------------

TEST(RandomDropout, MaskIsRandBelowPAndSurvivorsScale) {
  const double p = 0.3;
  const uint64_t seed = 77;
  const Tensor x = uniform({200, 500}, 1, 1.0, 2.0);  // non-zero everywhere
  const std::vector<float> xv = x.to_vector<float>();
  const std::vector<float> out = dropout(x, p, true, seed).to_vector<float>();
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  int64_t kept = 0;
  for (uint64_t i = 0; i < out.size(); ++i) {
    const bool keep = ref_uniform(seed, 0, i) >= p;
    kept += keep;
    ASSERT_EQ(out[i], keep ? xv[i] * scale : 0.0f) << i;
  }
  const double n = static_cast<double>(out.size());
  EXPECT_NEAR(kept / n, 1 - p, 5 * std::sqrt(p * (1 - p) / n));
  // The same mask in every dtype; bf16 multiplies in f32 and rounds once.
  const Tensor xb = x.to(DType::BF16);
  const std::vector<float> xbv = xb.to_vector<float>();
  const std::vector<float> ob = dropout(xb, p, true, seed).to_vector<float>();
  for (uint64_t i = 0; i < ob.size(); ++i) {
    const float e = ref_uniform(seed, 0, i) >= p ? static_cast<float>(bfloat16(xbv[i] * scale)) : 0;
    ASSERT_EQ(ob[i], e) << i;
  }
  const std::vector<double> od = dropout(x.to(DType::F64), p, true, seed).to_vector<double>();
  for (uint64_t i = 0; i < od.size(); ++i)
    ASSERT_EQ(od[i], ref_uniform(seed, 0, i) >= p ? double(xv[i]) * (1 / (1 - p)) : 0.0) << i;
}

TEST(RandomDropout, NonContiguousInputUsesLogicalIndex) {
  const Tensor base = uniform({6, 5}, 2);
  const Tensor xt = base.t();  // [5, 6], not contiguous
  const Tensor out = dropout(xt, 0.5, true, 3);
  EXPECT_TRUE(out.is_contiguous());
  EXPECT_TRUE(all_close(out, dropout(xt.contiguous(), 0.5, true, 3), 0, 0));
  const Tensor sliced = uniform({4, 9}, 3).slice(1, 1, 9, 2);  // [4, 4], stride 2
  EXPECT_TRUE(all_close(dropout(sliced, 0.25, true, 4),
                        dropout(sliced.contiguous(), 0.25, true, 4), 0, 0));
}

TEST(RandomDropout, IdentityZerosAndErrors) {
  const Tensor x = uniform({2, 3}, 4);
  EXPECT_EQ(dropout(x, 0.5, false, 1).impl_ptr(), x.impl_ptr());
  EXPECT_EQ(dropout(x, 0.0, true, 1).impl_ptr(), x.impl_ptr());
  // p == 1 drops everything, inf and NaN included.
  const Tensor odd = Tensor::from_vector<float>({1.0f, INFINITY, NAN, -2.0f}, {2, 2});
  for (float v : dropout(odd, 1.0, true, 5).to_vector<float>()) EXPECT_EQ(v, 0.0f);
  EXPECT_VIMOE_ERROR(dropout(x, -0.1, true, 1), "dropout", "-0.1", "[2, 3]");
  EXPECT_VIMOE_ERROR(dropout(x, 1.5, false, 1), "dropout", "1.5", "[2, 3]");
  EXPECT_VIMOE_ERROR(dropout(x, NAN, true, 1), "dropout", "[0, 1]");
  EXPECT_VIMOE_ERROR(dropout(Tensor::zeros({2}, DType::I32), 0.5, true, 1), "dropout", "i32");
  EXPECT_VIMOE_ERROR(dropout(Tensor(), 0.5, true, 1), "dropout", "undefined");
}

TEST(RandomDropout, Gradcheck) {
  const auto f = [](const std::vector<Tensor>& in) { return dropout(in[0], 0.4, true, 5); };
  EXPECT_TRUE(grad_ok(f, {leaf64({4, 5}, 1)}));
  // A transposed input: the mask follows the logical index of the view.
  const auto ft = [](const std::vector<Tensor>& in) { return dropout(in[0].t(), 0.4, true, 6); };
  EXPECT_TRUE(grad_ok(ft, {leaf64({5, 4}, 2)}));
  const auto f1 = [](const std::vector<Tensor>& in) { return dropout(in[0], 1.0, true, 7); };
  EXPECT_TRUE(grad_ok(f1, {leaf64({3}, 3)}));
}

TEST(RandomDropout, GradientIsMaskTimesScale) {
  const double p = 0.25;
  const uint64_t seed = 9;
  const Tensor x = leaf64({30, 40}, 4);
  const Tensor w = uniform({30, 40}, 5, -1, 1, DType::F64);
  sum(dropout(x, p, true, seed) * w).backward();
  const std::vector<double> g = x.grad().to_vector<double>(), wv = w.to_vector<double>();
  for (uint64_t i = 0; i < g.size(); ++i)
    ASSERT_EQ(g[i], ref_uniform(seed, 0, i) >= p ? wv[i] * (1 / (1 - p)) : 0.0) << i;
}

// ---- drop_path -----------------------------------------------------------------------

TEST(RandomDropPath, OneDecisionPerSample) {
  const double p = 0.5;
  const uint64_t seed = 31;
  const int64_t batch = 64, inner = 15;
  const Tensor x = uniform({batch, 3, 5}, 6, 1.0, 2.0);
  const std::vector<float> xv = x.to_vector<float>();
  const std::vector<float> out = drop_path(x, p, true, seed).to_vector<float>();
  const std::vector<float> r = rand({batch}, seed).to_vector<float>();
  int64_t kept = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const bool keep = ref_uniform(seed, 0, b) >= p;
    EXPECT_EQ(keep, r[b] >= p);
    kept += keep;
    for (int64_t j = 0; j < inner; ++j) {
      const int64_t i = b * inner + j;
      ASSERT_EQ(out[i], keep ? xv[i] * 2.0f : 0.0f) << "sample " << b << " element " << j;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, batch);
  // Keep fraction over many samples.
  const int64_t n = 100000;
  const std::vector<float> many = drop_path(Tensor::ones({n, 2}), 0.2, true, 32).to_vector<float>();
  int64_t k = 0;
  for (int64_t b = 0; b < n; ++b) {
    ASSERT_EQ(many[2 * b], many[2 * b + 1]);
    k += many[2 * b] != 0;
  }
  EXPECT_NEAR(double(k) / n, 0.8, 5 * std::sqrt(0.2 * 0.8 / n));
}

// A seed whose drop_path mask over `batch` samples keeps some and drops some.
uint64_t mixed_seed(int64_t batch, double p) {
  for (uint64_t s = 1;; ++s) {
    int kept = 0;
    for (int64_t b = 0; b < batch; ++b) kept += ref_uniform(s, 0, b) >= p;
    if (kept > 0 && kept < batch) return s;
  }
}

TEST(RandomDropPath, GradcheckAndGradient) {
  const uint64_t seed = mixed_seed(6, 0.5);
  const auto f = [seed](const std::vector<Tensor>& in) {
    return drop_path(in[0], 0.5, true, seed);
  };
  EXPECT_TRUE(grad_ok(f, {leaf64({6, 2, 3}, 7)}));
  // Permuted so that the view's dim 0 is the input's dim 1.
  const auto fp = [seed](const std::vector<Tensor>& in) {
    return drop_path(in[0].permute({1, 0, 2}), 0.5, true, seed);
  };
  EXPECT_TRUE(grad_ok(fp, {leaf64({2, 6, 3}, 8)}));
  const Tensor x = leaf64({6, 4}, 9);
  drop_path(x, 0.5, true, seed).backward(Tensor::ones({6, 4}, DType::F64));
  const std::vector<double> g = x.grad().to_vector<double>();
  for (int64_t b = 0; b < 6; ++b)
    for (int64_t j = 0; j < 4; ++j)
      ASSERT_EQ(g[b * 4 + j], ref_uniform(seed, 0, b) >= 0.5 ? 2.0 : 0.0) << b << "," << j;
}

TEST(RandomDropPath, IdentityAndErrors) {
  const Tensor x = uniform({3, 4}, 10);
  EXPECT_EQ(drop_path(x, 0.3, false, 1).impl_ptr(), x.impl_ptr());
  EXPECT_EQ(drop_path(x, 0.0, true, 1).impl_ptr(), x.impl_ptr());
  for (float v : drop_path(x, 1.0, true, 1).to_vector<float>()) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(drop_path(Tensor::zeros({0, 3}), 0.5, true, 1).numel(), 0);
  EXPECT_VIMOE_ERROR(drop_path(Tensor::scalar(1.0), 0.5, true, 1), "drop_path", "dim 0");
  EXPECT_VIMOE_ERROR(drop_path(x, 2.0, true, 1), "drop_path", "2", "[3, 4]");
  EXPECT_VIMOE_ERROR(drop_path(Tensor::zeros({3}, DType::I64), 0.5, true, 1), "drop_path", "i64");
}

}  // namespace
}  // namespace vimoe
