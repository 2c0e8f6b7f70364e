// The CUDA runtime plumbing that works without a GPU: the driver / runtime version rule,
// what detection reports when no device is usable, and the one entry to CUDA paths.
#include <gtest/gtest.h>

#include "engine/cuda/runtime.h"
#include "engine/ops/cuda_path.h"
#include "tests/test_util.h"

using namespace vimoe;

TEST(CudaRuntime, DriverOfTheSameMajorReleaseOrNewerRunsTheBuild) {
  EXPECT_EQ(cuda::driver_gap(13000, 13000), "");
  EXPECT_EQ(cuda::driver_gap(13000, 13020), "") << "minor-version compatibility within 13.x";
  EXPECT_EQ(cuda::driver_gap(13020, 12010), "") << "a newer driver runs an older runtime";
  EXPECT_EQ(cuda::driver_gap(0, 13000), "") << "no driver: detection says so itself";
  EXPECT_EQ(cuda::driver_gap(12080, 0), "") << "no CUDA in the build";
}

TEST(CudaRuntime, AnOlderDriverIsNamedWithBothVersions) {
  const std::string gap = cuda::driver_gap(12080, 13000);
  EXPECT_NE(gap.find("CUDA up to 12.8"), std::string::npos) << gap;
  EXPECT_NE(gap.find("CUDA 13.0 runtime"), std::string::npos) << gap;
  EXPECT_NE(gap.find("driver for CUDA 13.x"), std::string::npos) << gap;
}

TEST(CudaRuntime, WithoutAUsableDeviceTheReasonIsGiven) {
  if (cuda::is_available()) GTEST_SKIP() << "a GPU is present: " << cuda::device_name();
  EXPECT_EQ(cuda::device_count(), 0);
  EXPECT_FALSE(cuda::unavailable_reason().empty());
}

namespace {

// A front-end's shape: the statements (with a comma, a local and a return) run in a build
// that has the backend; without it the macro throws instead.
int cuda_path_probe(const Tensor& t) {
  VIMOE_CUDA_PATH("probe", t, const int a = 1, b = 2; return a + b;);
  return 0;
}
int cudnn_path_probe(const Tensor& t) {
  VIMOE_CUDNN_PATH("probe_conv", t, return 7;);
  return 0;
}

}  // namespace

TEST(CudaPath, RunsItsStatementsWhereTheBackendIsBuiltAndOtherwiseNamesWhatIsMissing) {
  const Tensor t = Tensor::zeros({2, 3});
#ifdef VIMOE_WITH_CUDA
  EXPECT_EQ(cuda_path_probe(t), 3);
#else
  EXPECT_VIMOE_ERROR(cuda_path_probe(t), "probe: ", describe(t).c_str(), "no CUDA backend", "-DVIMOE_ENABLE_CUDA=ON");
#endif
#ifdef VIMOE_WITH_CUDNN
  EXPECT_EQ(cudnn_path_probe(t), 7);
#else
  EXPECT_VIMOE_ERROR(cudnn_path_probe(t), "probe_conv: ", describe(t).c_str(), "no cuDNN", "install cuDNN");
#endif
}
