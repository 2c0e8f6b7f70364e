// The CUDA runtime plumbing that works without a GPU: the driver / runtime version rule and
// what detection reports when no device is usable.
#include <gtest/gtest.h>

#include "engine/cuda/runtime.h"

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
