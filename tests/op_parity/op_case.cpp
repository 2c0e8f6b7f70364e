#include "tests/op_parity/op_case.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <utility>

namespace vimoe::parity {

namespace {

struct Family {
  std::string name;
  std::vector<OpCase> (*make)();
};

std::vector<Family>& registry() {
  static std::vector<Family> r;
  return r;
}

std::string shape_tag(const Shape& s) {
  if (s.empty()) return "0d";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}

const char* view_tag(View v) {
  switch (v) {
    case View::Transposed: return "T";
    case View::Misaligned: return "M";
    case View::Broadcast: return "B";
    default: return "";
  }
}

// The shape the values are generated at: a broadcast input holds one slice of dim 0.
Shape value_shape(const Input& in) {
  Shape s = in.shape;
  if (in.view == View::Broadcast && !s.empty()) s[0] = 1;
  return s;
}

uint64_t input_seed(const OpCase& c, size_t i) { return c.seed * 1000 + 7 * i + 1; }

// Deterministic host values in [lo, hi) through a small LCG of the row's seed (the tests
// must not depend on the engine's own random ops); integers are floored.
Tensor uniform_values(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype) {
  std::vector<double> v(shape_numel(shape));
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (double& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = lo + (hi - lo) * static_cast<double>(s >> 11) / 9007199254740992.0;
    if (!is_floating(dtype)) x = std::floor(x);
  }
  return Tensor::from_vector(v, shape).to(dtype);
}

// The values an input holds, on the CPU, in its logical (pre-view) shape.
Tensor host_values(const OpCase& c, size_t i) {
  const Input& in = c.inputs[i];
  if (in.make) return in.make(input_seed(c, i)).detach();
  return uniform_values(value_shape(in), input_seed(c, i), in.lo, in.hi, in.dtype);
}

// The storage a view reads `values` through: transposed or offset storage holds the same
// logical values at other places.
Tensor storage_for(const Input& in, const Tensor& values) {
  switch (in.view) {
    case View::Transposed:
      return values.dim() >= 2 ? values.transpose(-1, -2).contiguous() : values.clone();
    case View::Misaligned: {
      Tensor flat = Tensor::zeros({values.numel() + 1}, TensorOptions(values.dtype()));
      flat.narrow(0, 1, values.numel()).copy_(values.reshape({values.numel()}));
      return flat;
    }
    default:
      return values.clone();
  }
}

// The argument an op receives from a leaf: the leaf seen through the input's view.
Tensor apply_view(const Input& in, const Tensor& leaf, const Shape& logical) {
  switch (in.view) {
    case View::Transposed:
      return leaf.dim() >= 2 ? leaf.transpose(-1, -2) : leaf;
    case View::Misaligned:
      return leaf.narrow(0, 1, leaf.numel() - 1).view(logical);
    case View::Broadcast:
      return leaf.expand(in.shape);
    default:
      return leaf;
  }
}

bool wants_grad(const Input& in, const Tensor& values) {
  return in.requires_grad && is_floating(values.dtype());
}

bool differentiable(const Tensor& t) { return t.defined() && t.requires_grad(); }

std::vector<int64_t> unravel(int64_t i, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
  return idx;
}

}  // namespace

Tol default_tol(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-12, 1e-12, 0};
    case DType::BF16: return {1e-3, 1.0 / 64, 2e-3};  // one bf16 rounding each side
    case DType::F16: return {1e-4, 1.0 / 256, 2e-4};
    default: return {1e-6, 1e-5, 1e-5};  // f32 accumulation against the CPU's double
  }
}

const char* view_name(View v) {
  switch (v) {
    case View::Transposed: return "transposed";
    case View::Misaligned: return "misaligned";
    case View::Broadcast: return "broadcast";
    default: return "contiguous";
  }
}

Input in(Shape shape, DType dtype, double lo, double hi, View view) {
  Input i;
  i.shape = std::move(shape);
  i.dtype = dtype;
  i.lo = lo;
  i.hi = hi;
  i.view = view;
  return i;
}

Input constant(Shape shape, DType dtype, double lo, double hi) {
  Input i = in(std::move(shape), dtype, lo, hi);
  i.requires_grad = false;
  return i;
}

Input custom(std::function<Tensor(uint64_t seed)> make, bool requires_grad) {
  Input i;
  i.make = std::move(make);
  i.requires_grad = requires_grad;
  return i;
}

std::string OpCase::describe() const {
  std::ostringstream os;
  os << family << "." << name << "[";
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    if (i) os << ", ";
    os << (in.shape.empty() && in.make ? "custom" : shape_tag(in.shape));
    if (!in.make || !in.shape.empty()) os << " " << dtype_name(in.dtype);
    if (in.view != View::Contiguous) os << " " << view_name(in.view);
  }
  os << "]";
  return os.str();
}

std::string OpCase::test_name() const {
  std::string raw = family + "_" + name;
  for (const Input& in : inputs) {
    raw += '_';
    raw += in.shape.empty() && in.make ? std::string("custom") : shape_tag(in.shape);
    if (!in.make || !in.shape.empty()) raw += dtype_name(in.dtype);
    raw += view_tag(in.view);
  }
  if (large) raw += "_Large";
  std::string out;
  for (char ch : raw) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (ok) out += ch;
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

int64_t OpCase::input_numel() const {
  int64_t n = 0;
  for (const Input& in : inputs) n += shape_numel(in.shape);
  return n;
}

Registrar::Registrar(const char* family, std::vector<OpCase> (*make)()) {
  registry().push_back({family, make});
}

const std::vector<OpCase>& all_cases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<Family> fams = registry();
    // Link order decides registration order; sort so the table reads the same everywhere.
    std::stable_sort(fams.begin(), fams.end(),
                     [](const Family& a, const Family& b) { return a.name < b.name; });
    std::vector<OpCase> out;
    for (const Family& f : fams) {
      uint64_t position = 1;
      for (OpCase c : f.make()) {
        if (c.family.empty()) c.family = f.name;
        c.seed = position++;  // distinct values per row, fixed by the row's place in its file
        out.push_back(std::move(c));
      }
    }
    return out;
  }();
  return cases;
}

std::vector<std::string> families() {
  std::vector<std::string> out;
  for (const OpCase& c : all_cases())
    if (std::find(out.begin(), out.end(), c.family) == out.end()) out.push_back(c.family);
  return out;
}

Inputs make_inputs(const OpCase& c, Device device, bool f64) {
  Inputs r;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Input& in = c.inputs[i];
    Tensor values = host_values(c, i);
    if (f64 && is_floating(values.dtype())) values = values.to(DType::F64);
    Tensor leaf = storage_for(in, values).to(device).detach();
    if (wants_grad(in, values)) leaf.set_requires_grad(true);
    r.args.push_back(apply_view(in, leaf, values.shape()));
    r.leaves.push_back(leaf);
  }
  return r;
}

std::vector<Tensor> view_args(const OpCase& c, const std::vector<Tensor>& leaves) {
  std::vector<Tensor> args;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Input& in = c.inputs[i];
    Shape logical = in.shape;
    if (in.view == View::Misaligned && logical.empty()) logical = {leaves[i].numel() - 1};
    args.push_back(apply_view(in, leaves[i], logical));
  }
  return args;
}

namespace {
Tensor upstream_gradient(const OpCase& c, size_t output, const Tensor& like) {
  return uniform_values(like.shape(), c.seed * 1000 + 500 + output, -1, 1, like.dtype());
}
}  // namespace

void backward_through(const OpCase& c, const std::vector<Tensor>& outputs) {
  std::vector<size_t> diff;
  for (size_t j = 0; j < outputs.size(); ++j)
    if (differentiable(outputs[j]) && is_floating(outputs[j].dtype())) diff.push_back(j);
  if (diff.empty()) return;
  const Device dev = outputs[diff[0]].device();
  if (diff.size() == 1) {
    outputs[diff[0]].backward(upstream_gradient(c, diff[0], outputs[diff[0]]).to(dev));
    return;
  }
  // Several outputs: L = sum_j sum(y_j * g_j), whose gradient with respect to y_j is g_j.
  Tensor loss;
  for (size_t j : diff) {
    const Tensor term =
        sum(mul(outputs[j], upstream_gradient(c, j, outputs[j]).to(dev))).to(DType::F64);
    loss = loss.defined() ? add(loss, term) : term;
  }
  loss.backward();
}

::testing::AssertionResult compare(const Tensor& cuda, const Tensor& cpu, Tol tol,
                                   const std::string& what) {
  if (!cuda.defined() || !cpu.defined()) {
    if (cuda.defined() == cpu.defined()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << what << ": defined on " << (cuda.defined() ? "CUDA" : "the CPU") << " only";
  }
  if (cuda.shape() != cpu.shape() || cuda.dtype() != cpu.dtype())
    return ::testing::AssertionFailure()
           << what << ": CUDA gives " << shape_str(cuda.shape()) << " " << dtype_name(cuda.dtype())
           << ", the CPU " << shape_str(cpu.shape()) << " " << dtype_name(cpu.dtype());
  const std::vector<double> a = cuda.to_vector<double>(), b = cpu.to_vector<double>();
  double m = 0;
  for (double v : b)
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  double worst = -1;
  int64_t worst_i = -1, failures = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]))) continue;
    const double err = std::fabs(a[i] - b[i]);
    const double bound = tol.atol + tol.scaled * m + tol.rtol * std::fabs(b[i]);
    if (std::isnan(err) || err > bound) {
      ++failures;
      const double excess = std::isnan(err) ? INFINITY : err - bound;
      if (excess > worst) {
        worst = excess;
        worst_i = static_cast<int64_t>(i);
      }
    }
  }
  if (worst_i < 0) return ::testing::AssertionSuccess();
  std::ostringstream idx;
  const std::vector<int64_t> at = unravel(worst_i, cpu.shape());
  for (size_t d = 0; d < at.size(); ++d) idx << (d ? ", " : "") << at[d];
  return ::testing::AssertionFailure()
         << what << " " << shape_str(cpu.shape()) << " " << dtype_name(cpu.dtype()) << ": "
         << failures << " of " << a.size() << " elements out of tolerance; worst at [" << idx.str()
         << "]: CUDA " << a[worst_i] << ", CPU " << b[worst_i] << " (|diff| "
         << std::fabs(a[worst_i] - b[worst_i]) << "; atol " << tol.atol << ", rtol " << tol.rtol
         << ", scaled " << tol.scaled << " x max|CPU| " << m << ")";
}

}  // namespace vimoe::parity
