// Reductions (sum, mean, max, argmax, var) on the CPU: values against plain loops in this
// file, gradients by finite differences, NaN handling and bad input.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "engine/ops/reduce.h"
#include "tests/test_util.h"

namespace vimoe {
namespace {

using testing::all_close;
using testing::grad_ok;
using testing::leaf64;
using testing::uniform;

// Groups the values of a row-major tensor `shape` by output position (the reduced axes
// dropped) and applies `fn` to each group, in input order: a reference that shares nothing
// with the engine's permute-and-view plan.
std::vector<double> reference(const std::vector<double>& v, const Shape& shape,
                              std::vector<int64_t> dims,
                              const std::function<double(const std::vector<double>&)>& fn) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<bool> reduced(nd, dims.empty());
  for (int64_t d : dims) reduced[d < 0 ? d + nd : d] = true;
  int64_t groups = 1;
  for (int64_t d = 0; d < nd; ++d)
    if (!reduced[d]) groups *= shape[d];
  std::vector<std::vector<double>> members(groups);
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t rest = static_cast<int64_t>(i), out = 0, scale = 1;
    for (int64_t d = nd - 1; d >= 0; --d) {
      const int64_t idx = rest % shape[d];
      rest /= shape[d];
      if (!reduced[d]) {
        out += idx * scale;
        scale *= shape[d];
      }
    }
    members[out].push_back(v[i]);
  }
  std::vector<double> result;
  for (const auto& m : members) result.push_back(fn(m));
  return result;
}

Shape out_shape(const Shape& shape, std::vector<int64_t> dims, bool keepdim) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<bool> reduced(nd, dims.empty());
  for (int64_t d : dims) reduced[d < 0 ? d + nd : d] = true;
  Shape s;
  for (int64_t d = 0; d < nd; ++d) {
    if (!reduced[d]) s.push_back(shape[d]);
    else if (keepdim) s.push_back(1);
  }
  return s;
}

double ref_sum(const std::vector<double>& g) {
  double s = 0;
  for (double x : g) s += x;
  return s;
}
double ref_mean(const std::vector<double>& g) { return ref_sum(g) / static_cast<double>(g.size()); }
double ref_var(const std::vector<double>& g, int64_t correction) {
  const double m = ref_mean(g);
  double ss = 0;
  for (double x : g) ss += (x - m) * (x - m);
  return ss / static_cast<double>(std::max<int64_t>(static_cast<int64_t>(g.size()) - correction, 0));
}
// First maximal element, NaN ranking highest.
std::pair<double, int64_t> ref_max(const std::vector<double>& g) {
  int64_t best = 0;
  for (size_t i = 1; i < g.size(); ++i) {
    if (std::isnan(g[best])) break;
    if (std::isnan(g[i]) || g[i] > g[best]) best = static_cast<int64_t>(i);
  }
  return {g[best], best};
}

Tensor expected(const std::vector<double>& values, const Shape& shape) {
  return Tensor::from_vector(values, shape);
}

const std::vector<std::vector<int64_t>> kAxisLists = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {2, 0}, {1, 2}, {0, 1, 2}};

TEST(Reduce, SumMatchesLoops) {
  const Shape shape{2, 3, 4};
  const Tensor x = uniform(shape, 1);
  const std::vector<double> v = x.to_vector<double>();
  for (const auto& dims : kAxisLists)
    for (bool keepdim : {false, true}) {
      const Tensor got = sum(x, dims, keepdim);
      EXPECT_EQ(got.dtype(), DType::F32);
      EXPECT_TRUE(all_close(got, expected(reference(v, shape, dims, ref_sum),
                                          out_shape(shape, dims, keepdim))))
          << "dims " << shape_str(dims) << " keepdim " << keepdim;
    }
}

TEST(Reduce, SumOfIntegersIsI64) {
  const Tensor x = Tensor::from_vector<int32_t>({1, 2, 3, 2000000000, 2000000000, 5}, {2, 3});
  const Tensor s = sum(x, {1});
  EXPECT_EQ(s.dtype(), DType::I64);
  EXPECT_EQ(s.to_vector<int64_t>(), (std::vector<int64_t>{6, 4000000005}));
}

TEST(Reduce, MeanMatchesLoops) {
  const Shape shape{2, 3, 4};
  const Tensor x = uniform(shape, 2, -2, 3, DType::F64);
  const std::vector<double> v = x.to_vector<double>();
  for (const auto& dims : kAxisLists)
    for (bool keepdim : {false, true}) {
      EXPECT_TRUE(all_close(mean(x, dims, keepdim),
                            expected(reference(v, shape, dims, ref_mean), out_shape(shape, dims, keepdim)),
                            1e-12, 1e-12))
          << "dims " << shape_str(dims) << " keepdim " << keepdim;
    }
}

TEST(Reduce, MeanOfPermutedAndSlicedInputs) {
  const Tensor base = uniform({4, 3, 5}, 3);
  const Tensor p = base.permute({2, 0, 1});         // [5, 4, 3], not contiguous
  const Tensor s = base.slice(2, 1, 5, 2);          // [4, 3, 2], strided
  for (const Tensor& x : {p, s}) {
    const Tensor c = x.contiguous();
    const std::vector<double> v = c.to_vector<double>();
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0, 2}, std::vector<int64_t>{1}}) {
      EXPECT_TRUE(all_close(mean(x, dims, true),
                            expected(reference(v, c.shape(), dims, ref_mean), out_shape(c.shape(), dims, true))));
    }
  }
}

TEST(Reduce, MeanOfEmptyReductionIsNaN) {
  const Tensor x = Tensor::zeros({0, 3});
  const std::vector<double> m = mean(x, {0}).to_vector<double>();
  ASSERT_EQ(m.size(), 3u);
  for (double v : m) EXPECT_TRUE(std::isnan(v));
}

TEST(Reduce, MaxAndArgmaxMatchLoops) {
  // Few distinct values, so rows hold ties and "first maximal" is exercised.
  const Shape shape{3, 4, 5};
  std::vector<double> v(shape_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>((i * 7 + 3) % 5) - 2;
  const Tensor x = Tensor::from_vector(v, shape).to(DType::F32);
  for (int64_t d : {0, 1, 2, -1})
    for (bool keepdim : {false, true}) {
      const auto vals = reference(v, shape, {d}, [](const auto& g) { return ref_max(g).first; });
      const auto idx = reference(v, shape, {d}, [](const auto& g) {
        return static_cast<double>(ref_max(g).second);
      });
      const Shape os = out_shape(shape, {d}, keepdim);
      const Tensor m = max(x, d, keepdim), a = argmax(x, d, keepdim);
      EXPECT_EQ(m.dtype(), DType::F32);
      EXPECT_EQ(a.dtype(), DType::I64);
      EXPECT_TRUE(all_close(m, expected(vals, os), 0, 0)) << "dim " << d;
      EXPECT_TRUE(all_close(a, expected(idx, os), 0, 0)) << "dim " << d;
    }
}

TEST(Reduce, MaxOfPermutedInput) {
  const Tensor base = uniform({4, 6}, 4);
  const Tensor x = base.t();  // [6, 4]
  const std::vector<double> v = x.contiguous().to_vector<double>();
  const auto idx = reference(v, {6, 4}, {1}, [](const auto& g) { return double(ref_max(g).second); });
  const auto vals = reference(v, {6, 4}, {1}, [](const auto& g) { return ref_max(g).first; });
  EXPECT_TRUE(all_close(argmax(x, 1), expected(idx, {6}), 0, 0));
  EXPECT_TRUE(all_close(max(x, 1), expected(vals, {6}), 0, 0));
}

TEST(Reduce, MaxOfIntegers) {
  const Tensor x = Tensor::from_vector<int32_t>({-5, 7, 7, 2, -1, -3}, {2, 3});
  const Tensor m = max(x, 1);
  EXPECT_EQ(m.dtype(), DType::I32);
  EXPECT_EQ(m.to_vector<int32_t>(), (std::vector<int32_t>{7, 2}));
  EXPECT_EQ(argmax(x, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(argmax(x, 0).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0}));
}

// PyTorch propagates NaN through max: the max of a row holding NaN is NaN, argmax points at
// the first NaN, and the gradient goes there.
TEST(Reduce, MaxPropagatesNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = Tensor::from_vector<double>({1, nan, 3, nan, /**/ 2, 5, -1, 4}, {2, 4});
  x.set_requires_grad(true);
  const Tensor m = max(x, 1);
  const std::vector<double> mv = m.to_vector<double>();
  EXPECT_TRUE(std::isnan(mv[0]));
  EXPECT_EQ(mv[1], 5);
  EXPECT_EQ(argmax(x, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));
  sum(m * Tensor::from_vector<double>({10, 20}, {2})).backward();
  EXPECT_TRUE(all_close(x.grad(), Tensor::from_vector<double>({0, 10, 0, 0, 0, 20, 0, 0}, {2, 4}), 0, 0));
  // A NaN after the maximum still wins.
  const Tensor y = Tensor::from_vector<float>({9, 1, std::nanf("")}, {3});
  EXPECT_EQ(argmax(y, 0).item<int64_t>(), 2);
  EXPECT_TRUE(std::isnan(max(y, 0).item<double>()));
}

TEST(Reduce, MaxGradientGoesToFirstMaximum) {
  Tensor x = Tensor::from_vector<double>({3, 1, 3, 2, /**/ 0, 4, 4, 4}, {2, 4});
  x.set_requires_grad(true);
  sum(max(x, 1) * Tensor::from_vector<double>({2, 5}, {2})).backward();
  EXPECT_TRUE(all_close(x.grad(), Tensor::from_vector<double>({2, 0, 0, 0, 0, 5, 0, 0}, {2, 4}), 0, 0));
  // Over the first axis, with keepdim: columns pick their first maximal row.
  Tensor y = Tensor::from_vector<double>({1, 7, 5, /**/ 1, 2, 9}, {2, 3});
  y.set_requires_grad(true);
  max(y, 0, true).backward(Tensor::ones({1, 3}, DType::F64));
  EXPECT_TRUE(all_close(y.grad(), Tensor::from_vector<double>({1, 1, 0, 0, 0, 1}, {2, 3}), 0, 0));
}

TEST(Reduce, VarMatchesTwoPassLoops) {
  const Shape shape{3, 4, 5};
  const Tensor x = uniform(shape, 5, -3, 2, DType::F64);
  const std::vector<double> v = x.to_vector<double>();
  for (const auto& dims : kAxisLists)
    for (int64_t correction : {0, 1, 2})
      for (bool keepdim : {false, true}) {
        const auto want = reference(v, shape, dims, [&](const auto& g) { return ref_var(g, correction); });
        EXPECT_TRUE(all_close(var(x, dims, keepdim, correction),
                              expected(want, out_shape(shape, dims, keepdim)), 1e-12, 1e-12))
            << "dims " << shape_str(dims) << " correction " << correction;
      }
  // A permuted input, in f32.
  const Tensor p = uniform({4, 3, 5}, 6).permute({1, 2, 0});
  const std::vector<double> pv = p.contiguous().to_vector<double>();
  EXPECT_TRUE(all_close(var(p, {0, 2}),
                        expected(reference(pv, p.shape(), {0, 2}, [](const auto& g) { return ref_var(g, 1); }), {5}),
                        1e-6, 1e-5));
}

// The sum-of-squares shortcut E[x^2] - E[x]^2 loses every digit here in f32; two passes keep them.
TEST(Reduce, VarIsStableWithLargeMean) {
  const Tensor x = (uniform({2, 1000}, 7, -1, 1) + 10000.0).to(DType::F32);
  const std::vector<double> v = x.to_vector<double>();
  const auto want = reference(v, {2, 1000}, {1}, [](const auto& g) { return ref_var(g, 1); });
  EXPECT_TRUE(all_close(var(x, {1}), expected(want, {2}), 0, 1e-4));
}

TEST(Reduce, VarWithoutDegreesOfFreedom) {
  const Tensor one = Tensor::from_vector<float>({4}, {1});
  EXPECT_TRUE(std::isnan(var(one).item<double>()));            // 0 / 0
  EXPECT_EQ(var(one, {}, false, 0).item<double>(), 0.0);
  const Tensor two = Tensor::from_vector<float>({1, 3}, {2});
  EXPECT_TRUE(std::isinf(var(two, {}, false, 2).item<double>()));  // 2 / 0
}

TEST(Reduce, ZeroDimInputs) {
  const Tensor s = Tensor::scalar(2.5);
  EXPECT_EQ(sum(s).dim(), 0);
  EXPECT_EQ(mean(s, {0}, true).dim(), 0);
  EXPECT_EQ(mean(s, {-1}).item<double>(), 2.5);
  EXPECT_EQ(max(s, 0).item<double>(), 2.5);
  EXPECT_EQ(argmax(s, -1).item<int64_t>(), 0);
  Tensor g = Tensor::scalar(1.5, DType::F64);
  g.set_requires_grad(true);
  max(g, 0).backward();
  EXPECT_EQ(g.grad().item<double>(), 1.0);
}

TEST(Reduce, MeanGradcheck) {
  for (bool keepdim : {false, true}) {
    EXPECT_TRUE(grad_ok([&](const auto& in) { return mean(in[0], {0, 2}, keepdim); }, {leaf64({2, 3, 4}, 10)}));
    EXPECT_TRUE(grad_ok([&](const auto& in) { return mean(in[0], {}, keepdim); }, {leaf64({3, 2}, 11)}));
  }
  EXPECT_TRUE(grad_ok([](const auto& in) { return mean(in[0].permute({2, 0, 1}), {1}); },
                      {leaf64({2, 3, 4}, 12)}));
}

TEST(Reduce, SumGradcheck) {
  EXPECT_TRUE(grad_ok([](const auto& in) { return sum(in[0].t(), {0}); }, {leaf64({3, 4}, 13)}));
}

TEST(Reduce, MaxGradcheck) {
  for (int64_t d : {0, 1, 2})
    EXPECT_TRUE(grad_ok([&](const auto& in) { return max(in[0], d); }, {leaf64({2, 3, 4}, 14 + d)}));
  EXPECT_TRUE(grad_ok([](const auto& in) { return max(in[0].permute({1, 2, 0}), 1, true); },
                      {leaf64({2, 3, 4}, 17)}));
}

TEST(Reduce, VarGradcheck) {
  for (int64_t correction : {0, 1})
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0, 2}, std::vector<int64_t>{1}, std::vector<int64_t>{}})
      EXPECT_TRUE(grad_ok([&](const auto& in) { return var(in[0], dims, false, correction); },
                          {leaf64({2, 3, 4}, 18)}))
          << "dims " << shape_str(dims);
  EXPECT_TRUE(grad_ok([](const auto& in) { return var(in[0].t(), {0}, true); }, {leaf64({3, 5}, 19)}));
}

TEST(Reduce, ArgmaxIsNotDifferentiable) {
  const Tensor x = leaf64({2, 3}, 20);
  EXPECT_FALSE(argmax(x, 1).requires_grad());
}

TEST(Reduce, BadAxes) {
  const Tensor x = uniform({2, 3, 4}, 21);
  EXPECT_VIMOE_ERROR(sum(x, {3}), "sum", "dimension 3");
  EXPECT_VIMOE_ERROR(mean(x, {-4}), "mean", "dimension -4");
  EXPECT_VIMOE_ERROR(var(x, {0, 2, 0}), "var", "axis 0 listed twice", "[2, 3, 4]");
  EXPECT_VIMOE_ERROR(mean(x, {1, -2}), "mean", "listed twice");
  EXPECT_VIMOE_ERROR(max(x, 5), "max", "dimension 5");
  EXPECT_VIMOE_ERROR(argmax(x, -4), "argmax", "dimension -4");
  EXPECT_VIMOE_ERROR(sum(Tensor::scalar(1.0), {1}), "sum", "dimension 1");
}

TEST(Reduce, EmptyMaxThrows) {
  const Tensor x = Tensor::zeros({3, 0});
  EXPECT_VIMOE_ERROR(max(x, 1), "max", "dimension 1 of size 0", "[3, 0]");
  EXPECT_VIMOE_ERROR(argmax(x, -1), "argmax", "size 0");
  // Reducing the non-empty axis of an empty tensor is fine: the result is empty.
  EXPECT_EQ(max(Tensor::zeros({0, 3}), 1).shape(), (Shape{0}));
}

TEST(Reduce, FloatingOnlyOps) {
  const Tensor i = Tensor::from_vector<int64_t>({1, 2, 3}, {3});
  EXPECT_VIMOE_ERROR(mean(i), "mean", "floating", "i64");
  EXPECT_VIMOE_ERROR(var(i), "var", "floating");
  EXPECT_VIMOE_ERROR(sum(Tensor()), "sum", "undefined");
}

}  // namespace
}  // namespace vimoe
