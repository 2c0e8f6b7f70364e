// matmul and linear on CUDA beyond the op-parity table (whose rows in
// tests/op_parity/cases_linalg.cpp compare every layout, dtype and odd shape with the CPU
// reference, forward and backward): empty operands, device mismatches, and the launchers on
// their own -- gemm_strided_batched with alpha, beta and a shared (stride 0) operand, and
// gemm_lt's epilogues (bias, bias gradients) against the CPU, its refusals (misaligned
// pointers, dtypes, bad arguments) and its plan cache.
//
// Tolerances: parity::Tol with the table's GEMM reasoning (cases_linalg.cpp): both sides
// accumulate in f32 from the same inputs in [-1, 1), so a K-term sum (~sqrt(K) / 3) differs
// by order effects only: atol 1e-5 sqrt(K) and rtol 1e-5 in f32 (no TF32), 2^-7 sqrt(K) and
// 2^-6 in bf16 (a final rounding to a neighbouring value, split-K partials), 2^-10 sqrt(K)
// and 2^-9 in f16. The hand-computed launcher results are small integers: exact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "engine/ops/linalg.h"
#include "tests/op_parity/op_case.h"
#include "tests/test_util.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/gemm.h"
#endif

using namespace vimoe;
using vimoe::testing::uniform;

namespace {

// Used by the cuBLASLt epilogue tests, which exist only in CUDA builds.
[[maybe_unused]] parity::Tol gemm_tol(DType dt, int64_t k) {
  const double r = std::sqrt(static_cast<double>(std::max<int64_t>(k, 1)));
  switch (dt) {
    case DType::BF16: return {r / 128, 1.0 / 64, 0};
    case DType::F16: return {r / 1024, 1.0 / 512, 0};
    default: return {1e-5 * r, 1e-5, 0};
  }
}

}  // namespace

TEST(LinalgGpu, EmptyOperands) {
  VIMOE_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  const Tensor z = matmul(Tensor::ones({3, 0}, gpu), Tensor::ones({0, 2}, gpu));
  ASSERT_TRUE(z.is_cuda());
  EXPECT_TRUE(parity::compare(z, Tensor::zeros({3, 2}), parity::kExact, "[3, 0] @ [0, 2]"));
  EXPECT_EQ(matmul(Tensor::ones({0, 3}, gpu), Tensor::ones({3, 2}, gpu)).shape(), (Shape{0, 2}));
  // linear over no rows, and over no input features (the output is the bias alone).
  EXPECT_EQ(linear(Tensor::ones({0, 3}, gpu), Tensor::ones({4, 3}, gpu), Tensor::ones({4}, gpu))
                .shape(),
            (Shape{0, 4}));
  const Tensor b = Tensor::from_vector<float>({1, 2, 3}, {3}, gpu);
  EXPECT_TRUE(parity::compare(linear(Tensor::ones({2, 0}, gpu), Tensor::ones({3, 0}, gpu), b),
                              Tensor::from_vector<float>({1, 2, 3, 1, 2, 3}, {2, 3}),
                              parity::kExact, "linear with in_features 0"));
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
  EXPECT_TRUE(parity::compare(
      c, Tensor::from_vector<float>({12.5, 16.5, 16.5, 20.5, 5, 7, 7, 5}, {2, 2, 2}),
      parity::kExact, "C"));
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

#ifdef VIMOE_WITH_CUDA
namespace {

using kernels::GemmEpilogue;

// The tests' own cuBLASLt handle and workspace (gemm_lt takes them as arguments).
cublasLtHandle_t lt_handle() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t created;
    VIMOE_CUBLAS_CHECK(cublasLtCreate(&created));
    return created;
  }();
  return h;
}

const Tensor& lt_workspace() {
  static const Tensor w = Tensor::empty({int64_t{32} << 20}, TensorOptions(DType::U8, Device::cuda()));
  return w;
}

// One gemm_lt problem: row-major op(A) [m, k] @ op(B) [k, n], the stored operands on the GPU
// (A [m, k] or, transposed, [k, m]; likewise B), C [m, n] filled with a sentinel first, and
// the CPU values of op(A), op(B) for the reference.
struct LtProblem {
  DType dt;
  bool ta, tb;
  int64_t m, n, k;
  Tensor a, b, c;    // GPU storage
  Tensor opa, opb;   // CPU, logical
  Tensor vec;        // GPU: the bias, or the bias gradient's buffer (sentinel-filled)

  LtProblem(DType dtype, bool trans_a, bool trans_b, int64_t m_, int64_t n_, int64_t k_,
            GemmEpilogue epi, uint64_t seed)
      : dt(dtype), ta(trans_a), tb(trans_b), m(m_), n(n_), k(k_) {
    const Tensor sa = uniform(ta ? Shape{k, m} : Shape{m, k}, seed, -1, 1, dt);
    const Tensor sb = uniform(tb ? Shape{n, k} : Shape{k, n}, seed + 1, -1, 1, dt);
    opa = ta ? sa.t() : sa;
    opb = tb ? sb.t() : sb;
    a = sa.to(Device::cuda());
    b = sb.to(Device::cuda());
    c = Tensor::full({m, n}, 1234.0, TensorOptions(dt, Device::cuda()));
    if (epi == GemmEpilogue::Bias) vec = uniform({n}, seed + 2, -1, 1, dt).to(Device::cuda());
    if (epi == GemmEpilogue::BiasGradA)
      vec = Tensor::full({m}, 1234.0, TensorOptions(dt, Device::cuda()));
    if (epi == GemmEpilogue::BiasGradB)
      vec = Tensor::full({n}, 1234.0, TensorOptions(dt, Device::cuda()));
  }

  int64_t lda() const { return ta ? m : k; }
  int64_t ldb() const { return tb ? k : n; }

  cublasStatus_t run(GemmEpilogue epi) {
    const bool grad = epi == GemmEpilogue::BiasGradA || epi == GemmEpilogue::BiasGradB;
    const cublasStatus_t st = kernels::gemm_lt(
        lt_handle(), dt, ta, tb, m, n, k, a.data_ptr(), lda(), b.data_ptr(), ldb(),
        c.data_ptr(), n, epi, epi == GemmEpilogue::Bias ? vec.data_ptr() : nullptr,
        grad ? vec.data_ptr() : nullptr, lt_workspace().data_ptr(),
        static_cast<size_t>(lt_workspace().numel()), cuda::stream());
    cuda::synchronize();
    return st;
  }
};

std::string problem_name(const LtProblem& p) {
  return std::string(dtype_name(p.dt)) + " M " + std::to_string(p.m) + " N " +
         std::to_string(p.n) + " K " + std::to_string(p.k) + (p.ta ? " a^T" : "") +
         (p.tb ? " b^T" : "");
}

}  // namespace

// The bias epilogue: C = op(A) op(B) + bias[j] over the columns, against the CPU's linear
// (which adds the bias before the one rounding too), on odd sizes in f32, bf16 and f16, with
// both operand flags.
TEST(LinalgGpu, GemmLtBiasMatchesTheCpu) {
  VIMOE_REQUIRE_GPU();
  uint64_t seed = 10;
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (const auto& [ta, tb] : {std::pair{false, true}, std::pair{true, false}}) {
      LtProblem p(dt, ta, tb, 257, 17, 385, GemmEpilogue::Bias, seed);
      seed += 3;
      SCOPED_TRACE(problem_name(p));
      ASSERT_EQ(p.run(GemmEpilogue::Bias), CUBLAS_STATUS_SUCCESS)
          << "cuBLASLt offers no bias epilogue here; linear would fall back to cuBLAS";
      const Tensor ref = linear(p.opa, p.opb.t(), p.vec.cpu());
      EXPECT_TRUE(parity::compare(p.c, ref, gemm_tol(dt, p.k + 1), "C"));
    }
}

// BiasGradA (cuBLASLt's BGRADB after the row-/column-major swap): C = op(A) op(B) and the
// sums of op(A) over k -- linear's gw = g^T @ x with the column sums of g -- against a CPU
// matmul and sum. bf16 and f16 must be offered (autocast training runs them); f32 is
// reported when cuBLASLt has no algorithm (linear then keeps the column sum).
TEST(LinalgGpu, GemmLtBiasGradAMatchesColumnSums) {
  VIMOE_REQUIRE_GPU();
  uint64_t seed = 40;
  for (DType dt : {DType::BF16, DType::F16, DType::F32})
    for (int64_t rows : {257, 4099}) {
      // gw [17, 385] = g^T [17, rows] @ x [rows, 385]: A = g stored [rows, 17], transposed.
      LtProblem p(dt, true, false, 17, 385, rows, GemmEpilogue::BiasGradA, seed);
      seed += 3;
      SCOPED_TRACE(problem_name(p));
      const cublasStatus_t st = p.run(GemmEpilogue::BiasGradA);
      if (dt == DType::F32 && st == CUBLAS_STATUS_NOT_SUPPORTED) {
        std::printf("[ note ] cuBLASLt has no f32 BGRADB algorithm for %s; linear's f32 bias "
                    "gradient keeps the column sum\n",
                    problem_name(p).c_str());
        continue;
      }
      ASSERT_EQ(st, CUBLAS_STATUS_SUCCESS);
      EXPECT_TRUE(parity::compare(p.c, matmul(p.opa, p.opb), gemm_tol(dt, rows), "C"));
      EXPECT_TRUE(parity::compare(p.vec, sum(p.opa, {1}), gemm_tol(dt, rows), "bias gradient"));
    }
}

// BiasGradB (cuBLASLt's BGRADA): the sums of op(B) over k, one per column of C. The engine
// does not use it; it is reported, not required, where cuBLASLt has no algorithm.
TEST(LinalgGpu, GemmLtBiasGradBMatchesColumnSums) {
  VIMOE_REQUIRE_GPU();
  uint64_t seed = 70;
  for (DType dt : {DType::BF16, DType::F32}) {
    LtProblem p(dt, false, false, 17, 385, 257, GemmEpilogue::BiasGradB, seed);
    seed += 3;
    SCOPED_TRACE(problem_name(p));
    const cublasStatus_t st = p.run(GemmEpilogue::BiasGradB);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) {
      std::printf("[ note ] cuBLASLt has no BGRADA algorithm for %s\n", problem_name(p).c_str());
      continue;
    }
    ASSERT_EQ(st, CUBLAS_STATUS_SUCCESS);
    EXPECT_TRUE(parity::compare(p.c, matmul(p.opa, p.opb), gemm_tol(dt, p.k), "C"));
    EXPECT_TRUE(parity::compare(p.vec, sum(p.opb, {0}), gemm_tol(dt, p.k), "bias gradient"));
  }
}

// A pointer off a 16-byte boundary, a dtype without the epilogue path, or inconsistent
// arguments: nothing is launched (C and the vectors keep their sentinels) and the status says
// which fallback applies.
TEST(LinalgGpu, GemmLtRefusesAndWritesNothing) {
  VIMOE_REQUIRE_GPU();
  LtProblem p(DType::F32, false, true, 33, 17, 65, GemmEpilogue::Bias, 100);
  const Tensor sentinel = Tensor::full({33, 17}, 1234.0);
  const size_t ws_bytes = static_cast<size_t>(lt_workspace().numel());
  void* ws = lt_workspace().data_ptr();
  auto call = [&](DType dt, const void* a, const void* b, void* c, int64_t k, int64_t lda,
                  GemmEpilogue epi, const void* bias, void* grad) {
    const cublasStatus_t st = kernels::gemm_lt(lt_handle(), dt, false, true, 33, 17, k, a, lda, b,
                                               65, c, 17, epi, bias, grad, ws, ws_bytes,
                                               cuda::stream());
    cuda::synchronize();
    return st;
  };
  const char* pa = static_cast<const char*>(p.a.data_ptr());
  const char* pb = static_cast<const char*>(p.b.data_ptr());
  char* pc = static_cast<char*>(p.c.data_ptr());
  const char* pv = static_cast<const char*>(p.vec.data_ptr());
  // One f32 element (4 bytes) past each aligned start, in turn. (The shifted operands read
  // one element past their end only if launched; they are not.)
  EXPECT_EQ(call(DType::F32, pa + 4, pb, pc, 65, 65, GemmEpilogue::Bias, pv, nullptr),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(call(DType::F32, pa, pb + 4, pc, 65, 65, GemmEpilogue::Bias, pv, nullptr),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(call(DType::F32, pa, pb, pc + 4, 65, 65, GemmEpilogue::Bias, pv, nullptr),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(call(DType::F32, pa, pb, pc, 65, 65, GemmEpilogue::Bias, pv + 4, nullptr),
            CUBLAS_STATUS_NOT_SUPPORTED);
  // f64 keeps cuBLAS, integers have no GEMM.
  EXPECT_EQ(call(DType::F64, pa, pb, pc, 65, 65, GemmEpilogue::None, nullptr, nullptr),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(call(DType::I32, pa, pb, pc, 65, 65, GemmEpilogue::None, nullptr, nullptr),
            CUBLAS_STATUS_NOT_SUPPORTED);
  // Bad arguments: k = 0, lda below k, a missing bias, a bias the epilogue does not use, a
  // bias-gradient buffer for the bias epilogue.
  EXPECT_EQ(call(DType::F32, pa, pb, pc, 0, 65, GemmEpilogue::None, nullptr, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(call(DType::F32, pa, pb, pc, 65, 64, GemmEpilogue::None, nullptr, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(call(DType::F32, pa, pb, pc, 65, 65, GemmEpilogue::Bias, nullptr, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(call(DType::F32, pa, pb, pc, 65, 65, GemmEpilogue::None, pv, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(call(DType::F32, pa, pb, pc, 65, 65, GemmEpilogue::Bias, pv,
                 const_cast<char*>(pv)),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_TRUE(parity::compare(p.c, sentinel, parity::kExact, "C after the refusals"));
}

// One plan per problem: repeating a problem reuses it, a new size adds one; and linear on
// CUDA with a bias reaches gemm_lt both forward (bias) and backward (weight + bias gradient).
TEST(LinalgGpu, GemmLtCachesPlansAndLinearUsesIt) {
  VIMOE_REQUIRE_GPU();
  LtProblem p(DType::BF16, false, true, 129, 65, 97, GemmEpilogue::Bias, 130);
  ASSERT_EQ(p.run(GemmEpilogue::Bias), CUBLAS_STATUS_SUCCESS);
  const size_t after_first = kernels::gemm_lt_cached_plans();
  ASSERT_EQ(p.run(GemmEpilogue::Bias), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(kernels::gemm_lt_cached_plans(), after_first);
  LtProblem q(DType::BF16, false, true, 131, 65, 97, GemmEpilogue::Bias, 133);
  ASSERT_EQ(q.run(GemmEpilogue::Bias), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(kernels::gemm_lt_cached_plans(), after_first + 1);

  // Sizes no other test uses, so both of linear's problems are new to the cache.
  const Device gpu = Device::cuda();
  Tensor x = uniform({3, 37, 193}, 140, -1, 1, DType::BF16, gpu).set_requires_grad(true);
  Tensor w = uniform({71, 193}, 141, -1, 1, DType::BF16, gpu).set_requires_grad(true);
  Tensor b = uniform({71}, 142, -1, 1, DType::BF16, gpu).set_requires_grad(true);
  const size_t before = kernels::gemm_lt_cached_plans();
  linear(x, w, b).backward(uniform({3, 37, 71}, 143, -1, 1, DType::BF16, gpu));
  EXPECT_EQ(kernels::gemm_lt_cached_plans(), before + 2)
      << "linear's forward and weight-gradient GEMMs should each have asked gemm_lt once";
}
#endif
