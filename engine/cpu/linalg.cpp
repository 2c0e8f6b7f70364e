#include "engine/cpu/linalg.h"

#include <cblas.h>

#include <limits>
#include <type_traits>
#include <vector>

namespace vimoe::cpu {

namespace {

CBLAS_TRANSPOSE blas_op(bool trans) { return trans ? CblasTrans : CblasNoTrans; }

// One row-major GEMM in T (f32 or f64).
template <typename T>
void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const T* a,
               int64_t lda, const T* b, int64_t ldb, double beta, T* c, int64_t ldc) {
  const auto i = [](int64_t v) { return static_cast<blasint>(v); };
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, blas_op(ta), blas_op(tb), i(m), i(n), i(k),
                static_cast<float>(alpha), a, i(lda), b, i(ldb), static_cast<float>(beta), c,
                i(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, blas_op(ta), blas_op(tb), i(m), i(n), i(k), alpha, a, i(lda), b,
                i(ldb), beta, c, i(ldc));
  }
}

// A stored rows x cols matrix with leading dimension ld, copied into a packed f32 buffer
// (leading dimension cols).
template <typename T>
void widen(const T* src, int64_t rows, int64_t cols, int64_t ld, std::vector<float>& dst) {
  dst.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) dst[r * cols + j] = static_cast<float>(src[r * ld + j]);
}

template <typename T>
void gemm_typed(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const T* a,
                int64_t lda, int64_t sa, const T* b, int64_t ldb, int64_t sb, double beta, T* c,
                int64_t ldc, int64_t sc, int64_t batch) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    for (int64_t i = 0; i < batch; ++i)
      blas_gemm<T>(ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb, ldb, beta, c + i * sc, ldc);
  } else {
    // Half types: widen each operand to f32 (once when its batch stride is 0), multiply
    // in f32, round the result back once.
    const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k;
    const int64_t b_rows = tb ? n : k, b_cols = tb ? k : n;
    std::vector<float> fa, fb, fc(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < batch; ++i) {
      if (i == 0 || sa != 0) widen(a + i * sa, a_rows, a_cols, lda, fa);
      if (i == 0 || sb != 0) widen(b + i * sb, b_rows, b_cols, ldb, fb);
      T* ci = c + i * sc;
      if (beta != 0) widen(ci, m, n, ldc, fc);
      blas_gemm<float>(ta, tb, m, n, k, alpha, fa.data(), a_cols, fb.data(), b_cols, beta,
                       fc.data(), n);
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < n; ++j) ci[r * ldc + j] = T(fc[r * n + j]);
    }
  }
}

// C = beta * C, the whole product when k == 0 (BLAS implementations differ on whether
// they accept k == 0, so it never reaches them).
template <typename T>
void scale_c(double beta, T* c, int64_t m, int64_t n, int64_t ldc, int64_t sc, int64_t batch) {
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) {
        T& v = c[i * sc + r * ldc + j];
        v = beta == 0 ? from_double<T>(0.0) : from_double<T>(beta * to_double(v));
      }
}

}  // namespace

void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const void* a, int64_t lda, int64_t stride_a, const void* b, int64_t ldb,
          int64_t stride_b, double beta, void* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  VIMOE_CHECK(is_floating(dtype), "gemm: floating dtypes only (f32, f64, bf16, f16), found ",
              dtype_name(dtype));
  if (m == 0 || n == 0 || batch == 0) return;
  constexpr int64_t kMax = std::numeric_limits<blasint>::max();
  VIMOE_CHECK(m <= kMax && n <= kMax && k <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
              "gemm: sizes exceed the BLAS integer range: m ", m, ", n ", n, ", k ", k, ", lda ",
              lda, ", ldb ", ldb, ", ldc ", ldc);
  VIMOE_DISPATCH_FLOATING(dtype, "gemm", {
    using T = scalar_t;
    if (k == 0) {
      scale_c(beta, static_cast<T*>(c), m, n, ldc, stride_c, batch);
    } else {
      gemm_typed<T>(trans_a, trans_b, m, n, k, alpha, static_cast<const T*>(a), lda, stride_a,
                    static_cast<const T*>(b), ldb, stride_b, beta, static_cast<T*>(c), ldc,
                    stride_c, batch);
    }
  });
}

}  // namespace vimoe::cpu
