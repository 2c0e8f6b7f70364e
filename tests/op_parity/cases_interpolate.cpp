// Bilinear resampling (align_corners=False), NCHW.
//
// Tolerances of CUDA against the CPU: both blend in the compute type with the same taps
// (kernels/interpolate_math.h); the forward is a few f32 roundings in either order, the
// backward sums each input's readers in a different order (the CPU scatters in double, CUDA
// gathers in f32), at most (ceil(out / in) + 1)^2 terms of size <= 1.
//  f32: 1e-6 absolute + 1e-5 relative forward, 1e-5 absolute backward.
//  bf16 / f16: one final rounding either side of an f32 difference: one ulp.
#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

Tol bilinear_tol(DType dt, bool backward) {
  switch (dt) {
    case DType::F64: return {1e-12, 1e-12, 0};
    case DType::F32: return {backward ? 1e-5 : 1e-6, 1e-5, 0};
    case DType::F16: return {2e-3, 2e-3, 0};
    default: return {1e-2, 1e-2, 0};
  }
}

OpCase bilinear_row(Shape x, int64_t out_h, int64_t out_w, DType dt, View view = View::Contiguous) {
  OpCase c;
  c.name = "bilinear_" + std::to_string(out_h) + "x" + std::to_string(out_w);
  c.inputs = {in(std::move(x), dt, -1, 1, view)};
  c.fn = [out_h, out_w](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{interpolate_bilinear(a[0], out_h, out_w)};
  };
  c.fwd = bilinear_tol(dt, false);
  c.bwd = bilinear_tol(dt, true);
  return c;
}

}  // namespace

VIMOE_OP_CASES(interpolate) {
  std::vector<OpCase> rows;
  for (DType dt : {DType::F32, DType::BF16}) {
    rows.push_back(bilinear_row({2, 3, 5, 7}, 11, 13, dt));               // odd upsampling, non-integer ratios
    rows.push_back(bilinear_row({1, 2, 9, 9}, 4, 6, dt));                 // downsampling
    rows.push_back(bilinear_row({2, 2, 6, 4}, 6, 4, dt));                 // the same size: a copy
    rows.push_back(bilinear_row({1, 3, 1, 1}, 5, 3, dt));                 // one pixel spread out
    rows.push_back(bilinear_row({1, 2, 4, 3}, 16, 12, dt, View::Transposed));  // 4x, through a view
  }
  // A segmentation head's real shapes: CamVid-sized logits (11 classes, a 23x30 patch grid at
  // 368x480 with patch 16) and DINOv2 at 512x512 (37x37 grid, ADE20K's 150 classes).
  for (DType dt : {DType::F32, DType::BF16}) {
    OpCase camvid = bilinear_row({2, 11, 23, 30}, 368, 480, dt);
    camvid.large = true;
    rows.push_back(std::move(camvid));
    OpCase ade = bilinear_row({2, 150, 37, 37}, 512, 512, dt);
    ade.large = true;
    rows.push_back(std::move(ade));
  }
  return rows;
}

}  // namespace vimoe::parity
