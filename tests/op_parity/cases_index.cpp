// Concatenation and indexing (kernels/index.cu): concat (and stack, and split's views put
// back together), index_select / index_add (a 1-D index along one axis), gather /
// scatter_add (an element-wise index), one_hot and topk. Forward values and indices, and the
// gradients of every floating input: index_select's and gather's are index_add / scatter_add
// of the upstream gradient, the others are slices and gathers of it.
//
// Indices come from fixed seeds (independent of the row's), in [0, bound) with repeats:
// several index entries land on one output element (index_select over 300 of 257 rows,
// index_add of 600 rows into 257 or 7, scatter_add of 150 entries per row into 385 columns),
// so the accumulating kernels add many terms into one place. Both index dtypes (i32, i64);
// transposed, strided and misaligned operands; integer data.
//
// Tolerances of CUDA against the CPU reference:
//   concat / stack / split, index_select, gather, one_hot, topk (values and indices), and the
//       gradients of concat, index_add, scatter_add and topk: exact. They move values (topk
//       stores the selected element itself; its order, NaN above every number and ties to the
//       lower index, is the same rule on both sides, compared as f32 for half types and
//       exactly for integers); the gradients are slices and gathers of the upstream gradient
//       into zeros (topk selects a position at most once), and a leaf used twice adds two
//       values, which rounds identically on both sides.
//   index_add / scatter_add forward, and the index_select / gather gradients: CUDA adds with
//       atomics in an order that varies from run to run, into f32 (f64 for f64; bf16 / f16
//       add into an f32 buffer rounded once at the end); the CPU adds in double and rounds
//       once. With k the most terms that land on one output element (counted from the fixed
//       indices when the row is built) and every term and x in [-1, 1], the j-th addition of
//       any order rounds at most u |partial sum| <= u (j + 1), so any order is within
//       u k (k + 3) / 2 of the exact sum (u = 2^-24 for f32, 2^-53 for f64):
//         f32: atol u32 k (k + 3), twice that bound, + rtol 2 u32 for the CPU's rounding;
//         f64: both sides accumulate in double, each within the bound: atol u64 k (k + 3);
//         bf16 / f16: the f32 bound, plus both sides rounding once to the half type, which
//           a difference straddling a rounding boundary turns into one ulp: <= 2^-7 (2^-10)
//           of the value; f16 results near 0 are subnormal, with an absolute ulp of 2^-24;
//         integer sums (i32, i64): exact, integer addition is associative.
//   the ViT-S/14 concatenation of the broadcast class token (and register tokens): their
//       gradient sums the batch's 256 slices in the reduction kernel; tolerances as for
//       sum over a leading axis in cases_reduce.cpp.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

constexpr double kU32 = 1.0 / 16777216.0;         // 2^-24
constexpr double kU64 = 1.0 / 9007199254740992.0;  // 2^-53

const DType kDtypes[] = {DType::F32, DType::BF16};

// ---- index tensors ---------------------------------------------------------------------

// Fixed-seed indices in [0, bound).
std::vector<int64_t> index_values(int64_t n, int64_t bound, uint64_t seed) {
  std::vector<int64_t> v(n);
  uint64_t s = seed * 2862933555777941757ull + 3037000493ull;
  for (int64_t& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(bound));
  }
  return v;
}

struct Index {
  Shape shape;
  int64_t bound = 1;
  DType dtype = DType::I64;
  uint64_t seed = 1;

  std::vector<int64_t> values() const { return index_values(shape_numel(shape), bound, seed); }

  Input input() const {
    const Index self = *this;
    Input i = custom([self](uint64_t) {
      return Tensor::from_vector(self.values(), self.shape).to(self.dtype);
    });
    i.shape = shape;  // for the row's name; the values come from `make`
    i.dtype = dtype;
    return i;
  }

  // The most entries of a 1-D index that share a value: the terms index_add (and
  // index_select's gradient) adds into one output element.
  int64_t max_repeats() const {
    std::map<int64_t, int64_t> n;
    int64_t most = 0;
    for (int64_t v : values()) most = std::max(most, ++n[v]);
    return most;
  }

  // The same for an element-wise index used along `dim` (scatter_add, gather's gradient):
  // entries that agree in every other coordinate and in value land on one element.
  int64_t max_repeats_along(int64_t dim) const {
    const std::vector<int64_t> v = values();
    std::map<std::pair<int64_t, int64_t>, int64_t> n;
    int64_t inner = 1;
    for (size_t d = static_cast<size_t>(dim) + 1; d < shape.size(); ++d) inner *= shape[d];
    int64_t most = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      const int64_t pos = static_cast<int64_t>(i);
      const int64_t outer = pos / (inner * shape[dim]), k = pos % inner;
      most = std::max(most, ++n[{outer * inner + k, v[i]}]);
    }
    return most;
  }
};

Index index(Shape shape, int64_t bound, uint64_t seed, DType dtype = DType::I64) {
  Index i;
  i.shape = std::move(shape);
  i.bound = bound;
  i.seed = seed;
  i.dtype = dtype;
  return i;
}

// Integer (or floating, on a coarse grid: ties) data: floor of uniform [lo, hi) from a fixed
// seed, in `dt`.
Input grid_input(Shape shape, DType dt, double lo, double hi, uint64_t seed,
                 bool requires_grad = false, View view = View::Contiguous) {
  Input i = custom(
      [shape, dt, lo, hi, seed](uint64_t) {
        std::vector<double> v(shape_numel(shape));
        uint64_t s = seed * 2862933555777941757ull + 3037000493ull;
        for (double& x : v) {
          s = s * 6364136223846793005ull + 1442695040888963407ull;
          x = std::floor(lo + (hi - lo) * static_cast<double>(s >> 11) / 9007199254740992.0);
        }
        return Tensor::from_vector(v, shape).to(dt);
      },
      requires_grad && is_floating(dt));
  i.shape = shape;
  i.dtype = dt;
  i.view = view;
  return i;
}

// ---- tolerances ------------------------------------------------------------------------

// Sums of at most k terms in [-1, 1] added into one element holding a value in [-1, 1].
Tol acc_tol(DType dt, int64_t k) {
  const double kk = static_cast<double>(k) * static_cast<double>(k + 3);
  switch (dt) {
    case DType::F64: return {kU64 * kk, 0, 0};
    case DType::F32: return {kU32 * kk, 2 * kU32, 0};
    case DType::BF16: return {kU32 * kk, 1.0 / 128, 0};
    case DType::F16: return {kU32 * kk + kU32, 1.0 / 1024, 0};
    default: return kExact;
  }
}

// The gradient of a broadcast leaf (a sum of n slices), as in cases_reduce.cpp.
Tol broadcast_sum_tol(DType dt, int64_t n) {
  const double walk = 2e-6 * std::sqrt(static_cast<double>(n));
  return dt == DType::BF16 ? Tol{walk, 1.0 / 64, 1e-3} : Tol{walk, 1e-5, 1e-5};
}

// ---- rows --------------------------------------------------------------------------------

OpCase row(std::string name, std::vector<Input> inputs, OpFn fn, Tol fwd = kExact,
           Tol bwd = kExact) {
  OpCase c;
  c.name = std::move(name);
  c.inputs = std::move(inputs);
  c.fn = std::move(fn);
  c.fwd = fwd;
  c.bwd = bwd;
  bool grad = false;
  for (const Input& i : c.inputs) grad |= i.requires_grad && is_floating(i.dtype);
  c.backward = grad;
  return c;
}

OpFn one(std::function<Tensor(const std::vector<Tensor>&)> f) {
  return [f](const std::vector<Tensor>& a) { return std::vector<Tensor>{f(a)}; };
}

OpFn topk_fn(int64_t k, int64_t dim, bool largest) {
  return [k, dim, largest](const std::vector<Tensor>& a) {
    const TopK r = topk(a[0], k, dim, largest);
    return std::vector<Tensor>{r.values, r.indices};
  };
}

std::string topk_name(int64_t k, int64_t dim, bool largest, bool ties) {
  return "topk_d" + std::to_string(dim < 0 ? 1 : dim) + "_k" + std::to_string(k) +
         (largest ? "_largest" : "_smallest") + (ties ? "_ties" : "");
}

// Values in [-1, 1) of `dt`, or integers of a small range for integer `dt`.
Input data(Shape shape, DType dt, uint64_t seed, View view = View::Contiguous) {
  if (is_floating(dt)) return in(std::move(shape), dt, -1, 1, view);
  return grid_input(std::move(shape), dt, 0, dt == DType::U8 ? 200 : 1000, seed, false, view);
}

}  // namespace

VIMOE_OP_CASES(index) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c) {
    rows.push_back(std::move(c));
  };

  // ---- concat, stack, split ------------------------------------------------------------
  const auto cat1 = one([](const std::vector<Tensor>& a) { return concat(a, 1); });
  for (DType dt : kDtypes) {
    // A transposed middle input and a one-column one.
    add(row("concat_d1", {in({257, 385}, dt), in({257, 3}, dt, -1, 1, View::Transposed), in({257, 1}, dt)},
            cat1));
    // A strided slice, a one-row input, and the same leaf twice (its gradients add).
    add(row("concat_slice_d0", {in({257, 385}, dt), in({1, 385}, dt)},
            one([](const std::vector<Tensor>& a) {
              return concat({a[0].slice(0, 0, 257, 2), a[1], a[0]}, -2);
            })));
    // More inputs than one launch carries (kConcatMaxSources = 8), some of them empty.
    // (gradcheck refuses the empty leaves; the small concat_d1 row below is checked.)
    std::vector<Input> many;
    for (int i = 0; i < 19; ++i) many.push_back(in({3, i % 5, 7}, dt));
    OpCase c = row("concat_many", many, cat1);
    c.gradcheck = false;
    add(std::move(c));
    add(row("concat_d1", {in({5, 7}, dt), in({5, 3}, dt, -1, 1, View::Transposed), in({5, 1}, dt)}, cat1));
    // Misaligned inputs (element copies at odd addresses).
    add(row("concat_d1", {in({33, 385}, dt, -1, 1, View::Misaligned), in({33, 3}, dt, -1, 1, View::Misaligned)},
            cat1));
    // stack of a transposed input between two uses of one leaf.
    add(row("stack_d1", {in({257, 385}, dt), in({257, 385}, dt, -1, 1, View::Transposed)},
            one([](const std::vector<Tensor>& a) { return stack({a[0], a[1], a[0]}, 1); })));
    // split into chunks of 128 (the last one 1 wide), reordered, one scaled.
    add(row("split_concat", {in({257, 385}, dt)}, one([](const std::vector<Tensor>& a) {
              const std::vector<Tensor> p = split(a[0], 128, -1);
              return concat({p[3], p[1], p[0] * 2.0, p[2]}, 1);
            })));
    // split of a transposed view by sizes.
    add(row("split_sizes_concat", {in({257, 385}, dt)}, one([](const std::vector<Tensor>& a) {
              const std::vector<Tensor> p = split(a[0].t(), std::vector<int64_t>{1, 3, 253}, 1);
              return concat({p[2], p[0], p[1]}, 1);
            })));
  }
  for (DType dt : {DType::F16, DType::F64, DType::I32, DType::I64, DType::U8})
    add(row("concat_d1", {data({257, 385}, dt, 1), data({257, 3}, dt, 2, View::Transposed), data({257, 1}, dt, 3)},
            cat1));
  // Mixed dtypes promote: bf16 + f32 + i32 -> f32.
  add(row("concat_promote_d0",
          {in({2, 385}, DType::BF16), in({3, 385}, DType::F32), grid_input({1, 385}, DType::I32, 0, 9, 7)},
          one([](const std::vector<Tensor>& a) { return concat(a, 0); })));

  // ---- index_select --------------------------------------------------------------------
  for (DType dt : kDtypes) {
    for (DType it : {DType::I64, DType::I32}) {
      const Index rows300 = index({300}, 257, 2, it), cols = index({129}, 385, 3, it);
      add(row("index_select_d0", {in({257, 385}, dt), rows300.input()},
              one([](const std::vector<Tensor>& a) { return index_select(a[0], 0, a[1]); }), kExact,
              acc_tol(dt, rows300.max_repeats())));
      add(row("index_select_d1", {in({257, 385}, dt), cols.input()},
              one([](const std::vector<Tensor>& a) { return index_select(a[0], -1, a[1]); }), kExact,
              acc_tol(dt, cols.max_repeats())));
      // A transposed x and a strided index (every third entry).
      add(row("index_select_strided_d1", {in({385, 257}, dt, -1, 1, View::Transposed), rows300.input()},
              one([](const std::vector<Tensor>& a) {
                return index_select(a[0], 1, a[1].slice(0, 1, 300, 3));
              }),
              kExact, acc_tol(dt, rows300.max_repeats())));
    }
    // Axes of 1 and 3.
    for (int64_t r : {1, 3}) {
      const Index idx = index({5}, r, 4);
      add(row("index_select_d0", {in({r, 385}, dt), idx.input()},
              one([](const std::vector<Tensor>& a) { return index_select(a[0], 0, a[1]); }), kExact,
              acc_tol(dt, idx.max_repeats())));
      add(row("index_select_d1", {in({257, r}, dt), idx.input()},
              one([](const std::vector<Tensor>& a) { return index_select(a[0], 1, a[1]); }), kExact,
              acc_tol(dt, idx.max_repeats())));
    }
    // A misaligned x; 600 entries over 7 rows (about 86 repeats each in the gradient).
    const Index rows300 = index({300}, 257, 2), hot = index({600}, 7, 5);
    add(row("index_select_d0", {in({257, 385}, dt, -1, 1, View::Misaligned), rows300.input()},
            one([](const std::vector<Tensor>& a) { return index_select(a[0], 0, a[1]); }), kExact,
            acc_tol(dt, rows300.max_repeats())));
    add(row("index_select_hot_d0", {in({7, 385}, dt), hot.input()},
            one([](const std::vector<Tensor>& a) { return index_select(a[0], 0, a[1]); }), kExact,
            acc_tol(dt, hot.max_repeats())));
  }
  for (DType dt : {DType::F16, DType::F64, DType::I64, DType::U8}) {
    const Index rows300 = index({300}, 257, 2);
    add(row("index_select_d0", {data({257, 385}, dt, 1), rows300.input()},
            one([](const std::vector<Tensor>& a) { return index_select(a[0], 0, a[1]); }), kExact,
            acc_tol(dt, rows300.max_repeats())));
  }
  // The ViT-S/14 token matrix at batch 256 (256 * 257 tokens of 384), rows picked with
  // repeats: the gradient's index_add at full size.
  for (DType dt : kDtypes) {
    const Index tokens = index({256 * 257}, 256 * 257, 6);
    OpCase c = row("index_select_d0", {in({256 * 257, 384}, dt), tokens.input()},
                   one([](const std::vector<Tensor>& a) { return index_select(a[0], 0, a[1]); }),
                   kExact, acc_tol(dt, tokens.max_repeats()));
    c.large = true;
    add(std::move(c));
  }

  // ---- index_add -----------------------------------------------------------------------
  const auto add_fn = [](int64_t dim) {
    return one([dim](const std::vector<Tensor>& a) { return index_add(a[0], dim, a[2], a[1]); });
  };
  for (DType dt : kDtypes) {
    const Index rows600 = index({600}, 257, 2), cols = index({100}, 385, 3, DType::I32);
    add(row("index_add_d0", {in({257, 385}, dt), in({600, 385}, dt), rows600.input()}, add_fn(0),
            acc_tol(dt, rows600.max_repeats())));
    // A transposed src along the last axis.
    add(row("index_add_d1", {in({257, 385}, dt), in({257, 100}, dt, -1, 1, View::Transposed), cols.input()},
            add_fn(1), acc_tol(dt, cols.max_repeats())));
    for (int64_t r : {1, 3}) {
      const Index idx = index({7}, r, 6);
      add(row("index_add_d0", {in({r, 385}, dt), in({7, 385}, dt), idx.input()}, add_fn(0),
              acc_tol(dt, idx.max_repeats())));
    }
    // A misaligned src; 600 rows into 7 (the atomics contend).
    const Index hot = index({600}, 7, 5);
    add(row("index_add_d0", {in({257, 385}, dt), in({600, 385}, dt, -1, 1, View::Misaligned), rows600.input()},
            add_fn(0), acc_tol(dt, rows600.max_repeats())));
    add(row("index_add_hot_d0", {in({7, 385}, dt), in({600, 385}, dt), hot.input()}, add_fn(0),
            acc_tol(dt, hot.max_repeats())));
  }
  {
    // f16 (into an f32 buffer), f64, and integers (exact) into 3 rows from 50.
    const Index idx = index({50}, 3, 9);
    for (DType dt : {DType::F16, DType::F64, DType::I64, DType::I32})
      add(row("index_add_d0", {data({3, 385}, dt, 10), data({50, 385}, dt, 11), idx.input()}, add_fn(0),
              acc_tol(dt, idx.max_repeats())));
  }

  // ---- gather --------------------------------------------------------------------------
  const auto gather_fn = [](int64_t dim) {
    return one([dim](const std::vector<Tensor>& a) { return gather(a[0], dim, a[1]); });
  };
  for (DType dt : kDtypes) {
    const Index i1 = index({257, 100}, 385, 2), i0 = index({300, 385}, 257, 3, DType::I32);
    add(row("gather_d1", {in({257, 385}, dt), i1.input()}, gather_fn(1), kExact,
            acc_tol(dt, i1.max_repeats_along(1))));
    add(row("gather_d0", {in({257, 385}, dt), i0.input()}, gather_fn(-2), kExact,
            acc_tol(dt, i0.max_repeats_along(0))));
    // A transposed x and a transposed, sliced index, smaller than x in the other axis: entry
    // [i, j] of the index used is entry [j, i] of the stored one, so its repeats along dim 0
    // are at most the stored index's along dim 1.
    const Index it = index({100, 385}, 257, 4);
    add(row("gather_t_d0", {in({385, 257}, dt, -1, 1, View::Transposed), it.input()},
            one([](const std::vector<Tensor>& a) { return gather(a[0], 0, a[1].t().slice(0, 0, 200)); }),
            kExact, acc_tol(dt, it.max_repeats_along(1))));
    for (int64_t r : {1, 3}) {
      const Index idx = index({257, 5}, r, 5);
      add(row("gather_d1", {in({257, r}, dt), idx.input()}, gather_fn(1), kExact,
              acc_tol(dt, idx.max_repeats_along(1))));
    }
    // Rank 3 along the middle axis; a misaligned x.
    const Index i3 = index({3, 300, 5}, 257, 6);
    add(row("gather_d1", {in({3, 257, 5}, dt), i3.input()}, gather_fn(1), kExact,
            acc_tol(dt, i3.max_repeats_along(1))));
    add(row("gather_d1", {in({257, 385}, dt, -1, 1, View::Misaligned), i1.input()}, gather_fn(1), kExact,
            acc_tol(dt, i1.max_repeats_along(1))));
  }
  for (DType dt : {DType::F16, DType::F64, DType::I32}) {
    const Index i1 = index({257, 100}, 385, 2);
    add(row("gather_d1", {data({257, 385}, dt, 1), i1.input()}, gather_fn(1), kExact,
            acc_tol(dt, i1.max_repeats_along(1))));
  }
  // The logits of the labels of a ViT-S/14 batch: [256, 1000] at [256, 1].
  for (DType dt : kDtypes) {
    const Index labels = index({256, 1}, 1000, 7);
    OpCase c = row("gather_d1", {in({256, 1000}, dt), labels.input()}, gather_fn(1), kExact,
                   acc_tol(dt, labels.max_repeats_along(1)));
    c.large = true;
    add(std::move(c));
  }

  // ---- scatter_add ---------------------------------------------------------------------
  const auto scatter_fn = [](int64_t dim) {
    return one([dim](const std::vector<Tensor>& a) { return scatter_add(a[0], dim, a[2], a[1]); });
  };
  for (DType dt : kDtypes) {
    // src larger than index; 150 entries per row into 385 columns.
    const Index i1 = index({257, 150}, 385, 2, DType::I32);
    add(row("scatter_add_d1", {in({257, 385}, dt), in({257, 200}, dt), i1.input()}, scatter_fn(1),
            acc_tol(dt, i1.max_repeats_along(1))));
    // Transposed x and src, 600 entries per column into 257 rows.
    const Index i0 = index({600, 385}, 257, 4);
    add(row("scatter_add_d0",
            {in({257, 385}, dt, -1, 1, View::Transposed), in({600, 385}, dt, -1, 1, View::Transposed), i0.input()},
            scatter_fn(0), acc_tol(dt, i0.max_repeats_along(0))));
    for (int64_t r : {1, 3}) {
      const Index idx = index({257, 9}, r, 6);
      add(row("scatter_add_d1", {in({257, r}, dt), in({257, 9}, dt), idx.input()}, scatter_fn(1),
              acc_tol(dt, idx.max_repeats_along(1))));
    }
    // Rank 3 along the middle axis with a misaligned src.
    const Index i3 = index({3, 300, 5}, 257, 8);
    add(row("scatter_add_d1", {in({3, 257, 5}, dt), in({3, 300, 5}, dt, -1, 1, View::Misaligned), i3.input()},
            scatter_fn(1), acc_tol(dt, i3.max_repeats_along(1))));
  }
  {
    const Index i0 = index({3, 385}, 3, 9);
    for (DType dt : {DType::F16, DType::F64, DType::I64, DType::I32})
      add(row("scatter_add_d0", {data({3, 385}, dt, 10), data({3, 385}, dt, 11), i0.input()}, scatter_fn(0),
              acc_tol(dt, i0.max_repeats_along(0))));
  }

  // ---- one_hot -------------------------------------------------------------------------
  for (DType out : {DType::F32, DType::BF16, DType::I64, DType::F16, DType::F64, DType::I32, DType::U8})
    for (DType it : {DType::I64, DType::I32}) {
      const std::string o = dtype_name(out);
      add(row("one_hot_c385_" + o, {index({257}, 385, 1, it).input()},
              one([out](const std::vector<Tensor>& a) { return one_hot(a[0], 385, out); })));
      add(row("one_hot_t_c3_" + o, {index({3, 257}, 3, 2, it).input()},
              one([out](const std::vector<Tensor>& a) { return one_hot(a[0].t(), 3, out); })));
      add(row("one_hot_c1_" + o, {index({257}, 1, 3, it).input()},
              one([out](const std::vector<Tensor>& a) { return one_hot(a[0], 1, out); })));
    }
  {
    OpCase c = row("one_hot_c1000_f32", {index({256}, 1000, 4).input()},
                   one([](const std::vector<Tensor>& a) { return one_hot(a[0], 1000); }));
    c.large = true;
    add(std::move(c));
  }

  // ---- topk ----------------------------------------------------------------------------
  for (DType dt : kDtypes) {
    // Rows of 385 on a grid of 16 values (full of ties), and distinct values.
    for (bool ties : {true, false}) {
      auto x = [&](Shape shape, View view = View::Contiguous) {
        return ties ? grid_input(std::move(shape), dt, 0, 16, 1, true, view)
                    : in(std::move(shape), dt, -1, 1, view);
      };
      for (int64_t k : {1, 2, 5, 385})
        for (bool largest : {true, false})
          add(row(topk_name(k, -1, largest, ties), {x({257, 385})}, topk_fn(k, -1, largest)));
      // Along the stored first axis (rows strided, copied first), k up to its length.
      for (int64_t k : {1, 5, 257})
        add(row(topk_name(k, 1, true, ties), {x({385, 257}, View::Transposed)}, topk_fn(k, 1, true)));
    }
    // Rows of 1 and 3 (a warp with idle lanes), ties; finite differences would break them.
    for (int64_t n : {1, 3})
      for (int64_t k = 1; k <= n; ++k) {
        OpCase c = row(topk_name(k, -1, true, true), {grid_input({257, n}, dt, 0, 2, 3, true)},
                       topk_fn(k, -1, true));
        c.gradcheck = false;
        add(std::move(c));
      }
    // Smallest along a leading axis of 3; a misaligned input.
    add(row(topk_name(2, 0, false, false), {in({3, 385}, dt)}, topk_fn(2, 0, false)));
    add(row(topk_name(5, -1, true, false), {in({257, 385}, dt, -1, 1, View::Misaligned)}, topk_fn(5, -1, true)));
  }
  for (DType dt : {DType::F16, DType::F64})
    add(row(topk_name(5, -1, true, false), {in({257, 385}, dt)}, topk_fn(5, -1, true)));
  // Integers compare exactly (values in [0, 50): ties).
  for (DType dt : {DType::I64, DType::I32, DType::U8})
    add(row(topk_name(5, -1, true, true), {grid_input({257, 385}, dt, 0, 50, 5)}, topk_fn(5, -1, true)));
  // NaN ranks above every number.
  for (bool largest : {true, false}) {
    Input xn = custom(
        [](uint64_t) {
          const float nan = std::nanf("");
          return Tensor::from_vector(std::vector<float>{1, nan, 3, nan, -2, 3}, {1, 6});
        },
        /*requires_grad=*/true);
    xn.shape = {1, 6};
    xn.dtype = DType::F32;
    OpCase c = row(topk_name(4, -1, largest, true) + "_nan", {xn}, topk_fn(4, -1, largest));
    c.gradcheck = false;  // NaN values
    add(std::move(c));
  }
  // More rows than the grid (65535 * 16 blocks): blocks stride over rows.
  add(row(topk_name(2, -1, true, false), {in({65535 * 16 + 5, 3})}, topk_fn(2, -1, true)));
  // Top-5 of the ViT-S/14 classifier's logits at batch 256.
  for (DType dt : kDtypes) {
    OpCase c = row(topk_name(5, 1, true, false), {in({256, 1000}, dt)}, topk_fn(5, 1, true));
    c.large = true;
    add(std::move(c));
  }

  // ---- the ViT-S/14 token concatenations at batch 256 -----------------------------------
  for (DType dt : kDtypes) {
    // The class token (one [1, 1, 384] broadcast over the batch) before 256 patch tokens.
    OpCase c = row("concat_cls_d1", {in({256, 1, 384}, dt, -1, 1, View::Broadcast), in({256, 256, 384}, dt)},
                   cat1, kExact, broadcast_sum_tol(dt, 256));
    c.large = true;
    add(std::move(c));
    // Four register tokens between the class token and the patches.
    c = row("concat_registers_d1", {in({256, 257, 384}, dt), in({256, 4, 384}, dt, -1, 1, View::Broadcast)},
            one([](const std::vector<Tensor>& a) {
              return concat({a[0].narrow(1, 0, 1), a[1], a[0].narrow(1, 1, 256)}, 1);
            }),
            kExact, broadcast_sum_tol(dt, 256));
    c.large = true;
    add(std::move(c));
    // The pooled features: class token and mean patch token side by side.
    c = row("concat_pooled_d1", {in({256, 384}, dt), in({256, 384}, dt)}, cat1);
    c.large = true;
    add(std::move(c));
  }
  return rows;
}

}  // namespace vimoe::parity
