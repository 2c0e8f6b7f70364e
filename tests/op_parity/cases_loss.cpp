// Cross-entropy (kernels/loss.cu): mean loss over logits [N, C] and i64 targets, with label
// smoothing eps and ignore_index (the default -100, a valid class value such as 0, -1, every
// row ignored, none ignored), forward and the logits' gradient.
//
// Paths: the forward's row kernel takes 32 threads for C <= 64, 128 for C <= 1024 and 256
// above (C = 1, 10, 64 | 65, 100, 385, 1000 | 1025, 4099); blocks stride over rows beyond
// 65535 * 16 (the 65535 * 16 + 5 row case); a single block then sums the row losses. Transposed
// logits are copied contiguous first; misaligned ones are read in place.
//
// Tolerances of CUDA against the CPU, which computes in double and rounds once to the logits'
// dtype. CUDA computes in f32 (f64 for f64 logits). Logits in [-6, 6) unless stated, so
// |lse| <= 6 + ln C <= 15 and every row loss lies in [0, 20]; u = 2^-24.
//   forward, f32: per row, the sum s of exp(x - max) takes <= C/256 + 2 log2(256) + 8
//       roundings (sequential per thread, then shuffle and warp merges, each merge also
//       rescaling by an expf): |ds|/s <= 53 u = 3.2e-6 for C = 4099, so lse is off by
//       <= 3.2e-6 + an ulp of logf and of lse (1e-6); the two subtractions of the row loss
//       add <= 2 ulp(20) = 2.4e-6, and eps/C * sum(x) is off by <= 1e-6 eps. So each row is
//       off by <= 7e-6 absolute: atol 1e-5. The mean kernel adds the row losses, which are
//       >= 0, sequentially per thread (rows / 256 terms) then in a 16-level tree: relative
//       error <= (rows/256 + 16) u of the loss, plus the CPU's one rounding: rtol 1e-5 plus
//       that term (it matters only for the 2^20-row case: 2.5e-4).
//   forward, bf16 / f16: the same f32 result and the CPU's double both round once to the
//       half type: they differ by one ulp when the f32 error straddles a rounding boundary
//       (<= 2^-7 / 2^-10 relative, 1/64 / 1/256 leave room for a binade edge) plus the f32
//       error (atol 2e-5; with one class the loss is 0 in double but an f32 residue of
//       ~1e-7 |x| in CUDA).
//   forward, f64: f64 on both sides, only the order of the C-term sums and the device's
//       exp / log differ: 1e-11 relative, 1e-12 absolute.
//   backward, f32: dx = (g / count) (exp(x - lse) - keep [c == t] - eps / C). p = exp(x - lse)
//       inherits lse's error (3.2e-6 + 1e-6) and the rounding of x - lse (|x - lse| <= 21:
//       1.3e-6) as a relative error <= 8.5e-6 (+2u for expf); the subtractions and the scale
//       add <= 3 u |g / count|. For eps = 0 off the target dx = (g / count) p: rtol 1e-5.
//       Where p nearly cancels keep or eps / C the error stays <= 8.5e-6 |g / count| while
//       M = max|dx| >= 0.43 |g / count| as soon as one row's target has p_t <= 0.4 (true of
//       random logits over >= 10 classes and of every row here; with one class p = 1
//       exactly and dx is a rounding residue): scaled 2e-5. atol 1e-6 covers the residues.
//   backward, bf16 / f16: that f32 value and the CPU's double each round once: one ulp
//       (1/64, 1/256 with the binade margin) plus the f32 error (scaled 2e-5); f16 gradients
//       as small as (g / count) e^-12 / C are subnormal (ulp 6e-8): atol 1e-6.
//   backward, f64: 1e-11 relative and of M, 1e-13 absolute.
//   logits in [-1000, 1000] (LargeLogits): lse ~ 1000 carries ulp(1000) / 2 = 3.1e-5 of f32
//       rounding and each row loss (up to 2000) a few ulp(2000) = 1.2e-4: atol 5e-4 against a
//       loss of ~1100; p = exp(x - lse) inherits the 3.1e-5 as a relative error, also on
//       the ~0.95 of a row's largest logit that does not cancel: rtol and scaled 1e-4.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

constexpr double kU32 = 1.0 / (1 << 24);

Tol ce_fwd(DType dt, int64_t rows) {
  switch (dt) {
    case DType::F64: return {1e-12, 1e-11, 0};
    case DType::BF16: return {2e-5, 1.0 / 64, 0};
    case DType::F16: return {2e-5, 1.0 / 256, 0};
    default: return {1e-5, 1e-5 + static_cast<double>((rows + 255) / 256 + 16) * kU32, 0};
  }
}

Tol ce_bwd(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-13, 1e-11, 1e-11};
    case DType::BF16: return {1e-6, 1.0 / 64, 2e-5};
    case DType::F16: return {1e-6, 1.0 / 256, 2e-5};
    default: return {1e-6, 1e-5, 2e-5};
  }
}

// Which rows carry ignore_index as their target.
enum class Ignore {
  None,       // no row
  EveryFifth, // rows r with r % 5 == 3 (and any row whose spread target equals the index)
  All,        // every row: the loss is 0 and so is the gradient
};

struct Spec {
  int64_t rows = 1, classes = 1;
  DType dt = DType::F32;
  double eps = 0;
  int64_t ignore_index = -100;
  Ignore ignore = Ignore::EveryFifth;
  View view = View::Contiguous;
};

// i64 targets [rows], spread over the classes by a fixed seed (independent of the row's).
Input targets(const Spec& s, uint64_t seed) {
  Input i = custom([s, seed](uint64_t) {
    std::vector<int64_t> t(s.rows);
    for (int64_t r = 0; r < s.rows; ++r) {
      const bool ignored = s.ignore == Ignore::All || (s.ignore == Ignore::EveryFifth && r % 5 == 3);
      t[r] = ignored ? s.ignore_index
                     : static_cast<int64_t>((static_cast<uint64_t>(r) * 7919u + 17u + seed) %
                                            static_cast<uint64_t>(s.classes));
      // A valid class used as ignore_index stays ignored wherever it comes up; with no
      // rows ignored, steer clear of it.
      if (s.ignore == Ignore::None && t[r] == s.ignore_index) t[r] = (t[r] + 1) % s.classes;
    }
    return Tensor::from_vector(t, {s.rows});
  });
  i.shape = {s.rows};  // for the row's name
  i.dtype = DType::I64;
  return i;
}

// A value in a row name ("m1" for -1: names keep to [A-Za-z0-9_]).
std::string tag(int64_t v) {
  std::string t = std::to_string(v < 0 ? -v : v);
  if (v < 0) t.insert(t.begin(), 'm');
  return t;
}

OpCase ce_row(const Spec& s, uint64_t target_seed = 1) {
  OpCase c;
  c.name = "cross_entropy";
  if (s.eps > 0) c.name += "_ls" + std::to_string(static_cast<int>(std::lround(s.eps * 100)));
  if (s.ignore_index != -100) c.name += "_ign" + tag(s.ignore_index);
  if (s.ignore == Ignore::None) c.name += "_noignored";
  if (s.ignore == Ignore::All) c.name += "_allignored";
  c.inputs = {in({s.rows, s.classes}, s.dt, -6, 6, s.view), targets(s, target_seed)};
  const double eps = s.eps;
  const int64_t ignore_index = s.ignore_index;
  c.fn = [eps, ignore_index](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{cross_entropy(a[0], a[1], eps, ignore_index)};
  };
  c.fwd = ce_fwd(s.dt, s.rows);
  c.bwd = ce_bwd(s.dt);
  return c;
}

Spec spec(int64_t rows, int64_t classes, DType dt, double eps = 0) {
  Spec s;
  s.rows = rows;
  s.classes = classes;
  s.dt = dt;
  s.eps = eps;
  return s;
}

// Integer logits spaced 3 apart over [-1000, 1000] (distinct within a row) with targets at
// both ends of the class range: the max subtraction must keep exp from overflowing.
OpCase large_logits_row() {
  OpCase c;
  c.name = "cross_entropy_large_logits_ls5";
  Input x = custom(
      [](uint64_t) {
        std::vector<float> v(4 * 300);
        for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37) % 2001) - 1000;
        return Tensor::from_vector(v, {4, 300});
      },
      /*requires_grad=*/true);
  x.shape = {4, 300};
  x.dtype = DType::F32;
  Input t = custom([](uint64_t) { return Tensor::from_vector<int64_t>({0, 299, 150, 7}, {4}); });
  t.shape = {4};
  t.dtype = DType::I64;
  c.inputs = {x, t};
  c.fn = [](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{cross_entropy(a[0], a[1], 0.05)};
  };
  c.fwd = {5e-4, 1e-5, 0};
  c.bwd = {1e-6, 1e-4, 1e-4};
  return c;
}

}  // namespace

VIMOE_OP_CASES(loss) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c) {
    rows.push_back(std::move(c));
  };

  // Every block size and both sides of its edges (C = 1, 10, 64 | 65, 100, 385, 1000 |
  // 1025, 4099), one class, odd row counts; eps 0 and 0.1, every fifth row ignored.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {257, 385}, {3, 4099}, {5, 1},    {64, 10},    {1000, 64}, {7, 65},
      {2, 1025},  {1, 1000}, {3, 100},  {257, 10},   {257, 1000}, {1, 1}};
  for (DType dt : {DType::F32, DType::BF16})
    for (const auto& [r, cl] : shapes)
      for (double eps : {0.0, 0.1}) add(ce_row(spec(r, cl, dt, eps)));
  for (DType dt : {DType::F16, DType::F64}) {
    add(ce_row(spec(257, 385, dt, 0.1)));
    add(ce_row(spec(3, 4099, dt)));
  }

  // ignore_index: a valid class (0: every row whose target is class 0 is left out too), -1,
  // every row ignored (loss and gradient 0), no row ignored; full smoothing.
  for (DType dt : {DType::F32, DType::BF16}) {
    Spec s = spec(257, 10, dt, 0.1);
    s.ignore_index = 0;
    add(ce_row(s));
    s = spec(64, 385, dt);
    s.ignore_index = -1;
    add(ce_row(s));
    s = spec(33, 100, dt, 0.1);
    s.ignore = Ignore::All;
    add(ce_row(s));
    s = spec(257, 100, dt);
    s.ignore = Ignore::None;
    add(ce_row(s));
    add(ce_row(spec(65, 100, dt, 1.0)));
  }

  // Views: transposed logits are made contiguous first; misaligned ones read in place.
  for (DType dt : {DType::F32, DType::BF16})
    for (View v : {View::Transposed, View::Misaligned}) {
      Spec s = spec(257, 385, dt, 0.1);
      s.view = v;
      add(ce_row(s));
      s = spec(3, 1025, dt);
      s.view = v;
      add(ce_row(s));
    }

  // More rows than the forward's grid (65535 * 16 blocks): blocks stride over rows, and the
  // mean kernel's threads each add 4096 row losses.
  add(ce_row(spec(65535 * 16 + 5, 3, DType::F32, 0.1)));

  add(large_logits_row());

  // The ViT-S/14 classifier at batch 256: 1000 ImageNet classes, with and without the
  // training's label smoothing.
  for (DType dt : {DType::F32, DType::BF16})
    for (double eps : {0.0, 0.1}) {
      Spec s = spec(256, 1000, dt, eps);
      s.ignore = Ignore::None;
      OpCase c = ce_row(s);
      c.large = true;
      add(std::move(c));
    }
  return rows;
}

}  // namespace vimoe::parity
