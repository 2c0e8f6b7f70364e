#include "engine/cpu/routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace vimoe::cpu {

namespace {

template <typename T>
void forward_typed(const Tensor& logits_in, int64_t k, bool renormalize, const Tensor& probs,
                   const Tensor& ids, const Tensor& gates, const Tensor& top1_counts) {
  const Tensor logits = logits_in.to(DType::F64).contiguous();
  const int64_t R = logits.size(0), N = logits.size(1);
  const double* x = logits.data<double>();
  T* p_out = probs.data<T>();
  int32_t* id_out = ids.data<int32_t>();
  T* g_out = gates.data<T>();
  int32_t* counts = top1_counts.data<int32_t>();
  std::fill(counts, counts + N, 0);
  std::vector<double> p(N);
  std::vector<int32_t> order(N);
  for (int64_t r = 0; r < R; ++r) {
    const double* row = x + r * N;
    const double mx = *std::max_element(row, row + N);
    double z = 0;
    for (int64_t i = 0; i < N; ++i) z += p[i] = std::exp(row[i] - mx);
    for (int64_t i = 0; i < N; ++i) {
      p[i] /= z;
      p_out[r * N + i] = static_cast<T>(p[i]);
    }
    // Most probable first, the lower index first among equals.
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    double chosen = 0;
    for (int64_t j = 0; j < k; ++j) chosen += p[order[j]];
    // chosen >= 1 / N for a finite row (the top probability is 1 / z); a row of zero chosen
    // probabilities keeps zero gates rather than 0 / 0 (kernels/routing.cu does the same).
    if (!(chosen > 0)) chosen = 1;
    for (int64_t j = 0; j < k; ++j) {
      id_out[r * k + j] = order[j];
      g_out[r * k + j] = static_cast<T>(renormalize ? p[order[j]] / chosen : p[order[j]]);
    }
    ++counts[order[0]];
  }
}

template <typename T>
void backward_typed(const Tensor& probs, const Tensor& ids, const Tensor& load,
                    const Tensor& dgates_in, double daux, bool renormalize, double alpha,
                    const Tensor& dlogits) {
  const Tensor dgates = dgates_in.to(DType::F64).contiguous();
  const int64_t R = probs.size(0), N = probs.size(1), k = ids.size(1);
  const T* p = probs.data<T>();
  const int32_t* id = ids.data<int32_t>();
  const T* f = load.data<T>();
  const double* dg = dgates.data<double>();
  T* out = dlogits.data<T>();
  std::vector<double> dp(N);
  for (int64_t r = 0; r < R; ++r) {
    const T* pr = p + r * N;
    for (int64_t i = 0; i < N; ++i) dp[i] = alpha * N * f[i] / R * daux;
    if (renormalize) {
      // g_j = p_j / S with S the sum of the chosen p: dL/dp_m = dg_m / S - sum_j dg_j p_j / S^2.
      double S = 0, dot = 0;
      for (int64_t j = 0; j < k; ++j) {
        S += pr[id[r * k + j]];
        dot += dg[r * k + j] * pr[id[r * k + j]];
      }
      if (!(S > 0)) S = 1;  // the forward's guard
      for (int64_t j = 0; j < k; ++j) dp[id[r * k + j]] += dg[r * k + j] / S - dot / (S * S);
    } else {
      for (int64_t j = 0; j < k; ++j) dp[id[r * k + j]] += dg[r * k + j];
    }
    double s = 0;
    for (int64_t i = 0; i < N; ++i) s += dp[i] * pr[i];
    for (int64_t i = 0; i < N; ++i) out[r * N + i] = static_cast<T>(pr[i] * (dp[i] - s));
  }
}

}  // namespace

void routing_forward(const Tensor& logits, int64_t k, bool renormalize, const Tensor& probs,
                     const Tensor& ids, const Tensor& gates, const Tensor& top1_counts) {
  if (probs.dtype() == DType::F64) forward_typed<double>(logits, k, renormalize, probs, ids, gates, top1_counts);
  else forward_typed<float>(logits, k, renormalize, probs, ids, gates, top1_counts);
}

void routing_backward(const Tensor& probs, const Tensor& ids, const Tensor& load,
                      const Tensor& dgates, double daux, bool renormalize, double alpha,
                      const Tensor& dlogits) {
  if (probs.dtype() == DType::F64) backward_typed<double>(probs, ids, load, dgates, daux, renormalize, alpha, dlogits);
  else backward_typed<float>(probs, ids, load, dgates, daux, renormalize, alpha, dlogits);
}

void capacity_mask(const Tensor& ids, const Tensor& priority, int64_t experts, int64_t capacity,
                   const Tensor& keep) {
  const int64_t R = ids.size(0), k = ids.size(1);
  const int32_t* id = ids.data<int32_t>();
  uint8_t* out = keep.data<uint8_t>();
  std::vector<int64_t> rows(R);
  std::iota(rows.begin(), rows.end(), 0);
  if (priority.defined()) {
    const double* pr = priority.data<double>();
    std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) { return pr[a] > pr[b]; });
  }
  std::vector<int64_t> used(experts, 0);
  for (int64_t j = 0; j < k; ++j)
    for (int64_t r : rows) {
      const int32_t e = id[r * k + j];
      const bool fits = used[e] < capacity;
      used[e] += fits;
      out[r * k + j] = fits;
    }
}

}  // namespace vimoe::cpu
