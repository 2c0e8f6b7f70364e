#include "engine/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/cpu/linalg.h"
#include "engine/cpu/parallel.h"

namespace vimoe::cpu {

namespace {

// One (batch, head) slice at a time is converted to double: the loops below then read
// plain arrays whatever the storage dtype, and every sum runs in double.
void load_slice(const Tensor& t, int64_t begin, int64_t n, std::vector<double>& out) {
  out.resize(n);
  VIMOE_DISPATCH_FLOATING(t.dtype(), "attention", {
    const scalar_t* p = t.data<scalar_t>() + begin;
    for (int64_t i = 0; i < n; ++i) out[i] = to_double(p[i]);
  });
}

void store_slice(const std::vector<double>& values, const Tensor& t, int64_t begin) {
  VIMOE_DISPATCH_FLOATING(t.dtype(), "attention", {
    scalar_t* p = t.data<scalar_t>() + begin;
    for (size_t i = 0; i < values.size(); ++i) p[i] = from_double<scalar_t>(values[i]);
  });
}

double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// c [m, n] = op(a) @ op(b) in double, row-major and packed: op(a) is [m, k], stored [m, k]
// or, transposed, [k, m]; likewise op(b) is [k, n]. The slice's matrix products go through
// the BLAS like every dense product of the CPU backend.
void matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const std::vector<double>& a,
            const std::vector<double>& b, std::vector<double>& c) {
  c.resize(m * n);
  gemm(DType::F64, ta, tb, m, n, k, 1.0, a.data(), ta ? m : k, 0, b.data(), tb ? k : n, 0, 0.0,
       c.data(), n, 0, 1);
}

struct Dims {
  int64_t bh, s, d;
};

Dims dims_of(const Tensor& q) {
  VIMOE_CHECK(q.dim() >= 2 && q.is_contiguous(), "cpu::attention: expected contiguous [.., S, Dh], found ",
              describe(q));
  const int64_t s = q.size(-2), d = q.size(-1);
  return {s * d == 0 ? 0 : q.numel() / (s * d), s, d};
}

}  // namespace

// Slices are independent: they are spread over the CPU threads, each computed whole by one
// thread (the slice's GEMMs are far below the size at which the BLAS starts threads).

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                       const Tensor& lse, double scale) {
  const auto [bh, S, D] = dims_of(q);
  parallel_for(0, bh, grain_for(2 * S * S * D), [&, S = S, D = D](int64_t first, int64_t last) {
    std::vector<double> Q, K, V, P, O, L(S);
    for (int64_t b = first; b < last; ++b) {
      load_slice(q, b * S * D, S * D, Q);
      load_slice(k, b * S * D, S * D, K);
      load_slice(v, b * S * D, S * D, V);
      matmul(false, true, S, S, D, Q, K, P);  // q_i . k_j, scaled below
      for (int64_t i = 0; i < S; ++i) {
        double* row = &P[i * S];
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < S; ++j) {
          row[j] *= scale;
          mx = std::max(mx, row[j]);
        }
        // Subtracting the row maximum keeps exp() finite for logits of any size.
        double sum = 0;
        for (int64_t j = 0; j < S; ++j) sum += row[j] = std::exp(row[j] - mx);
        L[i] = mx + std::log(sum);
        for (int64_t j = 0; j < S; ++j) row[j] /= sum;
      }
      matmul(false, false, S, D, S, P, V, O);  // O = P V
      store_slice(O, out, b * S * D);
      store_slice(L, lse, b * S);
    }
  });
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& dout, const Tensor& lse, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv, double scale) {
  const auto [bh, S, D] = dims_of(q);
  parallel_for(0, bh, grain_for(6 * S * S * D), [&, S = S, D = D](int64_t first, int64_t last) {
    std::vector<double> Q, K, V, O, dO, L, P, dP, dQ, dK, dV;
    for (int64_t b = first; b < last; ++b) {
      const int64_t at = b * S * D;
      load_slice(q, at, S * D, Q);
      load_slice(k, at, S * D, K);
      load_slice(v, at, S * D, V);
      load_slice(out, at, S * D, O);
      load_slice(dout, at, S * D, dO);
      load_slice(lse, b * S, S, L);
      matmul(false, true, S, S, D, Q, K, P);    // q_i . k_j
      matmul(false, true, S, S, D, dO, V, dP);  // dP = dO V^T
      for (int64_t i = 0; i < S; ++i) {
        // D_i = sum_j P_ij dP_ij, computed from the output as rowsum(dO * O).
        const double Di = dot(&dO[i * D], &O[i * D], D);
        for (int64_t j = 0; j < S; ++j) {
          const int64_t e = i * S + j;
          P[e] = std::exp(scale * P[e] - L[i]);
          dP[e] = scale * (P[e] * (dP[e] - Di));  // becomes scale * dS
        }
      }
      matmul(true, false, S, D, S, P, dO, dV);  // dV = P^T dO
      matmul(false, false, S, D, S, dP, K, dQ);  // dQ = scale dS K
      matmul(true, false, S, D, S, dP, Q, dK);   // dK = scale dS^T Q
      store_slice(dQ, dq, at);
      store_slice(dK, dk, at);
      store_slice(dV, dv, at);
    }
  });
}

}  // namespace vimoe::cpu
