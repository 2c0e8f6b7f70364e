// The op-parity table: every op with a CUDA path is one or more rows here, in the manner of
// ggml's test-backend-ops. A row names the op, builds its inputs (shape, dtype, value range,
// view), says how to call it and how close CUDA must come to the CPU reference. Two drivers
// read the table:
//   - tests/kernels/test_op_parity.cpp (label gpu) runs every row on the CPU and on CUDA from
//     the same values and compares every output and the gradient of every input that
//     requires one, for one fixed upstream gradient per output;
//   - tests/test_op_gradcheck.cpp (label cpu) runs the f64 finite-difference gradient check
//     on the CPU for every small differentiable row.
// A failure names the row, the output or gradient, its shape and dtype, and the worst
// element with its index.
//
// Rows live in one file per op family (tests/op_parity/cases_<family>.cpp) and register
// themselves with VIMOE_OP_CASES; adding an op's GPU test is adding a row there.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace vimoe::parity {

// |cuda - cpu| <= atol + scaled * M + rtol * |cpu| elementwise, M the largest finite
// magnitude of the CPU result. `scaled` suits sums and products, whose rounding error grows
// with the size of the whole result rather than of each element. NaN must meet NaN.
struct Tol {
  double atol = 0;
  double rtol = 0;
  double scaled = 0;
};
inline constexpr Tol kExact{};
// Defaults for results that are short f32 computations (a few roundings) or one final
// rounding of a wider result to a half type.
Tol default_tol(DType dt);

// How an input is laid out on both devices. The values are the same whatever the view.
enum class View {
  Contiguous,
  Transposed,  // stored with its last two dims swapped, seen through transpose(-1, -2)
  Misaligned,  // contiguous, but one element past the allocation's (aligned) start
  Broadcast,   // a stride-0 expansion of a tensor whose first dim has size 1
};
const char* view_name(View v);

struct Input {
  Shape shape;
  DType dtype = DType::F32;
  double lo = -1, hi = 1;  // values uniform in [lo, hi) (integers: floored)
  View view = View::Contiguous;
  bool requires_grad = true;  // ignored for integer dtypes
  // Builds the host values itself (index tensors, expert ids, ties) instead of the uniform
  // fill; receives the row's seed for this input. The result is laid out by `view`.
  std::function<Tensor(uint64_t seed)> make;
};

// The rows' own pseudo-random numbers (splitmix64), for inputs a row builds itself (expert
// ids, router logits): never the engine's random ops, which are under test.
struct CaseRng {
  uint64_t s;
  explicit CaseRng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) / 9007199254740992.0; }  // [0, 1)
  int64_t below(int64_t n) { return static_cast<int64_t>(uniform() * static_cast<double>(n)); }
};

// A floating input uniform in [lo, hi).
Input in(Shape shape, DType dtype = DType::F32, double lo = -1, double hi = 1,
         View view = View::Contiguous);
// An input that gets no gradient (masks, index tensors given by `make`, constants).
Input constant(Shape shape, DType dtype = DType::F32, double lo = -1, double hi = 1);
// An integer input from `make`.
Input custom(std::function<Tensor(uint64_t seed)> make, bool requires_grad = false);

using OpFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

struct OpCase {
  std::string family;  // the kernel family (file name in kernels/): "reduce", "attention"
  std::string name;    // unique within the family; shapes and dtype are appended
  std::vector<Input> inputs;
  OpFn fn;  // the op under test: its outputs (non-floating outputs are compared, never
            // differentiated)
  Tol fwd, bwd;
  bool backward = true;   // compare input gradients
  bool gradcheck = true;  // f64 finite differences on the CPU (small rows only, see below)
  double grad_atol = 1e-6, grad_rtol = 1e-4;
  // The inputs' values derive from it. The table sets it to the row's position in its family
  // (from 1), so row files need not number their rows.
  uint64_t seed = 1;
  // A row whose shapes are a real model's training sizes (ViT-S/14, ConvNeXt-T). Its name
  // carries "Large" so that runs that must stay short (memory checkers) can filter it out.
  bool large = false;
  // Set while the op has no CUDA path yet: why, as the GPU driver's skip message says. The
  // CPU suite checks that no kernels/<family>.cu exists for such a row, so the flag goes when
  // the CUDA path comes.
  std::string cuda_pending;

  // "family.name[shape dtype view, ...]" as printed in failures.
  std::string describe() const;
  // `describe()` reduced to [A-Za-z0-9_] for a test name.
  std::string test_name() const;
  // Total number of input elements.
  int64_t input_numel() const;
};

// Rows with at most this many input elements in all get the f64 gradient check.
inline constexpr int64_t kGradcheckMaxNumel = 2048;

// Every registered row, in family then registration order.
const std::vector<OpCase>& all_cases();
// The families present in the table.
std::vector<std::string> families();

// Registers the rows one family file returns; use through VIMOE_OP_CASES.
struct Registrar {
  Registrar(const char* family, std::vector<OpCase> (*make)());
};

// Builds the input tensors of a row on `device`: leaves holding the row's values in the
// row's layout. `f64` turns floating inputs to f64 first (for gradcheck). The returned
// `leaves` are the storage owners whose .grad() a driver compares; `args` are what the op
// receives (the views).
struct Inputs {
  std::vector<Tensor> leaves, args;
};
Inputs make_inputs(const OpCase& c, Device device, bool f64 = false);
// The op's arguments from (possibly replaced) leaves: each leaf seen through its view.
std::vector<Tensor> view_args(const OpCase& c, const std::vector<Tensor>& leaves);

// Back-propagates the row's fixed upstream gradients (uniform in [-1, 1), the output's dtype,
// the same values on every device) from every floating output that requires grad.
void backward_through(const OpCase& c, const std::vector<Tensor>& outputs);

// Compares a CUDA result with the CPU's: same shape and dtype, values within tol; on failure
// reports `what`, the shape, dtype and the worst element with its multi-index.
::testing::AssertionResult compare(const Tensor& cuda, const Tensor& cpu, Tol tol,
                                   const std::string& what);

}  // namespace vimoe::parity

// Defines the row-building function of one family file and registers it:
//   VIMOE_OP_CASES(gelu) { std::vector<OpCase> rows; ...; return rows; }
#define VIMOE_OP_CASES(family)                                                            \
  static std::vector<::vimoe::parity::OpCase> vimoe_op_cases_##family();                  \
  static const ::vimoe::parity::Registrar vimoe_op_registrar_##family(#family,             \
                                                                      &vimoe_op_cases_##family); \
  static std::vector<::vimoe::parity::OpCase> vimoe_op_cases_##family()
