// CUDA cross-entropy over logits [rows, classes] (contiguous) and i64 targets [rows], with
// label smoothing eps and an ignored target value. Math in f32 (f64 for f64 logits):
//   lse_r  = log(sum_c exp(x[r, c]))                                (max-subtracted)
//   loss_r = lse_r - (1 - eps) * x[r, t_r] - (eps / classes) * sum_c x[r, c]
//   loss   = sum of loss_r over rows whose target is not ignore_index, / their count
//            (0 when every row is ignored; PyTorch gives NaN there)
// A target outside [0, classes) that is not ignore_index is reported, never dereferenced:
// the smallest such row is atomically min-ed into *bad_row, which the caller sets to
// `rows` beforehand and reads back afterwards.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace vimoe::kernels {

// Writes `loss` (one element of `dtype`), `lse` and `row_loss` ([rows] each, in the compute
// type: f64 for F64, f32 otherwise) and `count` (one i64: the rows not ignored).
cudaError_t cross_entropy_forward(DType dtype, const void* logits, const int64_t* target,
                                  int64_t rows, int64_t classes, double label_smoothing,
                                  int64_t ignore_index, void* loss, void* lse, void* row_loss,
                                  int64_t* count, unsigned long long* bad_row,
                                  cudaStream_t stream);

// dx[r, c] = (grad / count) * (exp(x[r, c] - lse_r) - (1 - eps) [c == t_r] - eps / classes)
// for rows not ignored, 0 for ignored rows and when count is 0. `grad` is one element of
// `dtype`; `lse` and `count` come from the forward. dx is contiguous [rows, classes].
cudaError_t cross_entropy_backward(DType dtype, const void* logits, const int64_t* target,
                                   int64_t rows, int64_t classes, double label_smoothing,
                                   int64_t ignore_index, const void* grad, const void* lse,
                                   const int64_t* count, void* dx, cudaStream_t stream);

}  // namespace vimoe::kernels
