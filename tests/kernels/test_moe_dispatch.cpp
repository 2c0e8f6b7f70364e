// Expert dispatch on the GPU beyond the op-parity rows (tests/op_parity/cases_moe_dispatch.cpp,
// which compare the plan, dispatch_rows, combine_rows and grouped_linear with the CPU, forward
// and backward, on odd and ViT-S/14 shapes): the GPU plan's own check of the expert ids.
#include <gtest/gtest.h>

#include "engine/ops/moe_dispatch.h"
#include "tests/test_util.h"

using namespace vimoe;

// The CPU names the first bad slot; the GPU sort counts the ids outside [0, experts) (above
// and below) and the front-end reports how many.
TEST(MoeDispatchCuda, PlanRejectsIdsOutsideTheExperts) {
  VIMOE_REQUIRE_GPU();
  const Tensor bad = Tensor::from_vector<int32_t>({0, 9}, {2, 1}).cuda();
  EXPECT_VIMOE_ERROR(plan_dispatch(bad, 8), "plan_dispatch", "outside [0, 8)");
  const Tensor both = Tensor::from_vector<int32_t>({-1, 3, 8, 2}, {2, 2}).cuda();
  EXPECT_VIMOE_ERROR(plan_dispatch(both, 8), "plan_dispatch", "2 expert ids", "outside [0, 8)");
}
