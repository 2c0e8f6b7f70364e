// CPU reference for expert dispatch (see engine/ops/moe_dispatch.h). Row tensors are
// contiguous and viewed as [rows, width].
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace vimoe::cpu {

// Stable counting sort of slots by expert. ids: [slots] i32; writes order and position
// ([slots] i32) and offsets (experts + 1). Throws on an id outside [0, experts).
void plan_dispatch(const Tensor& ids, int64_t experts, const Tensor& order, const Tensor& position,
                   int64_t* offsets);

// out[i, :] = scale[order[i]] * x[order[i] / k, :]; `scale` ([slots], f32/f64) may be undefined
// (no scaling). x and out share a dtype.
void gather_rows(const Tensor& x, const Tensor& order, int64_t k, const Tensor& scale,
                 const Tensor& out);

// y[r, :] = sum_j gates[r*k + j] * src[position[r*k + j], :]; gates may be undefined (all 1).
void combine_rows(const Tensor& src, const Tensor& position, int64_t k, const Tensor& gates,
                  const Tensor& y);

// dgates[r*k + j] = <dy[r, :], src[position[r*k + j], :]> (dgates is f32 or f64).
void gates_grad(const Tensor& dy, const Tensor& src, const Tensor& position, int64_t k,
                const Tensor& dgates);

}  // namespace vimoe::cpu
