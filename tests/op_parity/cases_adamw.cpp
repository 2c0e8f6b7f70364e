// AdamW (kernels/adamw.cu): the multi-tensor update against the CPU reference
// (engine/cpu/adamw.cpp). A row runs four optimiser steps on copies of its inputs and returns
// the updated parameters and both moments; nothing is differentiated.
//
// Tolerances (carried from tests/kernels/test_adamw.cpp): f32 on both sides with the same
// operation order up to fused multiply-adds, so each step differs by a few f32 ulps of terms
// of size <= 1 (parameters in [-1, 1), lr 0.01): 1e-6 of the largest magnitude of the compared
// tensor (the old 1e-6 absolute for parameters of size ~1, and proportionally tighter for the
// ~1e-3 second moments), plus 1e-5 relative. f64: the same argument at f64's epsilon.
#include "engine/optim/adamw.h"
#include "tests/op_parity/op_case.h"

namespace vimoe::parity {
namespace {

// Two parameters in two groups (decay 0.05 at the full learning rate; none at 0.3 of it),
// n and 3 elements, after four steps whose gradients are the rows of inputs 2 and 3.
OpCase adamw_row(int64_t n, DType dt) {
  OpCase c;
  c.name = "four_steps";
  c.inputs = {constant({n}, dt), constant({3}, dt), constant({4, n}, dt), constant({4, 3}, dt)};
  c.fn = [](const std::vector<Tensor>& a) {
    Tensor h = a[0].detach().clone(), b = a[1].detach().clone();
    h.set_requires_grad(true);
    b.set_requires_grad(true);
    optim::AdamW opt({{{h}, 1.0, 0.05}, {{b}, 0.3, 0.0}}, {.lr = 0.01});
    for (int64_t step = 0; step < 4; ++step) {
      h.set_grad(a[2].select(0, step).contiguous());
      b.set_grad(a[3].select(0, step).contiguous());
      opt.step();
    }
    const auto st = opt.state_dict();
    return std::vector<Tensor>{h.detach(),           b.detach(),
                               st.at("exp_avg.0.0"), st.at("exp_avg_sq.0.0"),
                               st.at("exp_avg.1.0"), st.at("exp_avg_sq.1.0")};
  };
  c.fwd = dt == DType::F64 ? Tol{0, 1e-12, 1e-14} : Tol{0, 1e-5, 1e-6};
  c.backward = c.gradcheck = false;
  return c;
}

}  // namespace

VIMOE_OP_CASES(adamw) {
  std::vector<OpCase> rows;
  // One element, odd sizes, and one past several warps' worth (the old test's sizes).
  for (int64_t n : {1, 257, 385 * 3}) {
    rows.push_back(adamw_row(n, DType::F32));
  }
  rows.push_back(adamw_row(385, DType::F64));
  return rows;
}

}  // namespace vimoe::parity
