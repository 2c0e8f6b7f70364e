// Strided copy with dtype conversion, and fill: the kernels behind contiguous(), to(dtype),
// copy_() and the tensor factories.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/dtype.h"
#include "kernels/strided.h"

namespace vimoe::kernels {

// dst[dst_layout(i)] = convert(src[src_layout(i)]) for i in [0, n). Pointers are storage
// bases: each layout carries its own element offset. Both layouts hold n elements in the
// same sizes (size-1 dimensions aside), otherwise cudaErrorInvalidValue. Dimensions are
// collapsed first (kernels/strided.h); a same-dtype copy moves up to 16 bytes per load where
// the layouts' innermost runs allow, a conversion one element at a time. Returns
// cudaGetLastError().
cudaError_t copy_strided(const void* src, DType src_dtype, const StridedLayout& src_layout,
                         void* dst, DType dst_dtype, const StridedLayout& dst_layout, int64_t n,
                         cudaStream_t stream);

// dst[dst_layout(i)] = value for i in [0, n), value converted as the CPU converts it (through
// double); dst_layout holds n elements, otherwise cudaErrorInvalidValue.
cudaError_t fill(void* dst, DType dtype, const StridedLayout& dst_layout, int64_t n, double value,
                 cudaStream_t stream);

}  // namespace vimoe::kernels
