// CUDA reductions beyond the op-parity rows (tests/op_parity/cases_reduce.cpp, which compare
// sum / mean / var / max / argmax with the CPU on every front-end path: rows, columns with
// no copy, middle axes, whole tensors, views, integers, ViT-S/14 bias gradients): ties,
// NaN, a variance with a large mean, determinism of the split column and full reductions,
// that leading axes are reduced where the input lies, the launchers' own checks, and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/cuda/allocator.h"
#include "engine/cuda/runtime.h"
#include "engine/ops/reduce.h"
#include "tests/op_parity/op_case.h"
#include "tests/test_util.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/reduce.h"
#endif

using namespace vimoe;
using vimoe::parity::compare;
using vimoe::parity::kExact;
using vimoe::parity::Tol;
using vimoe::testing::uniform;

// Spread 1 around 1e4: a one-pass sum of squares would lose everything in f32. Both passes
// of every CUDA path (rows, columns, the whole tensor) centre on the mean first; the mean
// itself is off by a few f32 ulps of 1e4 (~1e-3), which moves the variance (~1/3) by its
// square only: 1e-3 relative leaves room for the f32 sums of squares.
TEST(ReduceCuda, VarWithLargeMean) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = (uniform({4, 4099}, 4, -1, 1, DType::F64) + 10000.0).to(DType::F32);
  const Tensor xt = x.transpose(0, 1).contiguous();  // [4099, 4]: the column kernel over 0
  const Tol tol{0, 1e-3, 0};
  EXPECT_TRUE(compare(var(x.cuda(), {1}), var(x, {1}), tol, "rows"));
  EXPECT_TRUE(compare(var(xt.cuda(), {0}), var(xt, {0}), tol, "columns"));
  EXPECT_TRUE(compare(var(x.cuda()), var(x), tol, "whole tensor"));
}

// Few distinct values: long rows are full of ties, and the first one must win across
// threads, warps and the block.
TEST(ReduceCuda, ArgmaxTiesPickTheFirst) {
  VIMOE_REQUIRE_GPU();
  for (const Shape& shape : {Shape{3, 4099}, Shape{257, 385}, Shape{2, 33}}) {
    std::vector<float> v(shape_numel(shape));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37 + 11) % 9);
    const Tensor x = Tensor::from_vector(v, shape);
    for (int64_t d : {0, 1})
      EXPECT_TRUE(compare(argmax(x.cuda(), d), argmax(x, d), kExact,
                          shape_str(shape) + " argmax over " + std::to_string(d)));
  }
}

TEST(ReduceCuda, MaxPropagatesNaN) {
  VIMOE_REQUIRE_GPU();
  std::vector<float> v = uniform({6, 385}, 7).to_vector<float>();
  v[0 * 385 + 300] = std::nanf("");  // the second element of thread 44: NaN arrives late
  v[1 * 385 + 3] = std::nanf("");
  v[1 * 385 + 200] = std::nanf("");  // a later NaN in the same row
  v[2 * 385 + 384] = std::nanf("");
  const Tensor x = Tensor::from_vector(v, {6, 385}), g = x.cuda();
  EXPECT_TRUE(compare(argmax(g, 1), argmax(x, 1), kExact, "argmax"));
  EXPECT_EQ(argmax(g, 1).to_vector<int64_t>()[1], 3);
  const std::vector<double> m = max(g, 1).to_vector<double>();
  EXPECT_TRUE(std::isnan(m[0]) && std::isnan(m[1]) && std::isnan(m[2]) && !std::isnan(m[3]));
}

// A NaN reaches exactly the sums that contain it on every path: one row, one column (of a
// split column reduction), the whole tensor (through both passes).
TEST(ReduceCuda, SumsPropagateNaN) {
  VIMOE_REQUIRE_GPU();
  std::vector<float> v = uniform({4099, 33}, 9).to_vector<float>();
  v[2000 * 33 + 5] = std::nanf("");
  const Tensor x = Tensor::from_vector(v, {4099, 33}), g = x.cuda();
  const std::vector<double> rows = sum(g, {1}).to_vector<double>();
  const std::vector<double> cols = mean(g, {0}).to_vector<double>();
  for (int64_t r = 0; r < 4099; ++r) EXPECT_EQ(std::isnan(rows[r]), r == 2000) << "row " << r;
  for (int64_t c = 0; c < 33; ++c) EXPECT_EQ(std::isnan(cols[c]), c == 5) << "column " << c;
  EXPECT_TRUE(std::isnan(sum(g).item<double>()));
  EXPECT_TRUE(std::isnan(var(g, {0}).to_vector<double>()[5]));
  EXPECT_TRUE(compare(var(g, {0}), var(x, {0}), Tol{1e-6, 1e-5, 1e-5}, "var with a NaN"));
}

// The column kernel splits n into parts by the shape alone and adds them in a fixed order,
// and so does the full reduction: the same input gives the same bits, run after run.
TEST(ReduceCuda, ColumnAndFullReductionsAreDeterministic) {
  VIMOE_REQUIRE_GPU();
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  const std::vector<Case> cases = {{{16448, 384}, {0}},      {{4099, 33}, {0}},
                                   {{3, 4099, 5}, {1}},      {{3, 40000}, {1}},
                                   {{4099, 385}, {}},        {{(int64_t(1) << 22) + 3}, {}}};
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& c : cases) {
      const Tensor x = uniform(c.shape, 11, -2, 2, dt, Device::cuda());
      const std::string what = shape_str(c.shape) + " " + dtype_name(dt) + " over " +
                               (c.dims.empty() ? std::string("all") : shape_str(c.dims));
      EXPECT_TRUE(compare(sum(x, c.dims), sum(x, c.dims).cpu(), kExact, "sum " + what));
      EXPECT_TRUE(compare(mean(x, c.dims), mean(x, c.dims).cpu(), kExact, "mean " + what));
      EXPECT_TRUE(compare(var(x, c.dims), var(x, c.dims).cpu(), kExact, "var " + what));
    }
}

// Leading axes of a contiguous input and whole tensors are reduced where the input lies:
// only the small result and the column kernel's partials are allocated, never a transposed
// copy of the input (the ViT-S/14 bias gradient shape, 25 MB here at a quarter of the batch).
TEST(ReduceCuda, LeadingAxesAreReducedWithoutACopy) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = uniform({64 * 257, 384}, 12, -1, 1, DType::F32, Device::cuda());
  const Tensor x3 = x.view({64, 257, 384});
  const size_t input_bytes = static_cast<size_t>(x.numel()) * 4;
  auto extra = [](const std::function<Tensor()>& f) {
    cuda::synchronize();
    cuda::reset_peak_stats();
    const size_t base = cuda::memory_stats().allocated_bytes;
    const Tensor y = f();
    cuda::synchronize();
    return cuda::memory_stats().peak_allocated_bytes - base;
  };
  EXPECT_LT(extra([&] { return sum(x, {0}); }), input_bytes / 16) << "sum over dim 0";
  EXPECT_LT(extra([&] { return mean(x3, {0, 1}); }), input_bytes / 16) << "mean over {0, 1}";
  EXPECT_LT(extra([&] { return var(x3, {1}); }), input_bytes / 16) << "var over the middle axis";
  EXPECT_LT(extra([&] { return sum(x); }), input_bytes / 16) << "sum of everything";
  EXPECT_LT(extra([&] { return sum(x.transpose(0, 1), {1}); }), input_bytes / 16)
      << "a transposed view reduced over its stored-first axis";
  // A reduction in two runs of axes still takes the copy: the check above can tell.
  EXPECT_GE(extra([&] { return sum(x3, {0, 2}); }), input_bytes) << "{0, 2} copies";
}

#ifdef VIMOE_WITH_CUDA
// The launchers check what the front-end guarantees, so a direct caller gets an error.
TEST(ReduceCuda, ColumnLaunchersRejectBadArguments) {
  VIMOE_REQUIRE_GPU();
  const Tensor x = uniform({4099 * 385}, 13, -1, 1, DType::F32, Device::cuda());
  Tensor out = Tensor::empty({1}, Device::cuda());
  const int64_t n = x.numel();
  // A whole-tensor sum is split, so it needs partials.
  ASSERT_GT(kernels::reduce_cols_workspace(DType::F32, 1, n, 1), 0u);
  EXPECT_EQ(kernels::reduce_cols(kernels::ReduceOp::Sum, DType::F32, x.data_ptr(), DType::F32,
                                 out.data_ptr(), 1, n, 1, nullptr, cuda::stream()),
            cudaErrorInvalidValue);
  EXPECT_EQ(kernels::var_cols(DType::F32, x.data_ptr(), out.data_ptr(), 1, n, 1, 1, nullptr,
                              cuda::stream()),
            cudaErrorInvalidValue);
  // An f32 sum into another dtype, a mean of integers, negative sizes.
  EXPECT_EQ(kernels::reduce_cols(kernels::ReduceOp::Sum, DType::F32, x.data_ptr(), DType::F64,
                                 out.data_ptr(), 1, 3, 1, nullptr, cuda::stream()),
            cudaErrorInvalidValue);
  EXPECT_EQ(kernels::reduce_cols(kernels::ReduceOp::Mean, DType::I32, x.data_ptr(), DType::I64,
                                 out.data_ptr(), 1, 3, 1, nullptr, cuda::stream()),
            cudaErrorInvalidValue);
  EXPECT_EQ(kernels::reduce_cols(kernels::ReduceOp::Sum, DType::F32, x.data_ptr(), DType::F32,
                                 out.data_ptr(), 1, -1, 1, nullptr, cuda::stream()),
            cudaErrorInvalidValue);
  // A short column needs no partials and takes a null workspace.
  EXPECT_EQ(kernels::reduce_cols_workspace(DType::F32, 1, 3, 1), 0u);
  EXPECT_EQ(kernels::reduce_cols(kernels::ReduceOp::Sum, DType::F32, x.data_ptr(), DType::F32,
                                 out.data_ptr(), 1, 3, 1, nullptr, cuda::stream()),
            cudaSuccess);
  const std::vector<float> v = x.narrow(0, 0, 3).to_vector<float>();
  EXPECT_FLOAT_EQ(out.to_vector<float>()[0], v[0] + v[1] + v[2]);
}
#endif

TEST(ReduceCuda, EmptyMaxThrows) {
  VIMOE_REQUIRE_GPU();
  EXPECT_VIMOE_ERROR(max(Tensor::zeros({3, 0}, Device::cuda()), 1), "max", "size 0");
}
