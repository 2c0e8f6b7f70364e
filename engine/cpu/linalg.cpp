#include "engine/cpu/linalg.h"

#include <cblas.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <type_traits>
#include <vector>

#include "engine/cpu/parallel.h"

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

// The engine's thread pool runs the products, not the BLAS's own threads: the two pools would
// otherwise compete for the same cores (OpenBLAS's idle threads busy-wait after each call,
// right when our threads run the elementwise work between GEMMs). The BLAS is therefore told
// once to stay single-threaded, and a large product is cut into blocks of C that run on the
// pool, one single-threaded BLAS call per block.
void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

// How one product [m, n] (inner size k) is cut: into `count` blocks of `size` rows (or, when
// by_rows is false, columns) of C. The cut depends only on the shape, never on the number of
// threads, and the inner dimension is never split: each element of C comes from the same
// BLAS call whatever the thread count, so results are identical with one thread or many.
struct Blocks {
  bool by_rows = true;
  int64_t size = 0, count = 1;
};

Blocks plan_blocks(int64_t m, int64_t n, int64_t k) {
  // Below ~1M multiply-adds per block, handing a block to another thread costs more than
  // it saves; at most 16 blocks, at least 16 rows (columns) each, for the BLAS's kernels.
  constexpr int64_t kBlockWork = int64_t{1} << 20, kMaxBlocks = 16, kMinSize = 16;
  Blocks b;
  b.by_rows = m >= n;
  const int64_t len = b.by_rows ? m : n;
  const int64_t wanted = std::clamp<int64_t>(m * n * k / kBlockWork, 1, kMaxBlocks);
  b.size = std::max(kMinSize, (len + wanted - 1) / wanted);
  b.size = (b.size + kMinSize - 1) / kMinSize * kMinSize;
  b.count = (len + b.size - 1) / b.size;
  return b;
}

template <typename T>
void gemm_typed(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const T* a,
                int64_t lda, int64_t sa, const T* b, int64_t ldb, int64_t sb, double beta, T* c,
                int64_t ldc, int64_t sc, int64_t batch) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    blas_single_threaded();
    const Blocks blocks = plan_blocks(m, n, k);
    // Tasks: (batch entry, block of C), all independent.
    parallel_for(0, batch * blocks.count, 1, [&](int64_t first, int64_t last) {
      for (int64_t t = first; t < last; ++t) {
        const int64_t i = t / blocks.count, start = (t % blocks.count) * blocks.size;
        const T* ai = a + i * sa;
        const T* bi = b + i * sb;
        T* ci = c + i * sc;
        if (blocks.by_rows) {
          // Rows [start, start + rows) of C take the same rows of op(A): rows of a stored A,
          // columns of a stored A^T.
          const int64_t rows = std::min(blocks.size, m - start);
          blas_gemm<T>(ta, tb, rows, n, k, alpha, ai + (ta ? start : start * lda), lda, bi, ldb,
                       beta, ci + start * ldc, ldc);
        } else {
          // Columns of C take the same columns of op(B): columns of a stored B, rows of B^T.
          const int64_t cols = std::min(blocks.size, n - start);
          blas_gemm<T>(ta, tb, m, cols, k, alpha, ai, lda, bi + (tb ? start * ldb : start), ldb,
                       beta, ci + start, ldc);
        }
      }
    });
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
      gemm_typed<float>(ta, tb, m, n, k, alpha, fa.data(), a_cols, 0, fb.data(), b_cols, 0, beta,
                        fc.data(), n, 0, 1);
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
