// Strided copies, conversions and fill (kernels/copy.cu): contiguous() and clone() of views,
// to(dtype), permute(...).contiguous() (the attention head split among them), narrow and
// slice copies, copy_ into strided destinations, and fill_ of views.
//
// Paths: a same-dtype copy moves bytes, in units of up to 16 bytes where both layouts allow
// (the qkv split's rows of 64 bf16 move as 8 units of 16 bytes; a narrow of [65, 384] that
// starts at column 0 moves 2-d in units); a misaligned or odd-width layout moves one element
// at a time; conversions go element by element through the strided kernel.
//
// Tolerances: every row is exact. A copy moves bits; a conversion is one rounding of the
// same value through double on both sides (kernels/dispatch.cuh and engine/dtype.h state the
// same conversions); a fill stores one value converted on the host. Conversions to integer
// types keep values in the target's range (a float outside it converts to an undefined
// value in C++ and saturates on the GPU), so f16 sources stay finite there.
#include <string>

#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

const DType kAllTypes[] = {DType::F32, DType::F64, DType::BF16, DType::F16,
                           DType::I32, DType::I64, DType::U8};

using Fn = std::function<Tensor(const Tensor&)>;

// One input through `fn`; the gradient flows back through the copy for floating inputs.
OpCase copy_row(const std::string& name, Input input, Fn fn) {
  OpCase c;
  c.name = name;
  const bool floating = is_floating(input.dtype);
  c.inputs = {std::move(input)};
  c.fn = [fn](const std::vector<Tensor>& a) { return std::vector<Tensor>{fn(a[0])}; };
  c.fwd = c.bwd = kExact;
  c.backward = floating;
  return c;
}

// Values that every dtype holds exactly, with room for u8.
Input values(Shape shape, DType dt, View view = View::Contiguous) {
  return in(std::move(shape), dt, 0, 100, view);
}

Fn permuted(std::vector<int64_t> dims) {
  return [dims](const Tensor& x) { return x.permute(dims).contiguous(); };
}

// A fresh zero destination of `dt` on x's device, written through `view` by `write`.
OpCase into_row(const std::string& name, Input src, Shape dst_shape, DType dt,
                std::function<void(Tensor& dst, const Tensor& src)> write) {
  OpCase c;
  c.name = name;
  c.inputs = {std::move(src)};
  c.fn = [dst_shape, dt, write](const std::vector<Tensor>& a) {
    Tensor dst = Tensor::zeros(dst_shape, TensorOptions(dt, a[0].device()));
    write(dst, a[0]);
    return std::vector<Tensor>{dst};
  };
  c.fwd = kExact;
  c.backward = false;  // copy_ and fill_ are not recorded
  return c;
}

}  // namespace

VIMOE_OP_CASES(copy) {
  std::vector<OpCase> rows;
  auto add = [&](OpCase c) {
    rows.push_back(std::move(c));
  };

  // ---- contiguous() / clone() of views ---------------------------------------------------
  const Fn contiguous = [](const Tensor& x) { return x.contiguous(); };
  const Fn clone = [](const Tensor& x) { return x.clone(); };
  for (DType dt : kAllTypes) {
    add(copy_row("contiguous", values({3, 257}, dt, View::Transposed), contiguous));
    add(copy_row("contiguous", values({385, 3}, dt, View::Transposed), contiguous));
    {
      // The gradient of a broadcast sums 257 rows: the reduction kernel's f32 tree order
      // against the CPU's double sum, then one rounding to the dtype.
      OpCase c = copy_row("contiguous", values({257, 384}, dt, View::Broadcast), contiguous);
      c.bwd = dt == DType::F64 ? Tol{1e-10, 1e-10, 0}
              : dt == DType::F32 ? Tol{1e-4, 1e-4, 0} : Tol{2e-2, 2e-2, 0};
      add(std::move(c));
    }
    add(copy_row("clone", values({771}, dt), clone));
    add(copy_row("clone", values({771}, dt, View::Misaligned), clone));
    add(copy_row("clone", values({1025, 1031}, dt), clone));
    // permute(...).contiguous(): 3-d, 4-d, the [B, H, T, hd] <-> [B, T, H, hd] swap of
    // attention (rows of hd contiguous on both sides) and the qkv split [B, T, 3, H, hd] ->
    // [3, B, H, T, hd].
    add(copy_row("permute201", values({3, 257, 5}, dt), permuted({2, 0, 1})));
    add(copy_row("permute3102", values({2, 3, 5, 7}, dt), permuted({3, 1, 0, 2})));
    add(copy_row("permute0213", values({2, 5, 3, 64}, dt), permuted({0, 2, 1, 3})));
    add(copy_row("qkv_split", values({2, 7, 3, 2, 8}, dt), permuted({2, 0, 3, 1, 4})));
    // narrow / slice / select + expand copies.
    add(copy_row("narrow", values({3, 257}, dt),
                 [](const Tensor& x) { return x.narrow(1, 1, 200).contiguous(); }));
    add(copy_row("narrow0", values({65, 384}, dt),
                 [](const Tensor& x) { return x.narrow(1, 0, 256).contiguous(); }));
    add(copy_row("narrow1", values({65, 384}, dt),
                 [](const Tensor& x) { return x.narrow(1, 1, 256).contiguous(); }));
    add(copy_row("slice_step7", values({3, 257}, dt),
                 [](const Tensor& x) { return x.slice(1, 3, 257, 7).contiguous(); }));
    add(copy_row("select_expand", values({3, 257, 5}, dt),
                 [](const Tensor& x) { return x.select(2, 4).expand({2, 3, 257}).contiguous(); }));
  }
  for (DType dt : {DType::F32, DType::BF16})
    add(copy_row("qkv_split", values({4, 17, 3, 6, 64}, dt), permuted({2, 0, 3, 1, 4})));

  // ---- to(dtype) ------------------------------------------------------------------------
  for (DType from : kAllTypes)
    for (DType to : kAllTypes) {
      if (from == to) continue;
      // f16 overflows to inf beyond 65504 (both sides agree); integer targets get values
      // in range.
      double lo = is_floating(from) && is_floating(to) ? -70000 : -60000, hi = -lo;
      if (to == DType::U8 || from == DType::U8) lo = 0, hi = 255;  // 255 rounds to itself
      for (View v : {View::Contiguous, View::Transposed}) {
        OpCase c = copy_row(std::string("to_") + dtype_name(to), in({385, 3}, from, lo, hi, v),
                            [to](const Tensor& x) { return x.to(to); });
        c.backward = is_floating(from) && is_floating(to);
        c.gradcheck = false;  // rounding to the target makes finite differences meaningless
        add(std::move(c));
      }
    }

  // ---- copy_ into strided destinations ---------------------------------------------------
  for (DType dt : {DType::F32, DType::BF16, DType::I64, DType::U8}) {
    add(into_row("copy_into_t", values({3, 257}, dt), {257, 3}, dt,
                 [](Tensor& d, const Tensor& s) { d.t().copy_(s); }));
    add(into_row("copy_into_t", values({257}, dt), {257, 3}, dt,  // broadcast source
                 [](Tensor& d, const Tensor& s) { d.t().copy_(s); }));
    add(into_row("copy_into_narrow", values({65, 256}, dt), {65, 384}, dt,
                 [](Tensor& d, const Tensor& s) { d.narrow(1, 1, 256).copy_(s); }));
    add(into_row("copy_into_narrow0", values({65, 256}, dt), {65, 384}, dt,
                 [](Tensor& d, const Tensor& s) { d.narrow(1, 0, 256).copy_(s); }));
    add(into_row("copy_into_step2", values({128, 3}, dt), {257, 3}, dt,
                 [](Tensor& d, const Tensor& s) { d.slice(0, 1, 257, 2).copy_(s); }));
  }
  // With a conversion on the way.
  add(into_row("copy_into_t_bf16", values({3, 257}, DType::F32), {257, 3}, DType::BF16,
               [](Tensor& d, const Tensor& s) { d.t().copy_(s); }));
  add(into_row("copy_into_t_f32", values({3, 257}, DType::BF16), {257, 3}, DType::F32,
               [](Tensor& d, const Tensor& s) { d.t().copy_(s); }));

  // ---- fill_ ---------------------------------------------------------------------------
  // The input only names the device; the values are exact in every dtype (u8 included).
  for (DType dt : kAllTypes) {
    const double v = is_floating(dt) ? -3.75 : 7;
    add(into_row("fill_step2", constant({1}, dt, 0, 1), {257, 3}, dt,
                 [v](Tensor& d, const Tensor&) { d.slice(0, 1, 257, 2).fill_(v); }));
    add(into_row("fill", constant({1}, dt, 0, 1), {771}, dt, [v](Tensor& d, const Tensor&) { d.fill_(v); }));
    add(into_row("fill_misaligned", constant({1}, dt, 0, 1), {772}, dt,
                 [v](Tensor& d, const Tensor&) { d.narrow(0, 1, 771).fill_(v); }));
    add(into_row("fill_t", constant({1}, dt, 0, 1), {257, 3}, dt,
                 [v](Tensor& d, const Tensor&) { d.t().fill_(v); }));
    add(into_row("fill_narrow0", constant({1}, dt, 0, 1), {65, 384}, dt,
                 [v](Tensor& d, const Tensor&) { d.narrow(1, 0, 256).fill_(v); }));
    add(into_row("fill_narrow1", constant({1}, dt, 0, 1), {65, 384}, dt,
                 [v](Tensor& d, const Tensor&) { d.narrow(1, 1, 255).fill_(v); }));
  }

  // ---- ViT-S/14 ------------------------------------------------------------------------
  // The qkv split at batch 256: [256, 257, 3, 6, 64] -> [3, 256, 6, 257, 64]; its gradient
  // is the inverse permutation copy.
  for (DType dt : {DType::BF16, DType::F32}) {
    OpCase c = copy_row("qkv_split", in({256, 257, 3, 6, 64}, dt), permuted({2, 0, 3, 1, 4}));
    c.large = true;
    add(std::move(c));
  }
  return rows;
}

}  // namespace vimoe::parity
