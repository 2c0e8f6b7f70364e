// Elementwise ops on the GPU against the CPU reference: every op, forward and backward, on
// odd shapes (1, 3, 257, 385) covering both kernel paths: contiguous or broadcast-scalar
// operands take the vectorised dense path; broadcast rows/columns, permuted views and
// misaligned slices take the strided path.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Tol {
  double atol, rtol;
};
constexpr Tol kExact{0, 0};

// Tolerances per dtype for one op.
//  - exact: the same IEEE f32/f64 operation and the same final rounding on both sides
//    (add, sub, mul, maximum, minimum, neg, abs, relu, where, comparisons).
//  - rounded: results that go through a correctly rounded division or sqrt (CUDA's default
//    -prec-div/-prec-sqrt) are identical as well; a little slack all the same.
//  - transcendental: CUDA's expf/logf/tanhf/powf are within 1-4 ulp of glibc's, which in
//    bf16/f16 can flip the final rounding by one half-precision ulp (2^-8 relative for bf16).
struct OpTol {
  Tol f32, f64, half;
};
constexpr OpTol kExactFwd{kExact, kExact, kExact};
constexpr OpTol kRoundedFwd{{1e-7, 1e-6}, {1e-15, 1e-14}, {1e-3, 8e-3}};
constexpr OpTol kTransFwd{{1e-6, 4e-6}, {1e-14, 1e-13}, {2e-3, 1e-2}};
// Backward: broadcast gradients are summed by the reduction kernel (f32 accumulation in
// tree order, up to 1155 terms here) against the CPU's double accumulation, and chain the
// forward formulas' differences (a bf16 ulp in y moves 1 - y^2 by up to 2^-7).
constexpr OpTol kBwd{{1e-4, 1e-4}, {1e-10, 1e-10}, {2e-2, 2e-2}};
constexpr OpTol kTransBwd{{1e-4, 1e-4}, {1e-10, 1e-10}, {5e-2, 2e-2}};

Tol pick(const OpTol& t, DType dt) {
  if (dt == DType::F64) return t.f64;
  if (dt == DType::BF16 || dt == DType::F16) return t.half;
  return t.f32;  // f32, and integer results (which are exact anyway)
}

// Runs `fn` on CPU leaves and on CUDA leaves holding the same values; compares the outputs
// and, when `backward` is set, the gradients of every floating input for one fixed
// upstream gradient.
void check_cuda_vs_cpu(const Fn& fn, const std::vector<Tensor>& inputs, Tol fwd, Tol bwd,
                       bool backward) {
  std::vector<Tensor> h, d;
  for (const Tensor& x : inputs) {
    Tensor hx = x.detach().clone(), dx = x.detach().cuda().detach();
    if (backward && is_floating(x.dtype())) {
      hx.set_requires_grad(true);
      dx.set_requires_grad(true);
    }
    h.push_back(hx);
    d.push_back(dx);
  }
  const Tensor oh = fn(h), od = fn(d);
  ASSERT_TRUE(od.is_cuda());
  ASSERT_EQ(od.dtype(), oh.dtype());
  EXPECT_TRUE(all_close(od, oh, fwd.atol, fwd.rtol)) << "forward";
  if (!backward || !oh.requires_grad()) return;
  const Tensor g = uniform(oh.shape(), 77, -1, 1, oh.dtype());
  oh.backward(g);
  od.backward(g.cuda());
  for (size_t i = 0; i < h.size(); ++i) {
    if (!h[i].requires_grad()) continue;
    ASSERT_TRUE(h[i].grad().defined()) << "input " << i;
    ASSERT_TRUE(d[i].grad().defined()) << "input " << i;
    EXPECT_TRUE(all_close(d[i].grad(), h[i].grad(), bwd.atol, bwd.rtol)) << "gradient of input " << i;
  }
}

// Operand shapes plus the view the op sees, so one list exercises every kernel path.
struct Layout {
  std::string name;
  std::vector<Shape> shapes;
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> view;
};

std::vector<Tensor> as_is(const std::vector<Tensor>& v) { return v; }

std::vector<Layout> binary_layouts() {
  return {
      {"[1] x [1]", {{1}, {1}}, as_is},
      {"[3,257] x [3,257]", {{3, 257}, {3, 257}}, as_is},
      {"[385,3] x [385,3]", {{385, 3}, {385, 3}}, as_is},
      {"[385,3] x 0-dim", {{385, 3}, {}}, as_is},
      {"[1] x [3,257]", {{1}, {3, 257}}, as_is},
      {"[385,1] x [1,3]", {{385, 1}, {1, 3}}, as_is},
      {"[3,257] x [257]", {{3, 257}, {257}}, as_is},
      {"[3,385]^T x [385,3]", {{3, 385}, {385, 3}},
       [](const std::vector<Tensor>& v) { return std::vector<Tensor>{v[0].t(), v[1]}; }},
      {"[772][1:] x [771] (misaligned)", {{772}, {771}},
       [](const std::vector<Tensor>& v) { return std::vector<Tensor>{v[0].narrow(0, 1, 771), v[1]}; }},
      {"[1025,1031] x [1025,1031]", {{1025, 1031}, {1025, 1031}}, as_is},
  };
}

std::vector<Layout> unary_layouts() {
  return {
      {"[1]", {{1}}, as_is},
      {"0-dim", {{}}, as_is},
      {"[3,257]", {{3, 257}}, as_is},
      {"[385,3]", {{385, 3}}, as_is},
      {"[3,385]^T", {{3, 385}}, [](const std::vector<Tensor>& v) { return std::vector<Tensor>{v[0].t()}; }},
      {"[1,257] expanded to [3,257]", {{1, 257}},
       [](const std::vector<Tensor>& v) { return std::vector<Tensor>{v[0].expand({3, 257})}; }},
      {"[772][1:] (misaligned)", {{772}},
       [](const std::vector<Tensor>& v) { return std::vector<Tensor>{v[0].narrow(0, 1, 771)}; }},
      {"[1025,1031]", {{1025, 1031}}, as_is},
  };
}

const DType kFloatTypes[] = {DType::F32, DType::BF16, DType::F16, DType::F64};

// Inputs for one op: per-operand value ranges.
struct Range {
  double lo, hi;
};

std::vector<Tensor> make_inputs(const std::vector<Shape>& shapes, const std::vector<Range>& ranges,
                                DType dt, uint64_t seed) {
  std::vector<Tensor> v;
  for (size_t i = 0; i < shapes.size(); ++i)
    v.push_back(uniform(shapes[i], seed + i, ranges[i].lo, ranges[i].hi, dt));
  return v;
}

std::string trace(const std::string& op, DType dt, const std::string& layout) {
  return op + " " + dtype_name(dt) + " " + layout;
}

struct BinaryCase {
  const char* name;
  Tensor (*op)(const Tensor&, const Tensor&);
  Range ra, rb;
  OpTol fwd, bwd;
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", add, {-1, 1}, {-1, 1}, kExactFwd, kBwd},
      {"sub", sub, {-1, 1}, {-1, 1}, kExactFwd, kBwd},
      {"mul", mul, {-1, 1}, {-1, 1}, kExactFwd, kBwd},
      {"div", div, {-1, 1}, {0.5, 2}, kRoundedFwd, kBwd},
      {"pow", pow, {0.5, 2}, {-2, 2}, kTransFwd, kTransBwd},
      {"maximum", maximum, {-1, 1}, {-1, 1}, kExactFwd, kBwd},
      {"minimum", minimum, {-1, 1}, {-1, 1}, kExactFwd, kBwd},
  };
}

}  // namespace

TEST(ElementwiseCuda, BinaryFloating) {
  VIMOE_REQUIRE_GPU();
  for (const BinaryCase& c : binary_cases())
    for (DType dt : kFloatTypes)
      for (const Layout& l : binary_layouts()) {
        SCOPED_TRACE(trace(c.name, dt, l.name));
        const auto op = c.op;
        const auto view = l.view;
        check_cuda_vs_cpu([op, view](const std::vector<Tensor>& v) {
                            const std::vector<Tensor> w = view(v);
                            return op(w[0], w[1]);
                          },
                          make_inputs(l.shapes, {c.ra, c.rb}, dt, 1), pick(c.fwd, dt),
                          pick(c.bwd, dt), true);
      }
}

TEST(ElementwiseCuda, BinaryInteger) {
  VIMOE_REQUIRE_GPU();
  // Integer arithmetic runs in i64 on both sides and wraps on the store: exact. Division
  // of integers yields f32 (a correctly rounded f32 division on both sides).
  for (const BinaryCase& c : binary_cases())
    for (DType dt : {DType::I32, DType::I64, DType::U8})
      for (const Layout& l : binary_layouts()) {
        SCOPED_TRACE(trace(c.name, dt, l.name));
        const std::string name = c.name;
        // u8 results (9^3, 0 - 9) wrap identically on both sides; exponents stay >= 0 (a
        // negative integer power is not representable) and divisors away from 0.
        const double lo = dt == DType::U8 ? 0 : -9;
        const Range ra{lo, 10};
        const Range rb = name == "pow" ? Range{0, 4} : name == "div" ? Range{1, 10} : Range{lo, 10};
        const auto op = c.op;
        const auto view = l.view;
        check_cuda_vs_cpu([op, view](const std::vector<Tensor>& v) {
                            const std::vector<Tensor> w = view(v);
                            return op(w[0], w[1]);
                          },
                          make_inputs(l.shapes, {ra, rb}, dt, 2),
                          name == "div" ? kRoundedFwd.f32 : kExact, kExact, false);
      }
}

TEST(ElementwiseCuda, BinaryMixedDtypesAndScalarExponent) {
  VIMOE_REQUIRE_GPU();
  // f32 with bf16 promotes to f32 (the bf16 operand's gradient comes back in bf16).
  check_cuda_vs_cpu([](const std::vector<Tensor>& v) { return mul(v[0], v[1].to(DType::BF16)); },
                    {uniform({385, 3}, 3), uniform({385, 1}, 4)}, kExact, kBwd.half, true);
  check_cuda_vs_cpu([](const std::vector<Tensor>& v) { return add(v[0], v[1]); },
                    {uniform({3, 257}, 5, -1, 1, DType::I32), uniform({257}, 6)}, kExact, kBwd.f32,
                    true);
  for (DType dt : kFloatTypes)
    for (double p : {2.0, 0.5, -1.5, 0.0}) {
      SCOPED_TRACE(trace("pow scalar " + std::to_string(p), dt, "[385,3]"));
      check_cuda_vs_cpu([p](const std::vector<Tensor>& v) { return pow(v[0], p); },
                        {uniform({385, 3}, 7, 0.5, 2, dt)}, pick(kTransFwd, dt),
                        pick(kTransBwd, dt), true);
    }
}

TEST(ElementwiseCuda, Unary) {
  VIMOE_REQUIRE_GPU();
  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&);
    Range r;
    OpTol fwd, bwd;
  };
  // log, sqrt and rsqrt on positive inputs; relu and abs on [-1, 1] (never exactly 0).
  const Case cases[] = {
      {"neg", neg, {-2, 2}, kExactFwd, kExactFwd},
      {"exp", exp, {-2, 2}, kTransFwd, kTransBwd},
      {"log", log, {0.1, 3}, kTransFwd, kTransBwd},
      {"sqrt", sqrt, {0.1, 3}, kRoundedFwd, kTransBwd},
      {"rsqrt", rsqrt, {0.1, 3}, kRoundedFwd, kTransBwd},
      {"tanh", tanh, {-2, 2}, kTransFwd, kTransBwd},
      {"relu", relu, {-1, 1}, kExactFwd, kExactFwd},
      {"abs", abs, {-1, 1}, kExactFwd, kExactFwd},
  };
  for (const Case& c : cases)
    for (DType dt : kFloatTypes)
      for (const Layout& l : unary_layouts()) {
        SCOPED_TRACE(trace(c.name, dt, l.name));
        const auto op = c.op;
        const auto view = l.view;
        // An expanded input sums its gradient over the broadcast rows: reduction tolerance.
        const OpTol& bwd = l.name.find("expanded") != std::string::npos ? kTransBwd : c.bwd;
        check_cuda_vs_cpu([op, view](const std::vector<Tensor>& v) { return op(view(v)[0]); },
                          make_inputs(l.shapes, {c.r}, dt, 3), pick(c.fwd, dt), pick(bwd, dt),
                          true);
      }
  // Integer inputs: neg/abs/relu stay integral (exact); the rest compute in f32.
  for (const Case& c : cases)
    for (const Layout& l : unary_layouts()) {
      SCOPED_TRACE(trace(c.name, DType::I32, l.name));
      const auto op = c.op;
      const auto view = l.view;
      check_cuda_vs_cpu([op, view](const std::vector<Tensor>& v) { return op(view(v)[0]); },
                        make_inputs(l.shapes, {{c.r.lo * 5 + 1, c.r.hi * 5 + 1}}, DType::I32, 4),
                        c.fwd.f32, kExact, false);
    }
}

TEST(ElementwiseCuda, Where) {
  VIMOE_REQUIRE_GPU();
  const std::vector<Layout> layouts = {
      {"[1] x3", {{1}, {1}, {1}}, as_is},
      {"[385,3] x3", {{385, 3}, {385, 3}, {385, 3}}, as_is},
      {"[3,257] x3", {{3, 257}, {3, 257}, {3, 257}}, as_is},
      {"cond [385,1], a [1,3], b 0-dim", {{385, 1}, {1, 3}, {}}, as_is},
      {"cond [3,257], a [257], b [3,1]", {{3, 257}, {257}, {3, 1}}, as_is},
      {"cond [257,3]^T, a [3,257], b [3,257]", {{257, 3}, {3, 257}, {3, 257}},
       [](const std::vector<Tensor>& v) { return std::vector<Tensor>{v[0].t(), v[1], v[2]}; }},
      {"cond [1025,1031] x3", {{1025, 1031}, {1025, 1031}, {1025, 1031}}, as_is},
  };
  for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I32, DType::U8})
    for (const Layout& l : layouts) {
      SCOPED_TRACE(trace("where", dt, l.name));
      // cond from a comparison on the CPU: about half the elements select a.
      const Tensor cond = gt(uniform(l.shapes[0], 5), Tensor::scalar(0.0));
      const std::vector<Tensor> inputs = {cond, uniform(l.shapes[1], 6, 0, 100, dt),
                                          uniform(l.shapes[2], 7, 0, 100, dt)};
      const auto view = l.view;
      check_cuda_vs_cpu([view](const std::vector<Tensor>& v) {
                          const std::vector<Tensor> w = view(v);
                          return where(w[0], w[1], w[2]);
                        },
                        inputs, kExact, pick(kBwd, dt), is_floating(dt));
    }
  // a and b of different dtypes promote (i32 with bf16 gives f32).
  check_cuda_vs_cpu([](const std::vector<Tensor>& v) { return where(v[0], v[1], v[2]); },
                    {gt(uniform({385, 3}, 8), Tensor::scalar(0.0)),
                     uniform({385, 3}, 9, -50, 50, DType::I32), uniform({3}, 10, -1, 1, DType::BF16)},
                    kExact, kBwd.half, true);
}

TEST(ElementwiseCuda, Comparisons) {
  VIMOE_REQUIRE_GPU();
  Tensor (*const ops[])(const Tensor&, const Tensor&) = {eq, ne, lt, le, gt, ge};
  const char* names[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  for (int k = 0; k < 6; ++k)
    for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I32, DType::U8})
      for (const Layout& l : binary_layouts()) {
        SCOPED_TRACE(trace(names[k], dt, l.name));
        // Small integers in every dtype so that many pairs tie.
        std::vector<Tensor> in;
        for (size_t i = 0; i < l.shapes.size(); ++i)
          in.push_back(uniform(l.shapes[i], 11 + i, 0, 4, DType::I32).to(dt));
        const auto op = ops[k];
        const auto view = l.view;
        check_cuda_vs_cpu([op, view](const std::vector<Tensor>& v) {
                            const std::vector<Tensor> w = view(v);
                            return op(w[0], w[1]);
                          },
                          in, kExact, kExact, false);
      }
  // Mixed dtypes compare after promotion; NaN compares unequal to everything.
  const Tensor a = Tensor::from_vector(std::vector<float>{1, 2.5f, NAN, 3}, {4});
  const Tensor b = Tensor::from_vector(std::vector<int32_t>{1, 2, 2, 3}, {4});
  for (int k = 0; k < 6; ++k) {
    SCOPED_TRACE(names[k]);
    EXPECT_TRUE(all_close(ops[k](a.cuda(), b.cuda()), ops[k](a, b), 0, 0));
  }
}

TEST(ElementwiseCuda, MaximumMinimumTiesAndNaN) {
  VIMOE_REQUIRE_GPU();
  // Ties split the gradient; NaN propagates from either side.
  const Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, NAN, 0}, {5});
  const Tensor b = Tensor::from_vector(std::vector<float>{2, 2, 2, 1, NAN}, {5});
  for (auto op : {maximum, minimum})
    check_cuda_vs_cpu([op](const std::vector<Tensor>& v) { return op(v[0], v[1]); }, {a, b},
                      kExact, kExact, true);
}

TEST(ElementwiseCuda, ResultsAreContiguousAndOnTheDevice) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = uniform({3, 257}, 1, -1, 1, DType::F32, Device::cuda());
  for (const Tensor& r : {exp(x.t()), add(x, x.t().t()), where(gt(x, x * 0.5), x, x * 2.0)}) {
    EXPECT_TRUE(r.is_cuda());
    EXPECT_TRUE(r.is_contiguous());
  }
  EXPECT_EQ(lt(x, x).dtype(), DType::U8);
  EXPECT_TRUE(lt(x, x).is_cuda());
}

TEST(ElementwiseCuda, DeviceMismatch) {
  VIMOE_REQUIRE_GPU();
  const Tensor h = Tensor::zeros({2, 3}), d = Tensor::zeros({2, 3}, Device::cuda());
  EXPECT_VIMOE_ERROR(add(h, d), "add", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(maximum(d, h), "maximum", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(pow(h, d), "pow", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(lt(h, d), "lt", "cpu", "cuda");
  const Tensor cond = gt(d, d);
  EXPECT_VIMOE_ERROR(where(cond, h, d), "where", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(where(cond.cpu(), d, d), "where", "cpu", "cuda");
  EXPECT_VIMOE_ERROR(where(cond, d, h), "where", "cpu", "cuda");
}
