// Concatenation and indexing on the CPU: hand-checked small cases, values against plain
// loops written here (independent of engine/cpu/index.cpp), several axes including negative
// ones, non-contiguous operands, gradient checks, and every bad-input error.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "engine/ops/index.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;
using vimoe::testing::uniform;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor i64(const std::vector<int64_t>& v, const Shape& shape) {
  return Tensor::from_vector(v, shape);
}
Tensor i64(const std::vector<int64_t>& v) { return i64(v, {static_cast<int64_t>(v.size())}); }
Tensor f64(const std::vector<double>& v, const Shape& shape) {
  return Tensor::from_vector(v, shape);
}

// Pseudo-random indices in [0, bound) (an LCG, like uniform()).
Tensor random_index(const Shape& shape, int64_t bound, uint64_t seed, DType dtype = DType::I64) {
  std::vector<int64_t> v(shape_numel(shape));
  uint64_t s = seed * 2862933555777941757ull + 3037000493ull;
  for (int64_t& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(bound));
  }
  return i64(v, shape).to(dtype);
}

std::vector<int64_t> unravel(int64_t i, const Shape& shape) {
  std::vector<int64_t> c(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    c[d] = i % shape[d];
    i /= shape[d];
  }
  return c;
}

int64_t ravel(const std::vector<int64_t>& c, const Shape& shape) {
  int64_t i = 0;
  for (size_t d = 0; d < shape.size(); ++d) i = i * shape[d] + c[d];
  return i;
}

// ---- reference loops -----------------------------------------------------------------

Tensor ref_concat(const std::vector<Tensor>& ts, int64_t d) {
  Shape shape = ts[0].shape();
  shape[d] = 0;
  for (const Tensor& t : ts) shape[d] += t.size(d);
  std::vector<std::vector<double>> values;
  for (const Tensor& t : ts) values.push_back(t.to_vector<double>());
  std::vector<double> out(shape_numel(shape));
  for (size_t i = 0; i < out.size(); ++i) {
    std::vector<int64_t> c = unravel(static_cast<int64_t>(i), shape);
    for (size_t k = 0; k < ts.size(); ++k) {  // find the input that holds position c[d]
      if (c[d] < ts[k].size(d)) {
        out[i] = values[k][ravel(c, ts[k].shape())];
        break;
      }
      c[d] -= ts[k].size(d);
    }
  }
  return f64(out, shape);
}

Tensor ref_index_select(const Tensor& x, int64_t d, const Tensor& index) {
  const std::vector<double> vx = x.to_vector<double>();
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  Shape shape = x.shape();
  shape[d] = index.numel();
  std::vector<double> out(shape_numel(shape));
  for (size_t i = 0; i < out.size(); ++i) {
    std::vector<int64_t> c = unravel(static_cast<int64_t>(i), shape);
    c[d] = ix[c[d]];
    out[i] = vx[ravel(c, x.shape())];
  }
  return f64(out, shape);
}

Tensor ref_index_add(const Tensor& x, int64_t d, const Tensor& index, const Tensor& src) {
  std::vector<double> out = x.to_vector<double>();
  const std::vector<double> vs = src.to_vector<double>();
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  for (size_t i = 0; i < vs.size(); ++i) {
    std::vector<int64_t> c = unravel(static_cast<int64_t>(i), src.shape());
    c[d] = ix[c[d]];
    out[ravel(c, x.shape())] += vs[i];
  }
  return f64(out, x.shape());
}

Tensor ref_gather(const Tensor& x, int64_t d, const Tensor& index) {
  const std::vector<double> vx = x.to_vector<double>();
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  std::vector<double> out(ix.size());
  for (size_t i = 0; i < out.size(); ++i) {
    std::vector<int64_t> c = unravel(static_cast<int64_t>(i), index.shape());
    c[d] = ix[i];
    out[i] = vx[ravel(c, x.shape())];
  }
  return f64(out, index.shape());
}

Tensor ref_scatter_add(const Tensor& x, int64_t d, const Tensor& index, const Tensor& src) {
  std::vector<double> out = x.to_vector<double>();
  const std::vector<double> vs = src.to_vector<double>();
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  for (size_t i = 0; i < ix.size(); ++i) {
    std::vector<int64_t> c = unravel(static_cast<int64_t>(i), index.shape());
    const double v = vs[ravel(c, src.shape())];
    c[d] = ix[i];
    out[ravel(c, x.shape())] += v;
  }
  return f64(out, x.shape());
}

// Top-k by repeated selection with a "taken" mask: a different algorithm from the engine's
// partial sort. NaN ranks above every number; ties go to the lower index.
void ref_topk(const Tensor& x, int64_t d, int64_t k, bool largest, Tensor& values,
              Tensor& indices) {
  const std::vector<double> vx = x.to_vector<double>();
  Shape shape = x.shape();
  shape[d] = k;
  std::vector<double> vals(shape_numel(shape));
  std::vector<int64_t> idxs(vals.size());
  for (size_t i = 0; i < vals.size(); ++i) {
    std::vector<int64_t> c = unravel(static_cast<int64_t>(i), shape);
    if (c[d] != 0) continue;  // each row is filled when its first slot is visited
    std::vector<bool> taken(x.size(d), false);
    for (int64_t s = 0; s < k; ++s) {
      int64_t best = -1;
      for (int64_t j = 0; j < x.size(d); ++j) {
        if (taken[j]) continue;
        std::vector<int64_t> cj = c;
        cj[d] = j;
        const double v = vx[ravel(cj, x.shape())];
        if (best < 0) {
          best = j;
          continue;
        }
        std::vector<int64_t> cb = c;
        cb[d] = best;
        const double b = vx[ravel(cb, x.shape())];
        const bool better = std::isnan(v) ? (largest && !std::isnan(b))
                            : std::isnan(b) ? !largest
                                            : (largest ? v > b : v < b);
        if (better) best = j;  // strictly better only: ties keep the lower index
      }
      taken[best] = true;
      std::vector<int64_t> cs = c, cb = c;
      cs[d] = s;
      cb[d] = best;
      vals[ravel(cs, shape)] = vx[ravel(cb, x.shape())];
      idxs[ravel(cs, shape)] = best;
    }
  }
  values = f64(vals, shape);
  indices = i64(idxs, shape);
}

// Exact equality (no tolerance), for ops that only move values.
::testing::AssertionResult same(const Tensor& a, const Tensor& b) { return all_close(a, b, 0, 0); }

}  // namespace

// ---- concat ------------------------------------------------------------------------------

TEST(IndexConcat, HandChecked) {
  const Tensor a = f64({1, 2, 3, 4}, {2, 2}), b = f64({5, 6}, {2, 1});
  EXPECT_TRUE(same(concat({a, b}, 1), f64({1, 2, 5, 3, 4, 6}, {2, 3})));
  EXPECT_TRUE(same(concat({a, b.t()}, 0), f64({1, 2, 3, 4, 5, 6}, {3, 2})));
}

TEST(IndexConcat, EveryAxisAgainstLoops) {
  const Shape base{2, 3, 4};
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    std::vector<Tensor> ts;
    for (int64_t n : {1, 3, 2}) {
      Shape s = base;
      s[d] = n;
      ts.push_back(uniform(s, 10 + n, -1, 1, DType::F64));
    }
    const Tensor out = concat(ts, dim);
    EXPECT_EQ(out.dtype(), DType::F64);
    EXPECT_TRUE(same(out, ref_concat(ts, d))) << "dim " << dim;
  }
}

TEST(IndexConcat, NonContiguousInputs) {
  const Tensor a = uniform({4, 3}, 1).t();                     // [3, 4], transposed
  const Tensor b = uniform({3, 6}, 2).slice(1, 0, 6, 2);       // [3, 3], stride 2
  const Tensor c = uniform({2, 3, 2}, 3).permute({1, 0, 2}).reshape({3, 4});  // copied view
  ASSERT_FALSE(a.is_contiguous());
  ASSERT_FALSE(b.is_contiguous());
  const Tensor out = concat({a, b, c}, -1);
  EXPECT_EQ(out.shape(), (Shape{3, 11}));
  EXPECT_TRUE(same(out, ref_concat({a, b, c}, 1)));
}

TEST(IndexConcat, PromotesDtypes) {
  const Tensor a = f64({1.5, 2.5}, {2, 1}).to(DType::F32);
  const Tensor b = i64({3, 4}, {2, 1});
  const Tensor ab = concat({a, b}, 1);
  EXPECT_EQ(ab.dtype(), DType::F32);
  EXPECT_TRUE(same(ab, f64({1.5, 3, 2.5, 4}, {2, 2})));
  const Tensor c = concat({a.to(DType::BF16), f64({7, 8}, {2, 1})}, 0);
  EXPECT_EQ(c.dtype(), DType::F64);
  EXPECT_TRUE(same(c, f64({1.5, 2.5, 7, 8}, {4, 1})));
  const Tensor ints = concat({i64({1, 2}), i64({3}).to(DType::I32)}, 0);
  EXPECT_EQ(ints.dtype(), DType::I64);
  EXPECT_EQ(ints.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
}

TEST(IndexConcat, EmptyInputsAndSingleTensor) {
  const Tensor a = uniform({2, 0}, 1), b = uniform({2, 3}, 2);
  EXPECT_TRUE(same(concat({a, b, a}, 1), b));
  EXPECT_TRUE(same(concat({b}, 0), b));
}

TEST(IndexConcat, Gradcheck) {
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) {
    return concat({in[0], in[1].t(), in[2]}, 1);
  }, {leaf64({2, 3}, 1), leaf64({1, 2}, 2), leaf64({2, 2}, 3)}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) {
    return concat({in[0], in[0], in[1]}, -3);  // the same input twice: gradients add
  }, {leaf64({1, 2, 2}, 4), leaf64({2, 2, 2}, 5)}));
}

TEST(IndexConcat, GradientOnlyForInputsThatRequireIt) {
  Tensor a = leaf64({2, 2}, 1);
  const Tensor b = uniform({2, 1}, 2, -1, 1, DType::F64);
  sum(concat({a, b}, 1) * f64({1, 2, 3, 4, 5, 6}, {2, 3})).backward();
  EXPECT_TRUE(same(a.grad(), f64({1, 2, 4, 5}, {2, 2})));
  EXPECT_FALSE(b.grad().defined());
}

TEST(IndexConcat, BadInputs) {
  EXPECT_VIMOE_ERROR(concat({uniform({2, 3}, 1), uniform({3, 4}, 2)}, 1), "concat", "[2, 3]",
                     "[3, 4]");
  EXPECT_VIMOE_ERROR(concat({uniform({2, 3}, 1), uniform({2, 3, 1}, 2)}, 0), "concat", "[2, 3]",
                     "[2, 3, 1]");
  EXPECT_VIMOE_ERROR(concat({}, 0), "concat");
  EXPECT_VIMOE_ERROR(concat({uniform({2, 3}, 1), uniform({2, 3}, 2)}, 2), "concat", "dimension 2");
  EXPECT_VIMOE_ERROR(concat({Tensor::scalar(1), Tensor::scalar(2)}, 0), "concat",
                     "0-dimensional");
  EXPECT_VIMOE_ERROR(concat({uniform({2}, 1), Tensor()}, 0), "concat", "undefined");
}

// ---- stack -------------------------------------------------------------------------------

TEST(IndexStack, EveryAxisAgainstLoops) {
  const Tensor a = uniform({2, 3}, 1, -1, 1, DType::F64), b = uniform({3, 2}, 2, -1, 1, DType::F64).t();
  const Tensor c = uniform({2, 3}, 3, -1, 1, DType::F64);
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    const Tensor out = stack({a, b, c}, dim);
    const int64_t d = dim < 0 ? dim + 3 : dim;
    Shape want{2, 3};
    want.insert(want.begin() + d, 3);
    ASSERT_EQ(out.shape(), want) << "dim " << dim;
    const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>(),
                              vc = c.to_vector<double>(), vo = out.to_vector<double>();
    for (int64_t i = 0; i < out.numel(); ++i) {
      std::vector<int64_t> pos = unravel(i, want);
      const int64_t which = pos[d];
      pos.erase(pos.begin() + d);
      const int64_t j = pos[0] * 3 + pos[1];
      const double expect = which == 0 ? va[j] : which == 1 ? vb[j] : vc[j];
      EXPECT_EQ(vo[i], expect) << "dim " << dim << " element " << i;
    }
  }
}

TEST(IndexStack, Gradcheck) {
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) {
    return stack({in[0], in[1].t()}, 1);
  }, {leaf64({2, 3}, 1), leaf64({3, 2}, 2)}));
}

TEST(IndexStack, BadInputs) {
  EXPECT_VIMOE_ERROR(stack({uniform({2, 3}, 1), uniform({3, 2}, 2)}, 0), "stack", "[2, 3]",
                     "[3, 2]");
  EXPECT_VIMOE_ERROR(stack({uniform({2, 3}, 1)}, 3), "stack", "dimension 3");
  EXPECT_VIMOE_ERROR(stack({}, 0), "stack");
}

// ---- split -------------------------------------------------------------------------------

TEST(IndexSplit, BySizeGivesViews) {
  const Tensor x = uniform({3, 5}, 1);
  const std::vector<Tensor> parts = split(x, 2, 1);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(parts[2].shape(), (Shape{3, 1}));
  for (const Tensor& p : parts) EXPECT_EQ(p.storage(), x.storage());  // views, no copies
  EXPECT_TRUE(same(concat(parts, 1), x));
  const std::vector<double> vx = x.to_vector<double>(), v2 = parts[2].to_vector<double>();
  for (int64_t r = 0; r < 3; ++r) EXPECT_EQ(v2[r], vx[r * 5 + 4]);
  EXPECT_EQ(split(x, 3, -2).size(), 1u);
  EXPECT_EQ(split(x, 7, 0)[0].shape(), (Shape{3, 5}));
}

TEST(IndexSplit, BySizes) {
  const Tensor x = uniform({2, 6}, 1).t();  // [6, 2], non-contiguous
  const std::vector<Tensor> parts = split(x, std::vector<int64_t>{1, 0, 3, 2}, -2);
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[1].numel(), 0);
  EXPECT_TRUE(same(parts[2], x.slice(0, 1, 4)));
  EXPECT_TRUE(same(parts[3], x.slice(0, 4, 6)));
}

TEST(IndexSplit, Gradcheck) {
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) {
    const std::vector<Tensor> p = split(in[0], 2, 1);
    return concat({p[2], p[0] * 2.0, p[1]}, 1);  // reorder so a misrouted gradient shows
  }, {leaf64({2, 5}, 1)}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) {
    const std::vector<Tensor> p = split(in[0].t(), std::vector<int64_t>{2, 1}, 0);
    return concat({p[1] * 3.0, p[0]}, 0);
  }, {leaf64({2, 3}, 2)}));
}

TEST(IndexSplit, BadInputs) {
  const Tensor x = uniform({3, 5}, 1);
  EXPECT_VIMOE_ERROR(split(x, std::vector<int64_t>{2, 2}, 1), "split", "[2, 2]", "[3, 5]", "4");
  EXPECT_VIMOE_ERROR(split(x, 0, 1), "split", "positive");
  EXPECT_VIMOE_ERROR(split(x, std::vector<int64_t>{6, -1}, 1), "split", "negative");
  EXPECT_VIMOE_ERROR(split(x, 2, 2), "split", "dimension 2");
}

// ---- index_select ------------------------------------------------------------------------

TEST(IndexSelect, HandChecked) {
  const Tensor x = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(same(index_select(x, 1, i64({2, 0, 2})), f64({3, 1, 3, 6, 4, 6}, {2, 3})));
  EXPECT_TRUE(same(index_select(x, -2, i64({1, 1}).to(DType::I32)),
                   f64({4, 5, 6, 4, 5, 6}, {2, 3})));
  EXPECT_EQ(index_select(x, 0, i64({})).shape(), (Shape{0, 3}));
}

TEST(IndexSelect, EveryAxisAgainstLoops) {
  const Tensor x = uniform({3, 4, 5}, 1);
  const Tensor xp = uniform({4, 5, 3}, 2).permute({2, 0, 1});  // [3, 4, 5], non-contiguous
  for (int64_t dim : {0, 1, 2, -1, -2}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    for (DType it : {DType::I64, DType::I32}) {
      const Tensor idx = random_index({7}, x.size(d), 10 + d, it);
      EXPECT_TRUE(same(index_select(x, dim, idx), ref_index_select(x, d, idx))) << "dim " << dim;
      EXPECT_TRUE(same(index_select(xp, dim, idx), ref_index_select(xp, d, idx)))
          << "dim " << dim;
    }
  }
  // A strided index view.
  const Tensor idx = random_index({8}, 4, 3).slice(0, 1, 8, 2);
  EXPECT_TRUE(same(index_select(x, 1, idx), ref_index_select(x, 1, idx)));
}

TEST(IndexSelect, Gradcheck) {
  const Tensor idx = i64({0, 2, 2, 3, 0});  // repeats: the backward must accumulate
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) { return index_select(in[0], 0, idx); },
                      {leaf64({4, 3}, 1)}));
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) {
    return index_select(in[0].permute({2, 0, 1}), -1, idx.to(DType::I32));
  }, {leaf64({2, 4, 3}, 2)}));
}

TEST(IndexSelect, BadInputs) {
  const Tensor x = uniform({3, 4}, 1);
  EXPECT_VIMOE_ERROR(index_select(x, 1, i64({0, 4, 1})), "index_select", "index 4",
                     "[0, 4)", "position [1]", "dimension 1 of x [3, 4]");
  EXPECT_VIMOE_ERROR(index_select(x, 0, i64({-1})), "index_select", "index -1", "[0, 3)",
                     "negative");
  EXPECT_VIMOE_ERROR(index_select(x, 0, f64({0}, {1})), "index_select", "i64 or i32", "f64");
  EXPECT_VIMOE_ERROR(index_select(x, 0, i64({0, 1}, {1, 2})), "index_select", "1-D", "[1, 2]");
  EXPECT_VIMOE_ERROR(index_select(x, 2, i64({0})), "index_select", "dimension 2");
}

// ---- index_add ---------------------------------------------------------------------------

TEST(IndexAdd, HandChecked) {
  const Tensor x = Tensor::ones({3, 2}, DType::F64);
  const Tensor src = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  EXPECT_TRUE(same(index_add(x, 0, i64({0, 2, 0}), src), f64({7, 9, 1, 1, 4, 5}, {3, 2})));
  // Integers stay exact.
  const Tensor xi = i64({10, 20, 30}, {1, 3});
  EXPECT_EQ(index_add(xi, 1, i64({2, 2}), i64({1, 2}, {1, 2})).to_vector<int64_t>(),
            (std::vector<int64_t>{10, 20, 33}));
}

TEST(IndexAdd, EveryAxisAgainstLoops) {
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    const Tensor x = uniform({3, 4, 5}, 1, -1, 1, DType::F64);
    Shape ss{3, 4, 5};
    ss[d] = 6;
    const Tensor src = uniform({ss[2], ss[0], ss[1]}, 2, -1, 1, DType::F64).permute({1, 2, 0});
    const Tensor idx = random_index({6}, x.size(d), 20 + d, DType::I32);
    EXPECT_TRUE(all_close(index_add(x, dim, idx, src), ref_index_add(x, d, idx, src), 1e-15, 0))
        << "dim " << dim;
  }
}

TEST(IndexAdd, PromotesAndKeepsXUntouched) {
  const Tensor x = Tensor::zeros({2, 2}, DType::F32);
  const Tensor out = index_add(x, 1, i64({1}), f64({1.5, 2.5}, {2, 1}));
  EXPECT_EQ(out.dtype(), DType::F64);
  EXPECT_TRUE(same(out, f64({0, 1.5, 0, 2.5}, {2, 2})));
  EXPECT_TRUE(same(x, Tensor::zeros({2, 2})));  // out of place
}

TEST(IndexAdd, GradcheckXAndSrc) {
  const Tensor idx = i64({1, 0, 1});
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) {
    return index_add(in[0], 1, idx, in[1]);
  }, {leaf64({2, 3}, 1), leaf64({2, 3}, 2)}));
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) {
    return index_add(in[0].t(), -2, idx, in[1].permute({1, 0}));
  }, {leaf64({2, 4}, 3), leaf64({2, 3}, 4)}));
}

TEST(IndexAdd, BadInputs) {
  const Tensor x = uniform({3, 4}, 1);
  EXPECT_VIMOE_ERROR(index_add(x, 0, i64({0, 1}), uniform({3, 4}, 2)), "index_add", "[3, 4]",
                     "expected [2, 4]");
  EXPECT_VIMOE_ERROR(index_add(x, 0, i64({0, 3}), uniform({2, 4}, 2)), "index_add", "index 3",
                     "[0, 3)", "position [1]");
  EXPECT_VIMOE_ERROR(index_add(x, 1, i64({-2}), uniform({3, 1}, 2)), "index_add", "index -2",
                     "negative");
  EXPECT_VIMOE_ERROR(index_add(x, 1, f64({0}, {1}), uniform({3, 1}, 2)), "index_add",
                     "i64 or i32");
  const Tensor u8 = Tensor::zeros({2}, DType::U8);
  EXPECT_VIMOE_ERROR(index_add(u8, 0, i64({0}), Tensor::ones({1}, DType::U8)), "index_add", "u8");
}

// ---- gather ------------------------------------------------------------------------------

TEST(IndexGather, HandChecked) {
  // torch.gather's documentation example.
  const Tensor t = f64({1, 2, 3, 4}, {2, 2});
  EXPECT_TRUE(same(gather(t, 1, i64({0, 0, 1, 0}, {2, 2})), f64({1, 1, 4, 3}, {2, 2})));
  EXPECT_TRUE(same(gather(t, 0, i64({1, 0, 1}, {1, 3}).slice(1, 0, 2)), f64({3, 2}, {1, 2})));
}

TEST(IndexGather, EveryAxisAgainstLoops) {
  const Tensor x = uniform({3, 4, 5}, 1);
  const Tensor xp = uniform({5, 3, 4}, 2).permute({1, 2, 0});
  for (int64_t dim : {0, 1, 2, -1, -2}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    Shape is{2, 3, 4};  // smaller than x in the other axes
    is[d] = 7;          // and longer along the gathered one
    const Tensor idx = random_index(is, x.size(d), 30 + d, d == 1 ? DType::I32 : DType::I64);
    EXPECT_TRUE(same(gather(x, dim, idx), ref_gather(x, d, idx))) << "dim " << dim;
    EXPECT_TRUE(same(gather(xp, dim, idx), ref_gather(xp, d, idx))) << "dim " << dim;
    const Tensor idx_t = random_index({is[2], is[1], is[0]}, x.size(d), 40 + d).permute({2, 1, 0});
    EXPECT_TRUE(same(gather(x, dim, idx_t), ref_gather(x, d, idx_t))) << "dim " << dim;
  }
}

TEST(IndexGather, Gradcheck) {
  const Tensor idx = i64({0, 2, 2, 1, 0, 0}, {2, 3});  // repeats in a row
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) { return gather(in[0], 1, idx); },
                      {leaf64({3, 3}, 1)}));
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) {
    return gather(in[0].t(), 0, i64({3, 0, 3, 1}, {2, 2}));
  }, {leaf64({2, 4}, 2)}));
}

TEST(IndexGather, BadInputs) {
  const Tensor x = uniform({3, 4}, 1);
  EXPECT_VIMOE_ERROR(gather(x, 1, i64({0, 1, 5, 2}, {2, 2})), "gather", "index 5",
                     "position [1, 0]", "[0, 4)", "dimension 1 of x [3, 4]");
  EXPECT_VIMOE_ERROR(gather(x, 0, i64({-3}, {1, 1})), "gather", "-3", "negative");
  EXPECT_VIMOE_ERROR(gather(x, 1, i64({0, 1})), "gather", "rank", "[2]", "[3, 4]");
  EXPECT_VIMOE_ERROR(gather(x, 1, i64({0, 0, 0, 0}, {4, 1})), "gather", "[4, 1]", "[3, 4]",
                     "dimension 0");
  EXPECT_VIMOE_ERROR(gather(x, 1, f64({0}, {1, 1})), "gather", "i64 or i32");
}

// ---- scatter_add -------------------------------------------------------------------------

TEST(IndexScatterAdd, HandChecked) {
  const Tensor src = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor idx = i64({0, 1, 0, 1, 0, 1}, {2, 3});
  EXPECT_TRUE(same(scatter_add(Tensor::zeros({2, 3}, DType::F64), 0, idx, src),
                   f64({1, 5, 3, 4, 2, 6}, {2, 3})));
  // src larger than index: only its [1, 2] corner is used; x keeps its other values.
  EXPECT_TRUE(same(scatter_add(Tensor::ones({2, 4}, DType::F64), 1, i64({3, 3}, {1, 2}), src),
                   f64({1, 1, 1, 4, 1, 1, 1, 1}, {2, 4})));
}

TEST(IndexScatterAdd, EveryAxisAgainstLoops) {
  const Tensor x = uniform({3, 4, 5}, 1, -1, 1, DType::F64);
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    Shape is{2, 3, 4};
    is[d] = 6;
    Shape ss = is;
    ss[0] += 1;  // src larger than index in one axis
    const Tensor src = uniform({ss[1], ss[0], ss[2]}, 2, -1, 1, DType::F64).transpose(0, 1);
    const Tensor idx = random_index(is, x.size(d), 50 + d, d == 2 ? DType::I32 : DType::I64);
    EXPECT_TRUE(all_close(scatter_add(x, dim, idx, src), ref_scatter_add(x, d, idx, src), 1e-15,
                          0))
        << "dim " << dim;
    EXPECT_TRUE(all_close(scatter_add(x.permute({2, 1, 0}).contiguous().permute({2, 1, 0}), dim,
                                      idx, src),
                          ref_scatter_add(x, d, idx, src), 1e-15, 0))
        << "dim " << dim;
  }
}

TEST(IndexScatterAdd, GradcheckXAndSrc) {
  const Tensor idx = i64({0, 2, 0, 1, 1, 2}, {3, 2});
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) {
    return scatter_add(in[0], 0, idx, in[1]);
  }, {leaf64({3, 2}, 1), leaf64({3, 2}, 2)}));
  // src larger than index (its unused part gets zero gradient), transposed x.
  EXPECT_TRUE(grad_ok([&](const std::vector<Tensor>& in) {
    return scatter_add(in[0].t(), -1, idx, in[1]);
  }, {leaf64({3, 3}, 3), leaf64({4, 3}, 4)}));
}

TEST(IndexScatterAdd, BadInputs) {
  const Tensor x = uniform({3, 4}, 1);
  EXPECT_VIMOE_ERROR(scatter_add(x, 0, i64({0, 3}, {1, 2}), uniform({1, 2}, 2)), "scatter_add",
                     "index 3", "position [0, 1]", "[0, 3)");
  EXPECT_VIMOE_ERROR(scatter_add(x, 0, i64({0, 0}, {1, 2}), uniform({1, 1}, 2)), "scatter_add",
                     "[1, 2]", "src [1, 1]");
  EXPECT_VIMOE_ERROR(scatter_add(x, 0, i64({0}, {1, 1}), uniform({1}, 2)), "scatter_add", "rank");
  EXPECT_VIMOE_ERROR(scatter_add(x, 1, i64({0, 0, 0, 0}, {4, 1}), uniform({4, 1}, 2)),
                     "scatter_add", "[4, 1]", "x [3, 4]");
  EXPECT_VIMOE_ERROR(scatter_add(x, 0, f64({0}, {1, 1}), uniform({1, 1}, 2)), "scatter_add",
                     "i64 or i32");
}

// ---- one_hot -----------------------------------------------------------------------------

TEST(IndexOneHot, HandChecked) {
  const Tensor out = one_hot(i64({2, 0, 1}), 3);
  EXPECT_EQ(out.dtype(), DType::F32);
  EXPECT_FALSE(out.requires_grad());
  EXPECT_TRUE(same(out, f64({0, 0, 1, 1, 0, 0, 0, 1, 0}, {3, 3})));
  const Tensor oi = one_hot(i64({1, 3, 0, 0}, {2, 2}).to(DType::I32).t(), 4, DType::I64);
  EXPECT_EQ(oi.dtype(), DType::I64);
  EXPECT_EQ(oi.shape(), (Shape{2, 2, 4}));
  // Transposed index [[1, 0], [3, 0]].
  EXPECT_EQ(oi.to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0}));
  EXPECT_EQ(one_hot(Tensor::scalar(2, DType::I64), 3).shape(), (Shape{3}));
}

TEST(IndexOneHot, BadInputs) {
  EXPECT_VIMOE_ERROR(one_hot(i64({0, 3}), 3), "one_hot", "index 3", "[0, 3)",
                     "num_classes = 3");
  EXPECT_VIMOE_ERROR(one_hot(i64({-1}), 3), "one_hot", "index -1", "negative");
  EXPECT_VIMOE_ERROR(one_hot(f64({0}, {1}), 3), "one_hot", "i64 or i32");
  EXPECT_VIMOE_ERROR(one_hot(i64({0}), 0), "one_hot", "num_classes");
}

// ---- topk --------------------------------------------------------------------------------

TEST(IndexTopk, HandCheckedWithTies) {
  const Tensor x = f64({3, 1, 4, 1, 5, 9, 2, 6}, {8});
  TopK t = topk(x, 3);
  EXPECT_TRUE(same(t.values, f64({9, 6, 5}, {3})));
  EXPECT_EQ(t.indices.dtype(), DType::I64);
  EXPECT_EQ(t.indices.to_vector<int64_t>(), (std::vector<int64_t>{5, 7, 4}));
  t = topk(x, 3, 0, false);  // the two 1s tie: lower index first
  EXPECT_TRUE(same(t.values, f64({1, 1, 2}, {3})));
  EXPECT_EQ(t.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 6}));
  t = topk(f64({2, 5, 5, 1, 5}, {5}), 2);
  EXPECT_EQ(t.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
  t = topk(f64({2, 5, 5, 1, 5}, {5}), 5);  // k = row length: a full stable sort
  EXPECT_EQ(t.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 4, 0, 3}));
  t = topk(x, 0);
  EXPECT_EQ(t.values.shape(), (Shape{0}));
}

TEST(IndexTopk, NaNRanksAboveNumbers) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = f64({1, nan, 3, nan}, {4});
  TopK t = topk(x, 3);
  EXPECT_EQ(t.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 2}));
  t = topk(x.to(DType::F32), 2, -1, false);
  EXPECT_EQ(t.indices.to_vector<int64_t>(), (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(same(t.values, f64({1, 3}, {2})));
}

TEST(IndexTopk, EveryAxisAgainstLoops) {
  // Values on a coarse grid so that ties occur.
  const Tensor x = (uniform({3, 4, 6}, 1, 0, 4) * 2.0).to(DType::I32).to(DType::F32);
  const Tensor xp = x.permute({2, 0, 1}).contiguous().permute({1, 2, 0});  // same values, strided
  for (int64_t dim : {0, 1, 2, -1, -2}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    for (bool largest : {true, false}) {
      for (int64_t k : {int64_t{1}, int64_t{2}, x.size(d)}) {
        Tensor rv, ri;
        ref_topk(x, d, k, largest, rv, ri);
        for (const Tensor& in : {x, xp}) {
          const TopK t = topk(in, k, dim, largest);
          EXPECT_TRUE(same(t.values, rv)) << "dim " << dim << " k " << k << " largest " << largest;
          EXPECT_TRUE(same(t.indices, ri)) << "dim " << dim << " k " << k << " largest " << largest;
        }
      }
    }
  }
  // Integer and bf16 inputs keep their dtype.
  const TopK ti = topk(x.to(DType::I64), 2, 1);
  EXPECT_EQ(ti.values.dtype(), DType::I64);
  Tensor rv, ri;
  ref_topk(x, 1, 2, true, rv, ri);
  EXPECT_TRUE(same(ti.indices, ri));
  EXPECT_EQ(topk(x.to(DType::BF16), 2, 1).values.dtype(), DType::BF16);
}

TEST(IndexTopk, GradcheckValues) {
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return topk(in[0], 2, 1).values; },
                      {leaf64({3, 5}, 1)}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) {
    return topk(in[0].t(), 3, 0, false).values;
  }, {leaf64({4, 5}, 2)}));
}

TEST(IndexTopk, BadInputs) {
  const Tensor x = uniform({2, 3}, 1);
  EXPECT_VIMOE_ERROR(topk(x, 4), "topk", "k = 4", "[2, 3]", "0 <= k <= 3");
  EXPECT_VIMOE_ERROR(topk(x, -1, 0), "topk", "k = -1", "0 <= k <= 2");
  EXPECT_VIMOE_ERROR(topk(x, 1, 2), "topk", "dimension 2");
  EXPECT_VIMOE_ERROR(topk(Tensor::scalar(1), 1), "topk", "at least one dimension");
}
