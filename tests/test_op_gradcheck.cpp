// The CPU half of the op-parity table (tests/op_parity/op_case.h):
//   - every small differentiable row passes the f64 finite-difference gradient check
//     (OpGradcheck/Rows.<row>), once per distinct shape and view set (a row repeated only
//     in another dtype is checked once: in f64 the rows are the same);
//   - every row runs on the CPU at small shapes, so a broken row fails here and not first on
//     a GPU host; row names are unique; every kernel family with a CUDA source file has rows.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "tests/op_parity/op_case.h"
#include "tests/test_util.h"

namespace vimoe::parity {
namespace {

// The row without its dtypes: what the f64 gradient check actually sees.
std::string gradcheck_key(const OpCase& c) {
  std::string key = c.family + "." + c.name;
  for (const Input& in : c.inputs)
    key += "|" + shape_str(in.shape) + view_name(in.view) + (in.make ? "custom" : "");
  return key;
}

bool has_grad_input(const OpCase& c) {
  for (const Input& in : c.inputs)
    if (in.requires_grad && (in.make || is_floating(in.dtype))) return true;
  return false;
}

std::vector<size_t> gradcheck_rows() {
  std::vector<size_t> rows;
  std::set<std::string> seen;
  const auto& cases = all_cases();
  for (size_t i = 0; i < cases.size(); ++i) {
    const OpCase& c = cases[i];
    if (!c.backward || !c.gradcheck || c.large || c.input_numel() > kGradcheckMaxNumel ||
        !has_grad_input(c))
      continue;
    if (seen.insert(gradcheck_key(c)).second) rows.push_back(i);
  }
  return rows;
}

class Rows : public ::testing::TestWithParam<size_t> {};

TEST_P(Rows, FiniteDifferencesMatchAutograd) {
  const OpCase& c = all_cases()[GetParam()];
  SCOPED_TRACE(c.describe());
  const Inputs x = make_inputs(c, Device::cpu(), /*f64=*/true);
  // gradcheck perturbs contiguous f64 leaves; the others (indices, constants) ride along.
  std::vector<size_t> perturbed;
  std::vector<Tensor> leaves;
  for (size_t i = 0; i < x.leaves.size(); ++i)
    if (x.leaves[i].requires_grad()) {
      perturbed.push_back(i);
      leaves.push_back(x.leaves[i]);
    }
  ASSERT_FALSE(leaves.empty());
  auto f = [&](const std::vector<Tensor>& ls) {
    std::vector<Tensor> all = x.leaves;
    for (size_t j = 0; j < perturbed.size(); ++j) all[perturbed[j]] = ls[j];
    std::vector<Tensor> flat;
    for (const Tensor& y : c.fn(view_args(c, all)))
      if (y.defined() && is_floating(y.dtype())) flat.push_back(y.to(DType::F64).reshape({-1}));
    return flat.size() == 1 ? flat[0] : concat(flat, 0);
  };
  EXPECT_TRUE(::vimoe::testing::grad_ok(f, leaves, c.grad_atol, c.grad_rtol));
}

std::string row_name(const ::testing::TestParamInfo<size_t>& info) {
  static std::set<std::string> seen;
  std::string name = all_cases()[info.param].test_name();
  while (!seen.insert(name).second) name += "_dup";
  return name;
}

INSTANTIATE_TEST_SUITE_P(OpGradcheck, Rows, ::testing::ValuesIn(gradcheck_rows()), row_name);

TEST(OpTable, NamesAreUnique) {
  std::map<std::string, int> count;
  for (const OpCase& c : all_cases()) ++count[c.test_name()];
  for (const auto& [name, n] : count) EXPECT_EQ(n, 1) << name << " names " << n << " rows";
}

// A row that throws on the CPU or returns nothing would only be found on a GPU host.
TEST(OpTable, EverySmallRowRunsOnTheCpu) {
  int ran = 0;
  for (const OpCase& c : all_cases()) {
    if (c.large || c.input_numel() > (1 << 16)) continue;
    SCOPED_TRACE(c.describe());
    const Inputs x = make_inputs(c, Device::cpu());
    std::vector<Tensor> y;
    ASSERT_NO_THROW(y = c.fn(x.args));
    EXPECT_FALSE(y.empty());
    if (c.backward) {
      ASSERT_NO_THROW(backward_through(c, y));
      bool any = false;
      for (const Tensor& l : x.leaves) any |= l.requires_grad() && l.grad().defined();
      EXPECT_TRUE(any) << "a backward row whose inputs receive no gradient";
    }
    ++ran;
  }
  EXPECT_GT(ran, 0);
}

// The families are the CUDA source files' names (kernels/<family>.cu); a few files serve an
// op family named after the op instead.
TEST(OpTable, EveryCudaKernelFamilyHasRows) {
  const std::map<std::string, std::string> family_of = {{"gemm", "linalg"},
                                                        {"multi_tensor", "reduce"}};
  std::set<std::string> have;
  for (const std::string& f : families()) have.insert(f);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(VIMOE_SOURCE_DIR "/kernels")) {
    if (e.path().extension() != ".cu") continue;
    ++files;
    const std::string stem = e.path().stem().string();
    const auto alias = family_of.find(stem);
    const std::string family = alias == family_of.end() ? stem : alias->second;
    EXPECT_TRUE(have.count(family)) << "kernels/" << stem << ".cu has no rows in the op-parity "
                                    << "table (family '" << family << "')";
  }
  EXPECT_GT(files, 0);
}

// A row waiting for its CUDA path says so only while its family has no CUDA source file.
TEST(OpTable, CudaPendingOnlyWithoutAKernelFile) {
  for (const OpCase& c : all_cases()) {
    if (c.cuda_pending.empty()) continue;
    EXPECT_FALSE(std::filesystem::exists(VIMOE_SOURCE_DIR "/kernels/" + c.family + ".cu"))
        << c.describe() << " is marked cuda_pending, but kernels/" << c.family << ".cu exists";
  }
}

// Each row's large flag and name agree, so memory checkers can filter on the name.
TEST(OpTable, LargeRowsAreNamedSo) {
  for (const OpCase& c : all_cases())
    EXPECT_EQ(c.large, c.test_name().find("Large") != std::string::npos) << c.describe();
}

// The comparison names the worst element by its index, and NaN must meet NaN.
TEST(OpTable, CompareReportsTheWorstElement) {
  const Tensor ref = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor got = ref.clone();
  EXPECT_TRUE(compare(got, ref, kExact, "y"));
  got.data<double>()[1] = 2.5;
  got.data<double>()[4] = 5.0001;
  const ::testing::AssertionResult r = compare(got, ref, Tol{1e-3, 0, 0}, "y");
  ASSERT_FALSE(r);
  const std::string msg = r.message();
  EXPECT_NE(msg.find("1 of 6"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[0, 1]"), std::string::npos) << msg;
  EXPECT_TRUE(compare(got, ref, Tol{0, 0, 0.1}, "y")) << "0.1 x max|ref| = 0.6 covers 0.5";
  got.data<double>()[0] = NAN;
  EXPECT_FALSE(compare(got, ref, Tol{1, 1, 1}, "y"));
  Tensor ref_nan = ref.clone();
  ref_nan.data<double>()[0] = NAN;
  EXPECT_TRUE(compare(got, ref_nan, Tol{1, 1, 1}, "y"));
  EXPECT_FALSE(compare(got.to(DType::F32), ref_nan, Tol{1, 1, 1}, "y")) << "dtypes differ";
}

// Views change the layout an op sees, never the values: the same row gives the same
// arguments as its contiguous twin.
TEST(OpTable, ViewsKeepTheValues) {
  OpCase base;
  base.family = "test";
  base.name = "views";
  base.seed = 7;
  base.fn = [](const std::vector<Tensor>& a) { return a; };
  for (View v : {View::Transposed, View::Misaligned, View::Broadcast}) {
    SCOPED_TRACE(view_name(v));
    OpCase viewed = base, plain = base;
    viewed.inputs = {in({4, 5}, DType::F32, -1, 1, v)};
    plain.inputs = {in({v == View::Broadcast ? 1 : 4, 5})};
    const Tensor a = make_inputs(viewed, Device::cpu()).args[0];
    const Tensor b = make_inputs(plain, Device::cpu()).args[0];
    EXPECT_EQ(a.shape(), (Shape{4, 5}));
    EXPECT_TRUE(compare(a, v == View::Broadcast ? b.expand({4, 5}) : b, kExact, "values"));
    if (v == View::Misaligned) {
      EXPECT_NE(reinterpret_cast<uintptr_t>(a.data_ptr()) % 16, 0u) << "not misaligned";
    } else {
      EXPECT_FALSE(a.is_contiguous());
    }
  }
}

}  // namespace
}  // namespace vimoe::parity
