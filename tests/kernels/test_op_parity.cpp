// The op-parity driver: every row of the table (tests/op_parity/op_case.h) runs on the CPU
// reference and on CUDA from the same values; every output and the gradient of every input
// that requires one must agree within the row's tolerances. One test per row, named
// OpParity/Table.<family>_<name>_<shapes>, so a single row runs with --gtest_filter.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tests/op_parity/op_case.h"
#include "tests/test_util.h"

namespace vimoe::parity {
namespace {

class Table : public ::testing::TestWithParam<size_t> {};

TEST_P(Table, CudaMatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  const OpCase& c = all_cases()[GetParam()];
  if (!c.cuda_pending.empty()) GTEST_SKIP() << c.cuda_pending;
  SCOPED_TRACE(c.describe());
  const Inputs h = make_inputs(c, Device::cpu()), d = make_inputs(c, Device::cuda());
  const std::vector<Tensor> yc = c.fn(h.args), yd = c.fn(d.args);
  ASSERT_EQ(yd.size(), yc.size()) << "the op returned different numbers of outputs";
  for (size_t j = 0; j < yc.size(); ++j) {
    if (yd[j].defined()) {
      ASSERT_TRUE(yd[j].is_cuda()) << "output " << j << " left the GPU";
    }
    EXPECT_TRUE(compare(yd[j], yc[j], c.fwd, "output " + std::to_string(j)));
  }
  if (!c.backward) return;
  backward_through(c, yc);
  backward_through(c, yd);
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!h.leaves[i].requires_grad()) continue;
    EXPECT_TRUE(compare(d.leaves[i].grad(), h.leaves[i].grad(), c.bwd,
                        "gradient of input " + std::to_string(i)));
  }
}

std::vector<size_t> all_rows() {
  std::vector<size_t> r(all_cases().size());
  for (size_t i = 0; i < r.size(); ++i) r[i] = i;
  return r;
}

// Duplicate names would stop gtest from starting; the CPU suite reports them as a failure
// (OpTable.NamesAreUnique), here they get a suffix so the other rows still run.
std::string row_name(const ::testing::TestParamInfo<size_t>& info) {
  static std::set<std::string> seen;
  std::string name = all_cases()[info.param].test_name();
  while (!seen.insert(name).second) name += "_dup";
  return name;
}

INSTANTIATE_TEST_SUITE_P(OpParity, Table, ::testing::ValuesIn(all_rows()), row_name);

}  // namespace
}  // namespace vimoe::parity
