// Concatenation and indexing: concat / stack / split, index_select / index_add (a 1-D
// index along one axis), gather / scatter_add (torch.gather semantics), one_hot and topk.
// CPU reference: engine/cpu/index.cpp; CUDA: kernels/index.cu.
//
// Index tensors are i32 or i64, on the device of the data. Every index must lie in
// [0, size) of the indexed axis: negative indices are rejected rather than wrapped (a
// negative id is almost always a bug upstream, e.g. an unset routing slot), and any bad
// index throws vimoe::Error naming the op, the value, its position and the valid range.
// On CUDA that check costs a stream synchronisation per call (see index.cpp).
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace vimoe {

// ---- concatenation -------------------------------------------------------------------

// Joins tensors along `dim`; every other dimension must agree. Dtypes promote
// (promote_types). Backward: each input receives its slice of the gradient.
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Joins equally shaped tensors along a new axis `dim` (in [-(ndim+1), ndim]).
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Views of consecutive chunks of `size` along `dim`; the last may be shorter. Each view is
// recorded by Tensor::narrow, so gradients flow back to x.
// Note: `split(x, {5})` binds to this overload (a braced scalar); spell the list as
// std::vector<int64_t>{5} to mean "sizes".
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim = 0);
// Views of chunks with the given sizes, which must sum to x.size(dim).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);

// ---- indexing along one axis with a 1-D index ----------------------------------------

// out = x with axis `dim` replaced by index.numel() entries: out[.., j, ..] = x[.., index[j], ..].
// Backward: index_add of the gradient into zeros.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// Out of place: out = x, then out[.., index[j], ..] += src[.., j, ..] for every j (repeated
// indices accumulate). src has x's shape with axis `dim` of length index.numel(); x and src
// promote. Differentiable w.r.t. x (identity) and src (index_select of the gradient).
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

// ---- element-wise indexing (torch.gather / torch.scatter_add) -------------------------

// out has index's shape; out[i][j][k] = x[i][index[i][j][k]][k] for dim = 1 (likewise for
// other axes). index has x's rank and index.size(d) <= x.size(d) for d != dim.
// Backward: scatter_add of the gradient into zeros.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// Out of place: out = x, then out[i][index[i][j][k]][k] += src[i][j][k] for dim = 1, over
// every position of index (src may be larger than index in any axis; the rest of it is
// unused). index.size(d) <= x.size(d) for d != dim. x and src promote. Differentiable
// w.r.t. x (identity) and src (gather of the gradient, zero where src was unused).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

// ---- one-hot and top-k ---------------------------------------------------------------

// out has shape index.shape + [num_classes] with 1 at each index and 0 elsewhere, in
// `dtype` (f32 by default so it multiplies probabilities directly). Not differentiable.
Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype = DType::F32);

struct TopK {
  Tensor values;   // x's dtype; x's shape with axis `dim` of length k
  Tensor indices;  // i64, same shape: positions along `dim`
};
// The k largest (or smallest) entries along `dim`, best first; equal values keep their
// original order (the lower index first). NaN counts as larger than every number, as in
// torch. Any 0 <= k <= x.size(dim). values are differentiable: the gradient goes to the
// selected positions, zero elsewhere.
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);

}  // namespace vimoe
