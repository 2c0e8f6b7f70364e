// CPU reference for concatenation and indexing (engine/ops/index.h has the semantics).
// Data operands may have any strides; outputs are contiguous. Index tensors are i32/i64 of
// any layout. Apart from first_bad_index, every function expects its indices already
// validated by the front-end.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace vimoe::cpu {

// Row-major position of the first entry of `index` outside [0, bound), or -1 if none.
int64_t first_bad_index(const Tensor& index, int64_t bound);

// out = the inputs (all of out's dtype) joined along `dim`.
void concat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out);

// out[.., j, ..] = x[.., index[j], ..] along `dim`; index is 1-D.
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
// out = x, then out[.., index[j], ..] += src[.., j, ..]. x, src and out share a dtype
// (floating or i32/i64); sums accumulate in double (i64 for integers), rounded once.
void index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src,
               const Tensor& out);

// out (index's shape) [p] = x[p with p[dim] = index[p]].
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
// out = x, then out[p with p[dim] = index[p]] += src[p] for every position p of index.
// Accumulates like index_add.
void scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src,
                 const Tensor& out);

// out ([index.numel(), num_classes] contiguous, any dtype) = 1 at (r, index[r]), 0 elsewhere.
void one_hot(const Tensor& index, int64_t num_classes, const Tensor& out);

// For each row of a contiguous [rows, cols] input: the k best entries, best first (largest
// or smallest; NaN above every number; ties to the lower column), into contiguous [rows, k]
// values (in's dtype) and i64 indices.
void topk(const Tensor& in, int64_t rows, int64_t cols, int64_t k, bool largest,
          const Tensor& values, const Tensor& indices);

}  // namespace vimoe::cpu
