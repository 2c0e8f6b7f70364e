// Elementwise ops (engine/ops/elementwise.h, kernels/elementwise.cu): every binary, unary,
// comparison and where op, on odd shapes (1, 3, 257, 385, 771, 1025 x 1031) and views that
// take each kernel path:
//   - dense: contiguous operands and broadcast scalars ([385, 3] x 0-dim, [1] x [3, 257]);
//   - vector rows: inputs contiguous or broadcast along a row whose length is a whole number
//     of 16-byte vectors ([257, 384] broadcast over rows, [257, 384] x [384], [4, 33, 64] x
//     [33, 1], a narrow of [65, 384] starting at column 0);
//   - strided: everything else (transposed operands, rows of 257, the same narrow starting at
//     column 1, a misaligned slice, [257, 1, 3] x [385, 1]).
//
// Tolerances of CUDA against the CPU reference, per op and dtype:
//  - exact: the same IEEE f32 / f64 operation and the same final rounding on both sides
//    (add, sub, mul, maximum, minimum, neg, abs, relu, where, comparisons, integer ops: these
//    run in i64 on both sides and wrap identically on the store).
//  - rounded: a correctly rounded division or sqrt (CUDA's default -prec-div / -prec-sqrt)
//    is identical as well; a little slack all the same.
//  - transcendental: CUDA's expf / logf / tanhf / erff / powf are within 1-4 ulp of glibc's,
//    which in bf16 / f16 can flip the final rounding by one half-precision ulp (2^-8 relative).
//  - backward: broadcast gradients are summed by the reduction kernel (f32 accumulation in
//    tree order, up to 1155 terms here) against the CPU's double accumulation, and chain the
//    forward formulas' differences (a bf16 ulp in y moves 1 - y^2 by up to 2^-7).
#include <cmath>
#include <string>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

struct OpTol {
  Tol f32, f64, half;
};
constexpr OpTol kExactFwd{kExact, kExact, kExact};
constexpr OpTol kRoundedFwd{{1e-7, 1e-6, 0}, {1e-15, 1e-14, 0}, {1e-3, 8e-3, 0}};
constexpr OpTol kTransFwd{{1e-6, 4e-6, 0}, {1e-14, 1e-13, 0}, {2e-3, 1e-2, 0}};
constexpr OpTol kBwd{{1e-4, 1e-4, 0}, {1e-10, 1e-10, 0}, {2e-2, 2e-2, 0}};
constexpr OpTol kTransBwd{{1e-4, 1e-4, 0}, {1e-10, 1e-10, 0}, {5e-2, 2e-2, 0}};

Tol pick(const OpTol& t, DType dt) {
  if (dt == DType::F64) return t.f64;
  if (dt == DType::BF16 || dt == DType::F16) return t.half;
  return t.f32;  // f32, and integer results (exact anyway)
}

const DType kFloatTypes[] = {DType::F32, DType::BF16, DType::F16, DType::F64};

using ViewFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

// Operand shapes and views, plus an optional view the row applies itself (narrow); `tag`
// names that view in the row name.
struct Layout {
  std::vector<Shape> shapes;
  std::vector<View> views;  // per operand; missing entries are Contiguous
  std::string tag;
  ViewFn view;
  View view_of(size_t i) const { return i < views.size() ? views[i] : View::Contiguous; }
};

std::vector<Tensor> apply(const Layout& l, const std::vector<Tensor>& a) {
  return l.view ? l.view(a) : a;
}

// [65, 384] seen through narrow(1, start, 256): rows of 256 with a row stride of 384.
ViewFn narrow_first(int64_t start) {
  return [start](const std::vector<Tensor>& a) {
    std::vector<Tensor> r = a;
    r[0] = a[0].narrow(1, start, 256);
    return r;
  };
}

std::vector<Layout> binary_layouts() {
  const View T = View::Transposed, M = View::Misaligned, B = View::Broadcast,
             C = View::Contiguous;
  return {
      {{{1}, {1}}, {}, "", nullptr},
      {{{3, 257}, {3, 257}}, {}, "", nullptr},
      {{{385, 3}, {385, 3}}, {}, "", nullptr},
      {{{385, 3}, {}}, {}, "", nullptr},
      {{{1}, {3, 257}}, {}, "", nullptr},
      {{{385, 1}, {1, 3}}, {}, "", nullptr},
      {{{3, 257}, {257}}, {}, "", nullptr},
      {{{385, 3}, {385, 3}}, {T, C}, "", nullptr},  // stored [3, 385], seen transposed
      {{{771}, {771}}, {M, C}, "", nullptr},
      {{{1025, 1031}, {1025, 1031}}, {}, "", nullptr},
      {{{257, 1, 3}, {385, 1}}, {}, "", nullptr},  // 3-d broadcast of both operands
      {{{257, 384}, {257, 384}}, {B, C}, "", nullptr},
      {{{257, 384}, {384}}, {}, "", nullptr},
      {{{4, 33, 64}, {33, 1}}, {}, "", nullptr},
      {{{257, 384}, {257, 384}}, {C, T}, "", nullptr},
      {{{65, 384}, {65, 256}}, {}, "narrow0", narrow_first(0)},
      {{{65, 384}, {65, 256}}, {}, "narrow1", narrow_first(1)},
  };
}

std::vector<Layout> unary_layouts() {
  const View T = View::Transposed, M = View::Misaligned, B = View::Broadcast;
  return {
      {{{1}}, {}, "", nullptr},
      {{{}}, {}, "", nullptr},
      {{{3, 257}}, {}, "", nullptr},
      {{{385, 3}}, {}, "", nullptr},
      {{{385, 3}}, {T}, "", nullptr},
      {{{3, 257}}, {B}, "", nullptr},  // [1, 257] expanded to [3, 257]
      {{{771}}, {M}, "", nullptr},
      {{{1025, 1031}}, {}, "", nullptr},
      {{{257, 384}}, {B}, "", nullptr},
      {{{65, 384}}, {}, "narrow0", narrow_first(0)},
      {{{65, 384}}, {}, "narrow1", narrow_first(1)},
  };
}

// Small integers (floor of uniform [lo, hi)) in `dt`, so that comparisons see many ties; a
// broadcast input holds one slice of dim 0, as the harness's own values do.
Input small_ints(Shape shape, DType dt, double lo, double hi, View view) {
  Input i = in(shape, dt, lo, hi, view);
  Shape values = shape;
  if (view == View::Broadcast && !values.empty()) values[0] = 1;
  i.make = [values, dt, lo, hi](uint64_t seed) {
    std::vector<double> v(shape_numel(values));
    uint64_t s = seed * 2862933555777941757ull + 3037000493ull;
    for (double& x : v) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      x = std::floor(lo + (hi - lo) * static_cast<double>(s >> 11) / 9007199254740992.0);
    }
    return Tensor::from_vector(v, values).to(dt);
  };
  i.requires_grad = false;
  return i;
}

// A u8 condition with about half the elements set.
Input condition(Shape shape, View view) {
  Input i = small_ints(shape, DType::U8, 0, 2, view);
  return i;
}

std::string with_tag(const std::string& name, const Layout& l) {
  return l.tag.empty() ? name : name + "_" + l.tag;
}

struct BinaryCase {
  const char* name;
  Tensor (*op)(const Tensor&, const Tensor&);
  double alo, ahi, blo, bhi;
  OpTol fwd, bwd;
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", add, -1, 1, -1, 1, kExactFwd, kBwd},
      {"sub", sub, -1, 1, -1, 1, kExactFwd, kBwd},
      {"mul", mul, -1, 1, -1, 1, kExactFwd, kBwd},
      {"div", div, -1, 1, 0.5, 2, kRoundedFwd, kBwd},
      {"pow", pow, 0.5, 2, -2, 2, kTransFwd, kTransBwd},
      {"maximum", maximum, -1, 1, -1, 1, kExactFwd, kBwd},
      {"minimum", minimum, -1, 1, -1, 1, kExactFwd, kBwd},
  };
}

OpCase binary_row(const BinaryCase& b, const Layout& l, DType dt, bool integer) {
  OpCase c;
  c.name = with_tag(b.name, l);
  if (integer) {
    // u8 results (9^3, 0 - 9) wrap identically on both sides; exponents stay >= 0 (a
    // negative integer power is not representable) and divisors away from 0. Integer
    // division yields f32 (a correctly rounded f32 division on both sides).
    const std::string name = b.name;
    const double lo = dt == DType::U8 ? 0 : -9;
    const double blo = name == "pow" ? 0 : name == "div" ? 1 : lo;
    const double bhi = name == "pow" ? 4 : 10;
    c.inputs = {in(l.shapes[0], dt, lo, 10, l.view_of(0)), in(l.shapes[1], dt, blo, bhi, l.view_of(1))};
    c.fwd = name == "div" ? kRoundedFwd.f32 : kExact;
    c.backward = false;
  } else {
    c.inputs = {in(l.shapes[0], dt, b.alo, b.ahi, l.view_of(0)),
                in(l.shapes[1], dt, b.blo, b.bhi, l.view_of(1))};
    c.fwd = pick(b.fwd, dt);
    c.bwd = pick(b.bwd, dt);
    // The finite differences evaluate the whole output twice per input element: a broadcast
    // that blows small inputs up ([257, 1, 3] x [385, 1] is 297k outputs) is slow to check
    // and sums too many terms for a 1e-6 step; [385, 1] x [1, 3] checks broadcasting.
    // (Rows with their own view, narrow, have large inputs and are never checked.)
    if (!l.view &&
        shape_numel(broadcast_shapes(l.shapes[0], l.shapes[1], "binary_row")) > kGradcheckMaxNumel)
      c.gradcheck = false;
  }
  const auto op = b.op;
  c.fn = [op, l](const std::vector<Tensor>& a) {
    const std::vector<Tensor> v = apply(l, a);
    return std::vector<Tensor>{op(v[0], v[1])};
  };
  return c;
}

struct UnaryCase {
  const char* name;
  Tensor (*op)(const Tensor&);
  double lo, hi;
  OpTol fwd, bwd;
};

std::vector<UnaryCase> unary_cases() {
  // log, sqrt and rsqrt on positive inputs; relu and abs on [-1, 1] (never exactly 0).
  return {
      {"neg", neg, -2, 2, kExactFwd, kExactFwd},
      {"exp", exp, -2, 2, kTransFwd, kTransBwd},
      {"log", log, 0.1, 3, kTransFwd, kTransBwd},
      {"sqrt", sqrt, 0.1, 3, kRoundedFwd, kTransBwd},
      {"rsqrt", rsqrt, 0.1, 3, kRoundedFwd, kTransBwd},
      {"tanh", tanh, -2, 2, kTransFwd, kTransBwd},
      {"erf", erf, -2, 2, kTransFwd, kTransBwd},
      {"relu", relu, -1, 1, kExactFwd, kExactFwd},
      {"abs", abs, -1, 1, kExactFwd, kExactFwd},
  };
}

OpCase unary_row(const UnaryCase& u, const Layout& l, DType dt) {
  OpCase c;
  c.name = with_tag(u.name, l);
  if (is_floating(dt)) {
    c.inputs = {in(l.shapes[0], dt, u.lo, u.hi, l.view_of(0))};
    c.fwd = pick(u.fwd, dt);
    // A broadcast input sums its gradient over the broadcast rows: reduction tolerance.
    c.bwd = pick(l.view_of(0) == View::Broadcast ? kTransBwd : u.bwd, dt);
  } else {
    // Integer inputs: neg, abs and relu stay integral (exact); the rest compute in f32.
    c.inputs = {in(l.shapes[0], dt, u.lo * 5 + 1, u.hi * 5 + 1, l.view_of(0))};
    c.fwd = u.fwd.f32;
    c.backward = false;
  }
  const auto op = u.op;
  c.fn = [op, l](const std::vector<Tensor>& a) { return std::vector<Tensor>{op(apply(l, a)[0])}; };
  return c;
}

}  // namespace

VIMOE_OP_CASES(elementwise) {
  std::vector<OpCase> rows;
  auto add_row = [&](OpCase c) {
    rows.push_back(std::move(c));
  };

  // ---- binary --------------------------------------------------------------------------
  for (const BinaryCase& b : binary_cases())
    for (const Layout& l : binary_layouts()) {
      for (DType dt : kFloatTypes) add_row(binary_row(b, l, dt, false));
      for (DType dt : {DType::I32, DType::I64, DType::U8}) add_row(binary_row(b, l, dt, true));
    }

  // Mixed dtypes promote: f32 with bf16 gives f32 (the bf16 operand's gradient comes back
  // in bf16, rounded once from the f32 sum over the broadcast columns), i32 with f32 gives f32.
  {
    OpCase c;
    c.name = "mul_mixed";
    c.inputs = {in({385, 3}, DType::F32), in({385, 1}, DType::BF16)};
    c.fn = [](const std::vector<Tensor>& a) { return std::vector<Tensor>{mul(a[0], a[1])}; };
    c.fwd = kExact;
    c.bwd = kBwd.half;
    add_row(c);
    c.name = "add_mixed";
    c.inputs = {in({3, 257}, DType::I32, -1, 1), in({257}, DType::F32)};
    c.fn = [](const std::vector<Tensor>& a) { return std::vector<Tensor>{add(a[0], a[1])}; };
    c.bwd = kBwd.f32;
    add_row(c);
  }
  // A scalar exponent (pow(x, p): the exponent is a 0-dim operand, the dense path's scalar).
  for (DType dt : kFloatTypes)
    for (double p : {2.0, 0.5, -1.5, 0.0}) {
      OpCase c;
      c.name = std::string("pow_scalar_") + (p < 0 ? "m" : "p") +
               (std::fabs(p) == 0.5 ? "0_5" : std::fabs(p) == 1.5 ? "1_5" : std::to_string(int(p)));
      c.inputs = {in({385, 3}, dt, 0.5, 2)};
      c.fn = [p](const std::vector<Tensor>& a) { return std::vector<Tensor>{pow(a[0], p)}; };
      c.fwd = pick(kTransFwd, dt);
      c.bwd = pick(kTransBwd, dt);
      add_row(c);
    }

  // ---- unary ---------------------------------------------------------------------------
  for (const UnaryCase& u : unary_cases())
    for (const Layout& l : unary_layouts()) {
      for (DType dt : kFloatTypes) add_row(unary_row(u, l, dt));
      add_row(unary_row(u, l, DType::I32));
    }

  // ---- where ---------------------------------------------------------------------------
  {
    const View T = View::Transposed, B = View::Broadcast, C = View::Contiguous;
    const std::vector<Layout> layouts = {
        {{{1}, {1}, {1}}, {}, "", nullptr},
        {{{385, 3}, {385, 3}, {385, 3}}, {}, "", nullptr},
        {{{3, 257}, {3, 257}, {3, 257}}, {}, "", nullptr},
        {{{385, 1}, {1, 3}, {}}, {}, "", nullptr},
        {{{3, 257}, {257}, {3, 1}}, {}, "", nullptr},
        {{{3, 257}, {3, 257}, {3, 257}}, {T, C, C}, "", nullptr},  // cond stored [257, 3]
        {{{1025, 1031}, {1025, 1031}, {1025, 1031}}, {}, "", nullptr},
        {{{257, 384}, {257, 384}, {257, 384}}, {C, B, C}, "", nullptr},
    };
    for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I32, DType::U8})
      for (const Layout& l : layouts) {
        OpCase c;
        c.name = "where";
        c.inputs = {condition(l.shapes[0], l.view_of(0)), in(l.shapes[1], dt, 0, 100, l.view_of(1)),
                    in(l.shapes[2], dt, 0, 100, l.view_of(2))};
        c.fn = [](const std::vector<Tensor>& a) {
          return std::vector<Tensor>{where(a[0], a[1], a[2])};
        };
        c.fwd = kExact;
        c.bwd = pick(kBwd, dt);
        c.backward = is_floating(dt);
        add_row(c);
      }
    // a and b of different dtypes promote (i32 with bf16 gives f32).
    OpCase c;
    c.name = "where_mixed";
    c.inputs = {condition({385, 3}, View::Contiguous), in({385, 3}, DType::I32, -50, 50),
                in({3}, DType::BF16)};
    c.fn = [](const std::vector<Tensor>& a) { return std::vector<Tensor>{where(a[0], a[1], a[2])}; };
    c.fwd = kExact;
    c.bwd = kBwd.half;
    add_row(c);
  }

  // ---- comparisons (u8, not differentiable) --------------------------------------------
  {
    Tensor (*const ops[])(const Tensor&, const Tensor&) = {eq, ne, lt, le, gt, ge};
    const char* names[] = {"eq", "ne", "lt", "le", "gt", "ge"};
    for (int k = 0; k < 6; ++k)
      for (const Layout& l : binary_layouts())
        for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I32, DType::U8}) {
          OpCase c;
          c.name = with_tag(names[k], l);
          // Small integers in every dtype, so that many pairs tie.
          c.inputs = {small_ints(l.shapes[0], dt, 0, 4, l.view_of(0)),
                      small_ints(l.shapes[1], dt, 0, 4, l.view_of(1))};
          const auto op = ops[k];
          c.fn = [op, l](const std::vector<Tensor>& a) {
            const std::vector<Tensor> v = apply(l, a);
            return std::vector<Tensor>{op(v[0], v[1])};
          };
          c.fwd = kExact;
          c.backward = false;
          add_row(c);
        }
  }

  // ---- ViT-S/14 ------------------------------------------------------------------------
  // The residual add of the MLP hidden width at batch 256: 65792 x 1536 bf16, the dense
  // path; its gradient passes through unchanged (exact).
  {
    OpCase c;
    c.name = "add";
    c.inputs = {in({256 * 257, 1536}, DType::BF16), in({256 * 257, 1536}, DType::BF16)};
    c.fn = [](const std::vector<Tensor>& a) { return std::vector<Tensor>{add(a[0], a[1])}; };
    c.fwd = c.bwd = kExact;
    c.large = true;
    add_row(c);
  }
  return rows;
}

}  // namespace vimoe::parity
