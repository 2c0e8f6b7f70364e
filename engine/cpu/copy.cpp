#include "engine/cpu/copy.h"

#include <algorithm>
#include <cstring>

#include "engine/cpu/loops.h"
#include "engine/profiler.h"

namespace vimoe::cpu {

void copy(const Tensor& src, const Tensor& dst) {
  VIMOE_PROFILE_SCOPE("copy");
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    const char* s = static_cast<const char*>(src.data_ptr());
    char* d = static_cast<char*>(dst.data_ptr());
    const int64_t es = static_cast<int64_t>(dtype_size(src.dtype()));
    parallel_for(0, src.numel(), grain_for(1), [&](int64_t first, int64_t last) {
      std::memcpy(d + first * es, s + first * es, static_cast<size_t>((last - first) * es));
    });
    return;
  }
  const char* sbase = static_cast<const char*>(src.storage()->data());
  char* dbase = static_cast<char*>(dst.storage()->data());
  const auto layout = collapse_layout<2>(dst.shape(), {&src.strides(), &dst.strides()});
  VIMOE_DISPATCH(src.dtype(), "copy", {
    using src_t = scalar_t;
    VIMOE_DISPATCH(dst.dtype(), "copy", {
      const src_t* s = reinterpret_cast<const src_t*>(sbase);
      scalar_t* d = reinterpret_cast<scalar_t*>(dbase);
      parallel_segments(layout, {src.offset(), dst.offset()}, 1,
                        [&](const Offsets<2>& o, int64_t n, const Offsets<2>& st) {
                          const src_t* from = s + o[0];
                          scalar_t* to = d + o[1];
                          run_segment(n, st, [&](int64_t i, int64_t k) {
                            to[k] = convert<scalar_t>(from[i]);
                          });
                        });
    });
  });
}

void fill(const Tensor& dst, double value) {
  VIMOE_PROFILE_SCOPE("fill");
  char* base = static_cast<char*>(dst.storage()->data());
  const auto layout = collapse_layout<1>(dst.shape(), {&dst.strides()});
  VIMOE_DISPATCH(dst.dtype(), "fill", {
    scalar_t* d = reinterpret_cast<scalar_t*>(base);
    const scalar_t v = from_double<scalar_t>(value);
    parallel_segments(layout, {dst.offset()}, 0,
                      [&](const Offsets<1>& o, int64_t n, const Offsets<1>& st) {
                        scalar_t* to = d + o[0];
                        run_segment(n, st, [&](int64_t k) { to[k] = v; });
                      });
  });
}

}  // namespace vimoe::cpu
