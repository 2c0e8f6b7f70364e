#include "engine/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace vimoe::cpu {

namespace {

// One (batch, head) slice at a time is converted to double: the loops below then read
// plain arrays whatever the storage dtype, and every sum runs in double.
std::vector<double> load_slice(const Tensor& t, int64_t begin, int64_t n) {
  std::vector<double> out(n);
  VIMOE_DISPATCH_FLOATING(t.dtype(), "attention", {
    const scalar_t* p = t.data<scalar_t>() + begin;
    for (int64_t i = 0; i < n; ++i) out[i] = to_double(p[i]);
  });
  return out;
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

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                       const Tensor& lse, double scale) {
  const auto [bh, S, D] = dims_of(q);
  std::vector<double> scores(S);
  for (int64_t b = 0; b < bh; ++b) {
    const std::vector<double> Q = load_slice(q, b * S * D, S * D);
    const std::vector<double> K = load_slice(k, b * S * D, S * D);
    const std::vector<double> V = load_slice(v, b * S * D, S * D);
    std::vector<double> O(S * D, 0.0), L(S);
    for (int64_t i = 0; i < S; ++i) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < S; ++j) {
        scores[j] = scale * dot(&Q[i * D], &K[j * D], D);
        mx = std::max(mx, scores[j]);
      }
      // Subtracting the row maximum keeps exp() finite for logits of any size.
      double sum = 0;
      for (int64_t j = 0; j < S; ++j) sum += std::exp(scores[j] - mx);
      L[i] = mx + std::log(sum);
      for (int64_t j = 0; j < S; ++j) {
        const double p = std::exp(scores[j] - L[i]);
        for (int64_t d = 0; d < D; ++d) O[i * D + d] += p * V[j * D + d];
      }
    }
    store_slice(O, out, b * S * D);
    store_slice(L, lse, b * S);
  }
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& dout, const Tensor& lse, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv, double scale) {
  const auto [bh, S, D] = dims_of(q);
  for (int64_t b = 0; b < bh; ++b) {
    const int64_t at = b * S * D;
    const std::vector<double> Q = load_slice(q, at, S * D), K = load_slice(k, at, S * D),
                              V = load_slice(v, at, S * D), O = load_slice(out, at, S * D),
                              dO = load_slice(dout, at, S * D), L = load_slice(lse, b * S, S);
    std::vector<double> dQ(S * D, 0.0), dK(S * D, 0.0), dV(S * D, 0.0);
    for (int64_t i = 0; i < S; ++i) {
      // D_i = sum_j P_ij dP_ij, computed from the output as rowsum(dO * O).
      const double Di = dot(&dO[i * D], &O[i * D], D);
      for (int64_t j = 0; j < S; ++j) {
        const double p = std::exp(scale * dot(&Q[i * D], &K[j * D], D) - L[i]);
        const double dp = dot(&dO[i * D], &V[j * D], D);
        const double ds = p * (dp - Di);
        for (int64_t d = 0; d < D; ++d) {
          dV[j * D + d] += p * dO[i * D + d];
          dQ[i * D + d] += scale * ds * K[j * D + d];
          dK[j * D + d] += scale * ds * Q[i * D + d];
        }
      }
    }
    store_slice(dQ, dq, at);
    store_slice(dK, dk, at);
    store_slice(dV, dv, at);
  }
}

}  // namespace vimoe::cpu
