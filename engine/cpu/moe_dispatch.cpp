#include "engine/cpu/moe_dispatch.h"

#include <algorithm>
#include <vector>

#include "engine/cpu/parallel.h"

namespace vimoe::cpu {

void plan_dispatch(const Tensor& ids, int64_t experts, const Tensor& order, const Tensor& position,
                   int64_t* offsets) {
  const int64_t slots = ids.numel();
  const int32_t* id = ids.data<int32_t>();
  int32_t* ord = order.data<int32_t>();
  int32_t* pos = position.data<int32_t>();
  std::vector<int64_t> next(experts + 1, 0);
  for (int64_t s = 0; s < slots; ++s) {
    VIMOE_CHECK(id[s] >= 0 && id[s] < experts, "plan_dispatch: expert id ", id[s], " at slot ", s,
                " is outside [0, ", experts, ")");
    ++next[id[s] + 1];
  }
  for (int64_t e = 0; e < experts; ++e) next[e + 1] += next[e];
  for (int64_t e = 0; e <= experts; ++e) offsets[e] = next[e];
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t i = next[id[s]]++;
    ord[i] = static_cast<int32_t>(s);
    pos[s] = static_cast<int32_t>(i);
  }
}

namespace {

// Reads element i of a floating scale/gate vector of either precision.
double scalar_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::F64 ? t.data<double>()[i] : t.data<float>()[i];
}

}  // namespace

void gather_rows(const Tensor& x, const Tensor& order, int64_t k, const Tensor& scale,
                 const Tensor& out) {
  const int64_t n = out.size(0), width = out.numel() / std::max<int64_t>(n, 1);
  const int32_t* ord = order.data<int32_t>();
  VIMOE_DISPATCH_FLOATING(x.dtype(), "dispatch_rows", {
    const scalar_t* src = x.data<scalar_t>();
    scalar_t* dst = out.data<scalar_t>();
    parallel_for(0, n, grain_for(width), [&](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i) {
        const scalar_t* row = src + (ord[i] / k) * width;
        scalar_t* o = dst + i * width;
        if (!scale.defined()) {
          std::copy(row, row + width, o);
          continue;
        }
        const double s = scalar_at(scale, ord[i]);
        for (int64_t c = 0; c < width; ++c) o[c] = from_double<scalar_t>(s * to_double(row[c]));
      }
    });
  });
}

void combine_rows(const Tensor& src, const Tensor& position, int64_t k, const Tensor& gates,
                  const Tensor& y) {
  const int64_t rows = y.size(0), width = y.numel() / std::max<int64_t>(rows, 1);
  const int32_t* pos = position.data<int32_t>();
  VIMOE_DISPATCH_FLOATING(src.dtype(), "combine_rows", {
    const scalar_t* in = src.data<scalar_t>();
    scalar_t* out = y.data<scalar_t>();
    parallel_for(0, rows, grain_for(2 * k * width), [&](int64_t first, int64_t last) {
      std::vector<double> acc(width);
      for (int64_t r = first; r < last; ++r) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < k; ++j) {
          const double g = gates.defined() ? scalar_at(gates, r * k + j) : 1.0;
          const scalar_t* row = in + pos[r * k + j] * width;
          for (int64_t c = 0; c < width; ++c) acc[c] += g * to_double(row[c]);
        }
        for (int64_t c = 0; c < width; ++c) out[r * width + c] = from_double<scalar_t>(acc[c]);
      }
    });
  });
}

void gates_grad(const Tensor& dy, const Tensor& src, const Tensor& position, int64_t k,
                const Tensor& dgates) {
  const int64_t rows = dy.size(0), width = dy.numel() / std::max<int64_t>(rows, 1);
  const int32_t* pos = position.data<int32_t>();
  VIMOE_DISPATCH_FLOATING(src.dtype(), "combine_rows backward", {
    const scalar_t* g = dy.data<scalar_t>();
    const scalar_t* in = src.data<scalar_t>();
    parallel_for(0, rows * k, grain_for(2 * width), [&](int64_t first, int64_t last) {
      for (int64_t s = first; s < last; ++s) {
        const scalar_t* a = g + (s / k) * width;
        const scalar_t* b = in + pos[s] * width;
        double dot = 0;
        for (int64_t c = 0; c < width; ++c) dot += to_double(a[c]) * to_double(b[c]);
        if (dgates.dtype() == DType::F64) dgates.data<double>()[s] = dot;
        else dgates.data<float>()[s] = static_cast<float>(dot);
      }
    });
  });
}

}  // namespace vimoe::cpu
