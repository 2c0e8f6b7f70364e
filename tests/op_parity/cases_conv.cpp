// 2-d convolution (engine/ops/conv.h): NCHW, with and without bias, groups 1 / C (depthwise)
// / other, stride 1 and 2, padding and dilation, square and non-square kernels, and the
// ConvNeXt kinds (a 4x4 stride-4 stem, a 2x2 stride-2 downsampling, the 7x7 depthwise conv
// with padding 3) at small sizes, and ConvNeXt-T's depthwise convolutions at training size
// (batch 8: stage 1's 96 x 56 x 56 and stage 3's 384 x 14 x 14). Odd sizes throughout (H != W,
// channel counts that are not powers of two, outputs that do not tile the input evenly), so
// every border case of the index maths is met. The small rows get the f64 gradient check in
// the CPU suite.
//
// The CUDA side goes through cuDNN (kernels/conv.h), except the patchify rows, which the
// front-end runs as one GEMM on both devices.
//
// Tolerances of CUDA against the CPU (the CPU sums in double and rounds once): an output is
// a dot product of K = C_in / groups * kH * kW terms of size < 1 (values in [-1, 1)); cuDNN
// sums in f32 in an order of its choosing, an error growing like sqrt(K) ulps of the partial
// sums: K <= 1536 here, so 1e-5 absolute plus 1e-5 relative in f32. The weight gradient sums
// N * oH * oW terms, bounded with `scaled` against the largest gradient. bf16 / f16 round the
// inputs and the result: one ulp of the result on top (rtol 2^-7 / 2^-10, doubled).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops/conv.h"
#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

Tol conv_tol(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-12, 1e-12, 1e-13};
    case DType::BF16: return {1e-3, 1.0 / 64, 1e-4};
    case DType::F16: return {1e-3, 1.0 / 512, 1e-4};
    default: return {1e-5, 1e-5, 1e-5};
  }
}

struct Geometry {
  int64_t n, c_in, h, w, c_out, kh, kw, stride, pad, dil, groups;
  bool bias = true;
};

OpCase conv_row(const std::string& name, const Geometry& g, DType dt, View view = View::Contiguous) {
  OpCase c;
  c.name = name;
  c.inputs = {in({g.n, g.c_in, g.h, g.w}, dt, -1, 1, view), in({g.c_out, g.c_in / g.groups, g.kh, g.kw}, dt)};
  if (g.bias) c.inputs.push_back(in({g.c_out}, dt));
  Conv2dOptions o;
  o.stride = {g.stride, g.stride};
  o.padding = {g.pad, g.pad};
  o.dilation = {g.dil, g.dil};
  o.groups = g.groups;
  c.fn = [o](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{conv2d(a[0], a[1], a.size() > 2 ? a[2] : Tensor(), o)};
  };
  c.fwd = c.bwd = conv_tol(dt);
  return c;
}

}  // namespace

VIMOE_OP_CASES(conv) {
  std::vector<OpCase> rows;
  for (DType dt : {DType::F32, DType::BF16}) {
    rows.push_back(conv_row("dense_3x3", {2, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1}, dt));
    rows.push_back(conv_row("dense_3x3_stride2_nobias", {2, 4, 9, 8, 3, 3, 3, 2, 1, 1, 1, false}, dt));
    rows.push_back(conv_row("dense_2x3_dilated", {1, 2, 8, 9, 3, 2, 3, 1, 2, 2, 1}, dt));
    rows.push_back(conv_row("grouped_3x3", {2, 6, 5, 7, 4, 3, 3, 1, 1, 1, 2}, dt));
    rows.push_back(conv_row("depthwise_7x7", {2, 5, 9, 8, 5, 7, 7, 1, 3, 1, 5}, dt));
    rows.push_back(conv_row("depthwise_3x3_stride2", {1, 4, 7, 7, 4, 3, 3, 2, 0, 1, 4}, dt));
    rows.push_back(conv_row("patchify_4x4_stride4", {2, 3, 12, 8, 6, 4, 4, 4, 0, 1, 1}, dt));
    rows.push_back(conv_row("patchify_2x2_stride2", {2, 6, 6, 4, 9, 2, 2, 2, 0, 1, 1}, dt));
  }
  rows.push_back(conv_row("dense_3x3", {2, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1}, DType::F64));
  rows.push_back(conv_row("depthwise_7x7", {2, 5, 9, 8, 5, 7, 7, 1, 3, 1, 5}, DType::F16));
  // ConvNeXt-T at batch 8: the weight gradient sums 25,088 (stage 1) terms per element, so
  // its bound against the largest gradient is looser than the small rows'.
  for (DType dt : {DType::F32, DType::BF16}) {
    for (const auto& [name, g] : {std::pair<const char*, Geometry>{"convnext_t_stage1_dw7x7", {8, 96, 56, 56, 96, 7, 7, 1, 3, 1, 96}},
                                  {"convnext_t_stage3_dw7x7", {8, 384, 14, 14, 384, 7, 7, 1, 3, 1, 384}}}) {
      OpCase c = conv_row(name, g, dt);
      c.large = true;
      c.bwd.scaled = std::max(c.bwd.scaled, 1e-4);
      rows.push_back(c);
    }
  }
  // A transposed (non-contiguous) input is copied by the front-end first.
  rows.push_back(conv_row("dense_3x3_view", {2, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1}, DType::F32, View::Transposed));
  return rows;
}

}  // namespace vimoe::parity
