#include "engine/cpu/random.h"

#include "engine/cpu/acc.h"
#include "engine/cpu/loops.h"

namespace vimoe::cpu {

namespace {

// Calls f(i, element) for every element of `out` in row-major order; i is the Philox counter.
template <typename T, typename F>
void for_each_indexed(const Tensor& out, F&& f) {
  T* base = static_cast<T*>(out.storage()->data());
  uint64_t i = 0;
  for_each_offset<1>(out.shape(), {&out.strides()}, {out.offset()},
                     [&](const std::array<int64_t, 1>& o) { f(i++, base[o[0]]); });
}

}  // namespace

void fill_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi,
                  double below_hi) {
  VIMOE_DISPATCH_FLOATING(out.dtype(), "uniform", {
    const scalar_t below = from_double<scalar_t>(below_hi);
    for_each_indexed<scalar_t>(out, [&](uint64_t i, scalar_t& v) {
      v = from_double<scalar_t>(kernels::uniform_value(seed, offset, i, lo, hi));
      if (to_double(v) >= hi) v = below;
    });
  });
}

void fill_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) {
  VIMOE_DISPATCH_FLOATING(out.dtype(), "normal", {
    for_each_indexed<scalar_t>(out, [&](uint64_t i, scalar_t& v) {
      v = from_double<scalar_t>(kernels::normal_value(seed, offset, i, mean, std));
    });
  });
}

void fill_trunc_normal(const Tensor& out, uint64_t seed, uint64_t offset,
                       const kernels::TruncNormalParams& params) {
  VIMOE_DISPATCH_FLOATING(out.dtype(), "trunc_normal", {
    for_each_indexed<scalar_t>(out, [&](uint64_t i, scalar_t& v) {
      v = from_double<scalar_t>(kernels::trunc_normal_value(seed, offset, i, params));
    });
  });
}

void dropout_apply(const Tensor& x, const Tensor& out, int64_t group, uint64_t seed,
                   uint32_t threshold, double scale) {
  VIMOE_CHECK(group >= 1, "dropout_apply: group must be positive, got ", group);
  VIMOE_DISPATCH_FLOATING(x.dtype(), "dropout", {
    const scalar_t* px = static_cast<const scalar_t*>(x.storage()->data());
    scalar_t* po = static_cast<scalar_t*>(out.storage()->data());
    const acc_t<scalar_t> s = static_cast<acc_t<scalar_t>>(scale);
    const auto layout = collapse_layout<2>(x.shape(), {&x.strides(), &out.strides()});
    // Element i of the row-major order draws with counter i / group wherever it runs, so
    // the elements split over the threads like any elementwise op.
    parallel_for(0, layout.numel, grain_for(8), [&](int64_t first, int64_t last) {
      int64_t i = first;
      for_each_segment(layout, {x.offset(), out.offset()}, first, last,
                       [&](const Offsets<2>& o, int64_t n, const Offsets<2>& st) {
                         for (int64_t e = 0; e < n; ++e, ++i) {
                           const uint64_t counter = static_cast<uint64_t>(i / group);
                           // A dropped element is an exact zero, even where x is inf or NaN.
                           po[o[1] + e * st[1]] =
                               kernels::dropout_keep(seed, counter, threshold)
                                   ? store<scalar_t>(load(px[o[0] + e * st[0]]) * s)
                                   : store<scalar_t>(acc_t<scalar_t>(0));
                         }
                       });
    });
  });
}

}  // namespace vimoe::cpu
