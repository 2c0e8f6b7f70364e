// Reductions (sum, mean, var, max, argmax), the multi-tensor gradient norm and clipping
// (kernels/multi_tensor.cu, which has no family of its own). AdamW: cases_adamw.cpp.
//
// The CUDA front-end (engine/ops/reduce.cpp) picks one of four paths from the layout; the
// rows cover each on odd shapes:
//   - reduced axes last in memory: the row kernel, one block per row (a transposed input
//     whose reduced axis is the stored last one is read in place too);
//   - reduced axes leading or in the middle of a tensor that tiles its memory: the column
//     kernel on [outer, n, inner], no copy, with n split into parts and a second pass when
//     the shape alone gives too few blocks (257x385 over dim 0: 3 parts, 4099x33: 33);
//   - everything, or a few long rows: the same column kernel with inner = 1, spread over the
//     whole GPU (4099*385 and 2^22+3 elements);
//   - anything else (reduced axes in several runs, broadcast strides): permute and copy to
//     [rows, cols], then the row kernel, as the CPU does.
//
// Tolerances of CUDA against the CPU reference (which sums in double), with inputs in
// [-2, 2), M the largest |CPU| of the compared tensor and n the elements summed per output:
//   sum / mean, f32: |cuda - cpu| <= 1e-5 M + 1e-5 |cpu| + 2e-6 sqrt(n) (divided by n for
//       mean). The GPU accumulates in f32 with a tree of fixed shape, the CPU in double: the
//       difference is a few f32 ulps of the partial sums. The partial sums of n terms of size
//       <= 2 grow like 2 sqrt(n) (a random walk), and each of the <= 23 levels rounds once at
//       u = 6e-8 of them; 2e-6 sqrt(n) covers that when a whole-tensor sum cancels to near
//       zero (where 1e-5 |cpu| says nothing).
//   sum / mean, bf16 (f16): 1e-3 M + 2^-6 |cpu| (2e-4 M + 2^-8 |cpu|) + the same sqrt(n)
//       term. Both see the same half inputs and round their wide result once; accumulator
//       differences can flip that rounding by one ulp (2^-7, 2^-10 relative), cancellation
//       near zero is the M term.
//   f64: f64 accumulation on both sides, 1e-12 relative plus 1e-13 sqrt(n).
//   var: the two-pass form on both sides; the same f32 / half terms without the sqrt(n) one
//       (the sums of squares do not cancel).
//   max / argmax, integer sums: exact (comparisons and i64 arithmetic).
//   gradients: sum and max route the upstream gradient unchanged (exact); mean divides it
//       in f32 and var's backward is a few f32 ops over a mean (f32 or half defaults).
//   gradient norm: f64 squares and sums on both sides (see kernels/multi_tensor.cu); only the
//       order of additions differs, each costing <= 1.1e-16 relative of a positive partial
//       sum: <= 1e-11 even for the CPU's sequential sum of 1e5 terms; 1e-10 relative is four
//       orders tighter than the ~1e-6 an f32 accumulation would reach.
#include <cmath>
#include <string>

#include "engine/optim/adamw.h"
#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

enum class Red { Sum, Mean, Var, Max, Argmax };

const char* red_name(Red r) {
  switch (r) {
    case Red::Sum: return "sum";
    case Red::Mean: return "mean";
    case Red::Var: return "var";
    case Red::Max: return "max";
    default: return "argmax";
  }
}

int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims) {
  if (dims.empty()) return shape_numel(shape);
  int64_t n = 1;
  for (int64_t d : dims) n *= shape[d < 0 ? d + static_cast<int64_t>(shape.size()) : d];
  return n;
}

Tol sum_tol(DType dt, int64_t n, bool mean) {
  const double walk = std::sqrt(static_cast<double>(std::max<int64_t>(n, 1)));
  const double per = mean ? 1.0 / static_cast<double>(std::max<int64_t>(n, 1)) : 1.0;
  switch (dt) {
    case DType::F64: return {1e-13 * walk * per, 1e-12, 1e-12};
    case DType::BF16: return {2e-6 * walk * per, 1.0 / 64, 1e-3};
    case DType::F16: return {2e-6 * walk * per, 1.0 / 256, 2e-4};
    default: return {2e-6 * walk * per, 1e-5, 1e-5};
  }
}

Tol var_tol(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-13, 1e-12, 1e-12};
    case DType::BF16: return {1e-3, 1.0 / 64, 1e-3};
    case DType::F16: return {1e-4, 1.0 / 256, 2e-4};
    default: return {1e-6, 1e-5, 1e-5};
  }
}

std::string dims_tag(const std::vector<int64_t>& dims) {
  if (dims.empty()) return "all";
  std::string s = "d";
  for (int64_t d : dims) s += std::to_string(d);
  return s;
}

struct Spec {
  Red op;
  Shape shape;
  std::vector<int64_t> dims;  // one axis for max / argmax; empty: all
  DType dt = DType::F32;
  bool keepdim = false;
  View view = View::Contiguous;
  int64_t correction = 1;     // var only
  std::vector<int64_t> perm = {};  // applied to the input inside the op (its gradient too)
};

OpCase reduce_row(const Spec& s) {
  OpCase c;
  c.name = std::string(red_name(s.op)) + "_" + dims_tag(s.dims) + (s.keepdim ? "_keep" : "");
  if (s.op == Red::Var) c.name += "_c" + std::to_string(s.correction);
  if (!s.perm.empty()) {
    c.name += "_perm";
    for (int64_t p : s.perm) c.name += std::to_string(p);
  }
  c.inputs = {in(s.shape, s.dt, -2, 2, s.view)};
  c.fn = [s](const std::vector<Tensor>& a) {
    const Tensor x = s.perm.empty() ? a[0] : a[0].permute(s.perm);
    switch (s.op) {
      case Red::Sum: return std::vector<Tensor>{sum(x, s.dims, s.keepdim)};
      case Red::Mean: return std::vector<Tensor>{mean(x, s.dims, s.keepdim)};
      case Red::Var: return std::vector<Tensor>{var(x, s.dims, s.keepdim, s.correction)};
      case Red::Max: return std::vector<Tensor>{max(x, s.dims.at(0), s.keepdim)};
      default: return std::vector<Tensor>{argmax(x, s.dims.at(0), s.keepdim)};
    }
  };
  // The logical shape the op sees, for the element counts.
  Shape seen = s.shape;
  for (size_t i = 0; i < s.perm.size(); ++i) seen[i] = s.shape[s.perm[i]];
  const int64_t n = reduced_count(seen, s.dims);
  switch (s.op) {
    case Red::Sum:
      c.fwd = sum_tol(s.dt, n, false);
      c.bwd = kExact;  // the upstream gradient broadcast back
      break;
    case Red::Mean:
      c.fwd = sum_tol(s.dt, n, true);
      c.bwd = default_tol(s.dt);
      break;
    case Red::Var:
      c.fwd = var_tol(s.dt);
      c.bwd = default_tol(s.dt);
      // n <= correction divides by zero: inf / NaN values, nothing to difference.
      c.gradcheck = n > s.correction;
      break;
    case Red::Max:
      c.fwd = c.bwd = kExact;
      break;
    case Red::Argmax:
      c.fwd = kExact;
      c.backward = c.gradcheck = false;
      break;
  }
  return c;
}

// An integer input [rows, cols] of spread values (positive and negative, many distinct).
Input int_input(Shape shape, DType dt) {
  Input i = custom([shape, dt](uint64_t seed) {
    std::vector<int64_t> v(shape_numel(shape));
    for (size_t k = 0; k < v.size(); ++k) {
      const int64_t spread = static_cast<int64_t>((k * 7919 + seed) % 100003) - 50000;
      v[k] = dt == DType::U8 ? (spread + 50000) % 256 : spread;
    }
    return Tensor::from_vector(v, shape).to(dt);
  });
  i.shape = shape;  // for the row's name; the values come from `make`
  i.dtype = dt;
  return i;
}

OpCase int_row(Red op, Shape shape, DType dt, std::vector<int64_t> dims) {
  OpCase c;
  c.name = std::string(red_name(op)) + "_int_" + dims_tag(dims);
  c.inputs = {int_input(shape, dt)};
  c.fn = [op, dims](const std::vector<Tensor>& a) {
    if (op == Red::Sum) return std::vector<Tensor>{sum(a[0], dims)};
    if (op == Red::Max) return std::vector<Tensor>{max(a[0], dims.at(0))};
    return std::vector<Tensor>{argmax(a[0], dims.at(0))};
  };
  c.fwd = kExact;
  c.backward = c.gradcheck = false;
  return c;
}

// ---- gradient norm and clipping ------------------------------------------------------------

constexpr Tol kNormTol{0, 1e-10, 0};

// Gradients of odd sizes: one element, a few, one more than a 16384-element chunk, one exactly
// a chunk, several chunks, an empty one; f32 and bf16 side by side (and f16, f64).
std::vector<Input> gradient_inputs() {
  return {constant({1}, DType::F32),          constant({3}, DType::BF16),
          constant({385}, DType::F32),        constant({257, 385}, DType::BF16),
          constant({16384}, DType::F32),      constant({16385}, DType::F16),
          constant({40000}, DType::F64),      constant({0}, DType::F32),
          constant({7, 1537}, DType::BF16)};
}

OpCase grad_norm_row() {
  OpCase c;
  c.name = "grad_norm";
  c.inputs = gradient_inputs();
  c.fn = [](const std::vector<Tensor>& a) { return std::vector<Tensor>{optim::grad_norm(a)}; };
  c.fwd = kNormTol;
  c.backward = c.gradcheck = false;
  return c;
}

// More tensors than one launch holds (kMultiTensorPerLaunch = 512): 600 slices of odd
// lengths cut from one buffer (contiguous views at odd offsets), and the 300 rows of a
// transposed [300, 33] (strided views, copied contiguous first).
OpCase grad_norm_many_row() {
  OpCase c;
  c.name = "grad_norm_many";
  int64_t total = 0;
  for (int i = 0; i < 600; ++i) total += (i * 37) % 401 + 1;
  c.inputs = {constant({total}, DType::F32), in({300, 33}, DType::BF16, -1, 1, View::Transposed)};
  c.inputs[1].requires_grad = false;
  c.fn = [](const std::vector<Tensor>& a) {
    std::vector<Tensor> ts;
    int64_t at = 0;
    for (int i = 0; i < 600; ++i) {
      const int64_t len = (i * 37) % 401 + 1;
      ts.push_back(a[0].narrow(0, at, len));
      at += len;
    }
    for (int64_t j = 0; j < a[1].size(0); ++j) ts.push_back(a[1].select(0, j));  // stride 300
    return std::vector<Tensor>{optim::grad_norm(ts)};
  };
  c.fwd = kNormTol;
  c.backward = c.gradcheck = false;
  return c;
}

// clip_grad_norm on parameters whose .grad are the inputs: the norm, then every clipped
// gradient. max_norm 0.5 clips (the norm is ~200); 1e6 does not (the CUDA scaling then
// skips its writes, the CPU multiplies by 1: the same bits).
OpCase clip_row(double max_norm) {
  OpCase c;
  c.name = max_norm < 1 ? "clip_grad_norm_clips" : "clip_grad_norm_no_clip";
  c.inputs = gradient_inputs();
  c.fn = [max_norm](const std::vector<Tensor>& a) {
    std::vector<Tensor> params;
    for (const Tensor& g : a) {
      Tensor p = Tensor::zeros(g.shape(), TensorOptions(g.dtype(), g.device()));
      p.set_requires_grad(true);
      p.set_grad(g.detach().clone());
      params.push_back(p);
    }
    std::vector<Tensor> out{optim::clip_grad_norm(params, max_norm)};
    for (const Tensor& p : params) out.push_back(p.grad());
    return out;
  };
  // The clip factor agrees to ~1e-15; rounded to a gradient's dtype it is then the same
  // value, and each product rounds once: equal up to a rare one-ulp flip of an f32 product.
  c.fwd = {0, 1e-6, 0};
  c.backward = c.gradcheck = false;
  return c;
}

}  // namespace

VIMOE_OP_CASES(reduce) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c) {
    rows.push_back(std::move(c));
  };
  auto add_spec = [&](Spec s) { add(reduce_row(s)); };

  // tests/kernels/test_reduce.cpp's odd shapes: the row kernel (257x385 over 1, 3x1x257
  // over 2 and over its size-1 axis, 5x4099, 7x1), the column kernel (over 0: split into
  // parts; 4099x3 over 0: tiles narrower than a warp), a middle axis and the copy path
  // (2x3x5x7 over {3, 1}), small whole-tensor sums (one row) and 257x385 over all.
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  const std::vector<Case> cases = {
      {{257, 385}, {1}},  {{257, 385}, {0}}, {{257, 385}, {}},  {{3, 1, 257}, {0, 2}},
      {{3, 1, 257}, {1}}, {{3, 1, 257}, {2}}, {{5, 4099}, {1}}, {{4099, 3}, {0}},
      {{7, 1}, {1}},      {{2, 3, 5, 7}, {3, 1}}};
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& k : cases) {
      for (bool keepdim : {false, true}) {
        add_spec({Red::Sum, k.shape, k.dims, dt, keepdim});
        add_spec({Red::Mean, k.shape, k.dims, dt, keepdim});
      }
      // Length-1 rows with correction 1 divide 0 by 0 on both sides: NaN == NaN.
      for (int64_t correction : {0, 1})
        add_spec({Red::Var, k.shape, k.dims, dt, correction == 1, View::Contiguous, correction});
      if (k.dims.size() == 1)
        for (bool keepdim : {false, true}) {
          add_spec({Red::Max, k.shape, k.dims, dt, keepdim});
          add_spec({Red::Argmax, k.shape, k.dims, dt, keepdim});
        }
    }

  // More column-kernel layouts: middle axes (one, two), a long middle axis split into parts
  // with narrow tiles, a width one past a tile (the second tile has one column), and a few
  // long rows (inner = 1, split across blocks).
  const std::vector<Case> more = {{{2, 3, 5, 7}, {1}},  {{2, 3, 5, 7}, {1, 2}},
                                  {{2, 3, 5, 7}, {0, 1}}, {{3, 4099, 5}, {1}},
                                  {{4099, 33}, {0}},    {{3, 40000}, {1}}};
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& k : more) {
      add_spec({Red::Sum, k.shape, k.dims, dt});
      add_spec({Red::Mean, k.shape, k.dims, dt, true});
      add_spec({Red::Var, k.shape, k.dims, dt});
    }
  // The other floating dtypes through each path.
  for (DType dt : {DType::F16, DType::F64})
    for (const Case& k : std::vector<Case>{{{257, 385}, {0}}, {{257, 385}, {1}},
                                           {{2, 3, 5, 7}, {1, 2}}, {{257, 385}, {}},
                                           {{3, 40000}, {1}}}) {
      add_spec({Red::Sum, k.shape, k.dims, dt});
      add_spec({Red::Mean, k.shape, k.dims, dt});
      add_spec({Red::Var, k.shape, k.dims, dt});
    }

  // Whole big tensors: the grid-wide reduction (1024 parts, then one block over them).
  for (DType dt : {DType::F32, DType::BF16}) {
    add_spec({Red::Sum, {4099, 385}, {}, dt});
    add_spec({Red::Mean, {4099, 385}, {}, dt});
    add_spec({Red::Var, {4099, 385}, {}, dt});
    for (Red op : {Red::Sum, Red::Mean}) {
      OpCase c = reduce_row({op, {(int64_t(1) << 22) + 3}, {}, dt});
      c.backward = false;  // the gradient is a broadcast, checked by the smaller rows
      add(std::move(c));
    }
  }

  // Views. Transposed: [385, 257] stored as [257, 385] (reduced axis stored last: the row
  // kernel in place; stored first: the column kernel; all), and [5, 257, 3] stored as
  // [5, 3, 257] (over 0 the kept axes lie out of order and the small result is permuted; over
  // 1 rows; over 2 the middle; over {0, 1} two runs: the copy path). Permuted through the op:
  // test_reduce.cpp's [5, 257, 3].permute({2, 0, 1}).
  for (DType dt : {DType::F32, DType::BF16}) {
    for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{{0}, {1}, {}}) {
      add_spec({Red::Sum, {385, 257}, dims, dt, false, View::Transposed});
      add_spec({Red::Mean, {385, 257}, dims, dt, false, View::Transposed});
      add_spec({Red::Var, {385, 257}, dims, dt, false, View::Transposed});
    }
    for (const std::vector<int64_t>& dims :
         std::vector<std::vector<int64_t>>{{0}, {1}, {2}, {0, 1}}) {
      add_spec({Red::Sum, {5, 257, 3}, dims, dt, false, View::Transposed});
      add_spec({Red::Var, {5, 257, 3}, dims, dt, true, View::Transposed});
    }
    add_spec({Red::Max, {385, 257}, {0}, dt, false, View::Transposed});
    add_spec({Red::Argmax, {385, 257}, {1}, dt, false, View::Transposed});
  }
  add_spec({Red::Mean, {5, 257, 3}, {0, 2}, DType::F32, false, View::Contiguous, 1, {2, 0, 1}});
  add_spec({Red::Var, {5, 257, 3}, {1}, DType::F32, false, View::Contiguous, 1, {2, 0, 1}});
  add_spec({Red::Var, {5, 257, 3}, {0}, DType::F32, false, View::Contiguous, 1, {2, 0, 1}});
  add_spec({Red::Max, {5, 257, 3}, {2}, DType::F32, false, View::Contiguous, 1, {2, 0, 1}});
  add_spec({Red::Argmax, {5, 257, 3}, {0}, DType::F32, false, View::Contiguous, 1, {2, 0, 1}});
  // Broadcast (stride 0): the copy path. The gradient of the [1, 385] leaf sums the 65
  // broadcast rows' gradients (through the column kernel): a sum's tolerance.
  {
    OpCase c = reduce_row({Red::Sum, {65, 385}, {0}, DType::F32, false, View::Broadcast});
    c.bwd = sum_tol(DType::F32, 65, false);
    add(std::move(c));
  }

  // Integer inputs: i64 sums (rows, columns, whole tensor), max / argmax; exact.
  for (DType dt : {DType::I32, DType::I64, DType::U8}) {
    for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{{0}, {1}, {}})
      add(int_row(Red::Sum, {257, 385}, dt, dims));
    for (int64_t d : {0, 1}) {
      add(int_row(Red::Max, {257, 385}, dt, {d}));
      add(int_row(Red::Argmax, {257, 385}, dt, {d}));
    }
  }

  // Empty tensors: nothing to sum (0, or NaN for a mean) and nothing kept.
  for (Red op : {Red::Sum, Red::Mean})
    for (const Case& k : std::vector<Case>{{{0, 5}, {0}}, {{0, 5}, {}}, {{3, 0}, {1}}, {{3, 0}, {0}}}) {
      OpCase c = reduce_row({op, k.shape, k.dims, DType::F32});
      c.backward = c.gradcheck = false;
      add(std::move(c));
    }

  // ViT-S/14 at batch 256 (256 x 257 tokens): the bias gradients of the attention / MLP
  // output (width 384) and of the MLP hidden layer (1536), and the LayerNorm weight
  // gradient's column sum (384). The backward is a broadcast, checked by the rows above.
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t width : {384, 1536}) {
      OpCase c = reduce_row({Red::Sum, {256 * 257, width}, {0}, dt});
      c.large = true;
      c.backward = c.gradcheck = false;
      add(std::move(c));
    }

  // The gradient norm for clipping (one multi-tensor pass) and the clipping itself.
  add(grad_norm_row());
  add(grad_norm_many_row());
  add(clip_row(0.5));
  add(clip_row(1e6));
  return rows;
}

}  // namespace vimoe::parity
