#include "engine/cpu/copy.h"

#include <cstring>

#include "engine/cpu/loops.h"
#include "engine/profiler.h"

namespace vimoe::cpu {

void copy(const Tensor& src, const Tensor& dst) {
  VIMOE_PROFILE_SCOPE("copy");
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(dst.data_ptr(), src.data_ptr(), src.nbytes());
    return;
  }
  const char* sbase = static_cast<const char*>(src.storage()->data());
  char* dbase = static_cast<char*>(dst.storage()->data());
  VIMOE_DISPATCH(src.dtype(), "copy", {
    using src_t = scalar_t;
    VIMOE_DISPATCH(dst.dtype(), "copy", {
      const src_t* s = reinterpret_cast<const src_t*>(sbase);
      scalar_t* d = reinterpret_cast<scalar_t*>(dbase);
      for_each_offset<2>(dst.shape(), {&src.strides(), &dst.strides()},
                         {src.offset(), dst.offset()}, [&](const std::array<int64_t, 2>& o) {
                           d[o[1]] = convert<scalar_t>(s[o[0]]);
                         });
    });
  });
}

void fill(const Tensor& dst, double value) {
  VIMOE_PROFILE_SCOPE("fill");
  char* base = static_cast<char*>(dst.storage()->data());
  VIMOE_DISPATCH(dst.dtype(), "fill", {
    scalar_t* d = reinterpret_cast<scalar_t*>(base);
    const scalar_t v = from_double<scalar_t>(value);
    for_each_offset<1>(dst.shape(), {&dst.strides()}, {dst.offset()},
                       [&](const std::array<int64_t, 1>& o) { d[o[0]] = v; });
  });
}

}  // namespace vimoe::cpu
