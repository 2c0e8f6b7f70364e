// matmul and linear on CUDA (cuBLAS) against the CPU reference (OpenBLAS), forward and
// backward, on odd shapes, transposed and broadcast operands, in f32, bf16, f16 and f64.
//
// Tolerances. Both sides compute from bit-identical inputs and accumulate in f32 (f64 for
// f64); they differ only in summation order (and, for half types, in where the final
// rounding lands). With inputs in [-1, 1], a K-term dot product has magnitude ~ sqrt(K) / 3.
//  - f32: no TF32 (which would err by ~5e-4 * |y|), so order effects ~ 2^-24 * sqrt(K) * |y|
//    remain: atol = 1e-5 * sqrt(K), rtol = 1e-5. TF32 would fail this at K >= 257.
//  - bf16: the f32 sums may round to neighbouring bf16 values (1 ulp = 2^-7 relative), and
//    cuBLAS may reduce split-K partials in bf16: atol = 2^-7 * sqrt(K), rtol = 2^-6, a few
//    ulps at the typical magnitude. An indexing error would be off by ~|y| and still fail.
//  - f16: likewise with 2^-10 for 2^-7.
// K is the length of the sum behind each compared value: K for the output, N for dA,
// M times the summed batch entries for dB.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/ops/linalg.h"
#include "tests/test_util.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/gemm.h"
#endif

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Tol {
  double per_sqrt_k;  // atol = per_sqrt_k * sqrt(K)
  double rtol;
  ::testing::AssertionResult check(const Tensor& gpu, const Tensor& cpu, int64_t k) const {
    return all_close(gpu.cpu(), cpu,
                     per_sqrt_k * std::sqrt(static_cast<double>(std::max<int64_t>(k, 1))), rtol);
  }
};

Tol tol_for(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-12, 1e-12};
    case DType::F32: return {1e-5, 1e-5};
    case DType::BF16: return {1.0 / 128, 1.0 / 64};
    default: return {1.0 / 1024, 1.0 / 512};  // f16
  }
}

// Runs f on CPU and CUDA copies of the same stored operands, back-propagates the same
// upstream gradient through both, and compares the output (sum length k_out) and each
// operand's gradient (sum length k_grad[i]).
void compare(const Fn& f, const std::vector<Tensor>& stored, int64_t k_out,
             const std::vector<int64_t>& k_grad, const std::string& what) {
  SCOPED_TRACE(what);
  const DType dt = stored[0].dtype();
  const Tol tol = tol_for(dt);
  std::vector<Tensor> on_cpu, on_gpu;
  for (const Tensor& s : stored) {
    on_cpu.push_back(s.detach().clone().set_requires_grad(true));
    on_gpu.push_back(s.to(Device::cuda()).set_requires_grad(true));
  }
  const Tensor out_cpu = f(on_cpu), out_gpu = f(on_gpu);
  ASSERT_TRUE(out_gpu.is_cuda());
  ASSERT_EQ(out_gpu.dtype(), dt);
  EXPECT_TRUE(tol.check(out_gpu, out_cpu, k_out)) << "forward";
  const Tensor g = uniform(out_cpu.shape(), 977, -1, 1, dt);
  out_cpu.backward(g);
  out_gpu.backward(g.to(Device::cuda()));
  for (size_t i = 0; i < stored.size(); ++i) {
    ASSERT_TRUE(on_gpu[i].grad().defined()) << "input " << i;
    EXPECT_TRUE(on_gpu[i].grad().is_cuda());
    EXPECT_TRUE(tol.check(on_gpu[i].grad(), on_cpu[i].grad(), k_grad[i]))
        << "gradient of input " << i;
  }
}

// The stored tensor for a logical [batch..., rows, cols] operand: [batch..., cols, rows]
// when it is to be used transposed.
Tensor stored_operand(Shape batch, int64_t rows, int64_t cols, bool trans, uint64_t seed,
                      DType dt) {
  batch.push_back(trans ? cols : rows);
  batch.push_back(trans ? rows : cols);
  return uniform(batch, seed, -1, 1, dt);
}

Fn matmul_fn(bool ta, bool tb) {
  return [ta, tb](const std::vector<Tensor>& in) {
    return matmul(ta ? in[0].transpose(-1, -2) : in[0], tb ? in[1].transpose(-1, -2) : in[1]);
  };
}

const int64_t kSizes[] = {1, 3, 257, 385};

void odd_shapes(DType dt) {
  uint64_t seed = 1;
  for (int64_t m : kSizes)
    for (int64_t k : kSizes)
      for (int64_t n : kSizes) {
        // Every layout on a rotating subset keeps the run short; all four appear often.
        const int layout = static_cast<int>(seed % 4);
        const bool ta = layout & 1, tb = layout & 2;
        const Tensor a = stored_operand({}, m, k, ta, seed++, dt);
        const Tensor b = stored_operand({}, k, n, tb, seed++, dt);
        compare(matmul_fn(ta, tb), {a, b}, k, {n, m},
                "M " + std::to_string(m) + " K " + std::to_string(k) + " N " + std::to_string(n) +
                    (ta ? " a^T" : "") + (tb ? " b^T" : ""));
      }
}

void batched_shapes(DType dt) {
  struct Case {
    Shape ba, bb;
    int64_t m, k, n;
    bool ta, tb;
    int64_t a_sum, b_sum;  // batch entries summed into dA / dB (where the operand broadcast)
  };
  const Case cases[] = {
      {{3}, {3}, 257, 3, 385, false, false, 1, 1},
      {{3}, {3}, 3, 385, 257, true, true, 1, 1},
      {{2, 1}, {3}, 257, 385, 3, false, true, 3, 2},  // host loop over 2, batch stride 0 for a
      {{2, 1}, {3}, 1, 257, 385, true, false, 3, 2},
      {{4}, {}, 257, 385, 3, false, false, 1, 4},  // shared b: one tall GEMM
      {{4}, {}, 3, 257, 385, false, true, 1, 4},
      {{}, {4}, 385, 3, 257, true, false, 4, 1},  // shared a: batch stride 0
      {{2, 3}, {2, 3}, 3, 257, 1, false, false, 1, 1},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    const Tensor a = stored_operand(c.ba, c.m, c.k, c.ta, seed++, dt);
    const Tensor b = stored_operand(c.bb, c.k, c.n, c.tb, seed++, dt);
    compare(matmul_fn(c.ta, c.tb), {a, b}, c.k, {c.n * c.a_sum, c.m * c.b_sum},
            shape_str(c.ba) + " " + shape_str(c.bb) + " M " + std::to_string(c.m) + " K " +
                std::to_string(c.k) + " N " + std::to_string(c.n));
  }
}

}  // namespace

TEST(LinalgGpu, MatmulOddShapesF32) {
  VIMOE_REQUIRE_GPU();
  odd_shapes(DType::F32);
}

TEST(LinalgGpu, MatmulOddShapesBf16) {
  VIMOE_REQUIRE_GPU();
  odd_shapes(DType::BF16);
}

TEST(LinalgGpu, MatmulBatchedF32) {
  VIMOE_REQUIRE_GPU();
  batched_shapes(DType::F32);
}

TEST(LinalgGpu, MatmulBatchedBf16) {
  VIMOE_REQUIRE_GPU();
  batched_shapes(DType::BF16);
}

TEST(LinalgGpu, MatmulF64AndF16) {
  VIMOE_REQUIRE_GPU();
  for (DType dt : {DType::F64, DType::F16}) {
    const Tensor a = stored_operand({2}, 257, 3, true, 201, dt);
    const Tensor b = stored_operand({}, 3, 385, false, 202, dt);
    compare(matmul_fn(true, false), {a, b}, 3, {385, 257 * 2}, dtype_name(dt));
  }
}

TEST(LinalgGpu, MatmulSlicedAndVectors) {
  VIMOE_REQUIRE_GPU();
  // A column slice with a step has no BLAS layout and is copied; a row slice is not.
  compare(
      [](const std::vector<Tensor>& in) {
        return matmul(in[0].slice(1, 0, 514, 2), in[1].slice(1, 1, 258));
      },
      {uniform({3, 514}, 301), uniform({257, 300}, 302)}, 257, {257, 3}, "sliced");
  compare([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
          {uniform({385}, 303), uniform({2, 385, 3}, 304)}, 385, {3 * 2, 1}, "vector @ batched");
}

TEST(LinalgGpu, LinearF32Bf16) {
  VIMOE_REQUIRE_GPU();
  const Fn with_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  const Fn no_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
  for (DType dt : {DType::F32, DType::BF16}) {
    const std::string name = dtype_name(dt);
    // x [2, 3, 257] -> 385 features; the bias adds one term to each output's sum.
    compare(with_bias,
            {uniform({2, 3, 257}, 401, -1, 1, dt), uniform({385, 257}, 402, -1, 1, dt),
             uniform({385}, 403, -1, 1, dt)},
            258, {385, 6, 6}, name + " bias");
    compare(no_bias, {uniform({385, 3}, 404, -1, 1, dt), uniform({257, 3}, 405, -1, 1, dt)}, 3,
            {257, 385}, name + " no bias");
    compare(
        [](const std::vector<Tensor>& in) { return linear(in[0].transpose(0, 1), in[1], in[2]); },
        {uniform({3, 257, 385}, 406, -1, 1, dt), uniform({1, 385}, 407, -1, 1, dt),
         uniform({1}, 408, -1, 1, dt)},
        386, {1, 3 * 257, 3 * 257}, name + " permuted x");
  }
}

TEST(LinalgGpu, EmptyOperands) {
  VIMOE_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  const Tensor z = matmul(Tensor::ones({3, 0}, gpu), Tensor::ones({0, 2}, gpu));
  ASSERT_TRUE(z.is_cuda());
  EXPECT_TRUE(all_close(z.cpu(), Tensor::zeros({3, 2}), 0, 0));
  EXPECT_EQ(matmul(Tensor::ones({0, 3}, gpu), Tensor::ones({3, 2}, gpu)).shape(), (Shape{0, 2}));
}

TEST(LinalgGpu, DeviceMismatch) {
  VIMOE_REQUIRE_GPU();
  const Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({3, 4}, Device::cuda());
  EXPECT_VIMOE_ERROR(matmul(a, b), "matmul", "[2, 3] f32 cpu", "[3, 4] f32 cuda:0");
  EXPECT_VIMOE_ERROR(linear(Tensor::ones({2, 4}, Device::cuda()),
                            Tensor::ones({3, 4}, Device::cuda()), Tensor::ones({3})),
                     "linear", "cuda:0", "[3] f32 cpu");
}

// The launcher on its own, with alpha, beta, a transposed A and a shared (stride 0) B, which
// the engine's ops use only partly; and its refusals.
TEST(LinalgGpu, LauncherAlphaBetaStrideZero) {
  VIMOE_REQUIRE_GPU();
#ifdef VIMOE_WITH_CUDA
  const Device gpu = Device::cuda();
  // See the CPU test of the same name for the hand computation.
  const Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 0, 1, 1, 0, 2, 2}, {2, 3, 2}, gpu);
  const Tensor b = Tensor::from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2}, gpu);
  const Tensor c = Tensor::from_vector<float>({1, 1, 1, 1, 2, 2, 2, 2}, {2, 2, 2}, gpu);
  EXPECT_EQ(kernels::gemm_strided_batched(cuda::cublas(), DType::F32, true, false, 2, 2, 3, 2.0,
                                          a.data_ptr(), 2, 6, b.data_ptr(), 2, 0, 0.5, c.data_ptr(),
                                          2, 4, 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_TRUE(all_close(
      c.cpu(), Tensor::from_vector<float>({12.5, 16.5, 16.5, 20.5, 5, 7, 7, 5}, {2, 2, 2}), 0, 0));
  EXPECT_EQ(kernels::gemm_strided_batched(cuda::cublas(), DType::F32, false, false, 2, 2, 0, 1.0,
                                          a.data_ptr(), 1, 0, b.data_ptr(), 2, 0, 0.0, c.data_ptr(),
                                          2, 4, 1),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(kernels::gemm_strided_batched(cuda::cublas(), DType::I32, false, false, 2, 2, 2, 1.0,
                                          a.data_ptr(), 2, 0, b.data_ptr(), 2, 0, 0.0, c.data_ptr(),
                                          2, 4, 1),
            CUBLAS_STATUS_NOT_SUPPORTED);
#endif
}
