#include "engine/ops/linalg.h"

#include <algorithm>
#include <array>
#include <climits>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/cpu/linalg.h"
#include "engine/cpu/loops.h"
#include "engine/ops/common.h"
#include "engine/ops/cuda_path.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"

#ifdef VIMOE_WITH_CUDA
#include "kernels/gemm.h"
#endif

namespace vimoe {

namespace detail {

GemmOperand gemm_operand(const Tensor& t) {
  VIMOE_CHECK(t.dim() >= 2, "gemm_operand: expected a matrix, found ", shape_str(t.shape()));
  const int64_t r = t.size(-2), c = t.size(-1);
  const int64_t sr = t.strides()[t.dim() - 2], sc = t.strides()[t.dim() - 1];
  GemmOperand g;
  // An empty matrix never reaches the BLAS; any valid leading dimension will do.
  if (r == 0 || c == 0) {
    g.ld = std::max<int64_t>(1, c);
    return g;
  }
  // The stride of a size-1 dim is never used, so it constrains nothing. A leading
  // dimension below the row (column) length would make rows (columns) overlap, which is
  // how a stride-0 expanded matrix dim shows; BLAS rejects it.
  if (c == 1 || sc == 1) {
    if (r == 1) {
      g.ld = c;
      return g;
    }
    if (sr >= c) {
      g.ld = sr;
      return g;
    }
  }
  if (r == 1 || sr == 1) {
    g.transposed = true;
    if (c == 1) {
      g.ld = r;
      return g;
    }
    if (sc >= r) {
      g.ld = sc;
      return g;
    }
  }
  g.copy = true;
  return g;
}

}  // namespace detail

namespace {

using detail::GemmOperand;

// The batch dims of one GEMM call, after dropping size-1 dims and merging neighbours that
// every operand walks with a single stride. The innermost remaining dim becomes the
// strided batch of the BLAS call; any others are looped over on the host (that happens
// only when broadcasting leaves no common stride, e.g. [2, 1, M, K] @ [5, K, N]).
struct BatchPlan {
  Shape outer;                         // host-loop sizes
  std::array<Shape, 3> outer_strides;  // per operand a, b, c (elements)
  int64_t count = 1;                   // strided batch
  std::array<int64_t, 3> stride{0, 0, 0};
};

BatchPlan plan_batches(const Shape& batch, const std::array<const Shape*, 3>& strides) {
  struct Dim {
    int64_t size;
    std::array<int64_t, 3> stride;
  };
  std::vector<Dim> dims;
  for (size_t d = 0; d < batch.size(); ++d) {
    if (batch[d] == 1) continue;
    const Dim cur{batch[d], {(*strides[0])[d], (*strides[1])[d], (*strides[2])[d]}};
    if (!dims.empty()) {
      Dim& prev = dims.back();
      bool mergeable = true;
      for (int k = 0; k < 3; ++k) mergeable &= prev.stride[k] == cur.stride[k] * cur.size;
      if (mergeable) {
        prev.size *= cur.size;
        prev.stride = cur.stride;
        continue;
      }
    }
    dims.push_back(cur);
  }
  BatchPlan p;
  if (dims.empty()) return p;
  p.count = dims.back().size;
  p.stride = dims.back().stride;
  for (size_t i = 0; i + 1 < dims.size(); ++i) {
    p.outer.push_back(dims[i].size);
    for (int k = 0; k < 3; ++k) p.outer_strides[k].push_back(dims[i].stride[k]);
  }
  return p;
}

// c = a @ b + beta * c for a [batch..., m, k], b [batch..., k, n] (both already expanded to
// c's batch dims, their matrix dims laid out as la / lb say) and c a contiguous
// [batch..., m, n] that is written only here.
void run_gemm(const Tensor& a, const GemmOperand& la, const Tensor& b, const GemmOperand& lb,
              Tensor& c, double beta, const char* op) {
  if (c.numel() == 0) return;
  int64_t m = c.size(-2);
  const int64_t n = c.size(-1), k = a.size(-1);
  if (k == 0) {  // an empty sum: no BLAS accepts it everywhere, and there is nothing to add
    if (beta == 0) c.zero_();
    return;
  }
  const Shape batch(c.shape().begin(), c.shape().end() - 2);
  BatchPlan p = plan_batches(batch, {&a.strides(), &b.strides(), &c.strides()});
  // One shared B and A's matrices stacked row after row (x [B, T, D] @ w [D, E]): the whole
  // batch is a single taller GEMM.
  if (p.outer.empty() && p.count > 1 && p.stride[1] == 0 && !la.transposed &&
      p.stride[0] == m * la.ld && p.stride[2] == m * n && m * p.count <= INT_MAX) {
    m *= p.count;
    p.count = 1;
  }
  VIMOE_CHECK(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && la.ld <= INT_MAX &&
                  lb.ld <= INT_MAX && p.count <= INT_MAX,
              op, ": matrices too large for a 32-bit GEMM: a is ", shape_str(a.shape()), ", b is ",
              shape_str(b.shape()));
  const int64_t es = static_cast<int64_t>(dtype_size(c.dtype()));
  const char* pa = static_cast<const char*>(a.data_ptr());
  const char* pb = static_cast<const char*>(b.data_ptr());
  char* pc = static_cast<char*>(c.data_ptr());
  cpu::for_each_offset<3>(
      p.outer, {&p.outer_strides[0], &p.outer_strides[1], &p.outer_strides[2]}, {0, 0, 0},
      [&](const std::array<int64_t, 3>& o) {
        const void* ea = pa + o[0] * es;
        const void* eb = pb + o[1] * es;
        void* ec = pc + o[2] * es;
        if (c.device().is_cpu()) {
          cpu::gemm(c.dtype(), la.transposed, lb.transposed, m, n, k, 1.0, ea, la.ld,
                    p.stride[0], eb, lb.ld, p.stride[1], beta, ec, n, p.stride[2], p.count);
        } else {
          VIMOE_CUDA_PATH(op, c,
            VIMOE_CUBLAS_CHECK(kernels::gemm_strided_batched(
                cuda::cublas(), c.dtype(), la.transposed, lb.transposed, m, n, k, 1.0, ea, la.ld,
                p.stride[0], eb, lb.ld, p.stride[1], beta, ec, n, p.stride[2], p.count));
          );
        }
      });
}

// The operand as the GEMM will read it: itself when its matrix dims are row- or
// column-major, a contiguous copy otherwise.
Tensor gemm_ready(const Tensor& t, GemmOperand& layout) {
  layout = detail::gemm_operand(t);
  if (!layout.copy) return t;
  Tensor c = t.contiguous();
  layout = detail::gemm_operand(c);
  return c;
}

#ifdef VIMOE_WITH_CUDA
// c = a @ b (+ the epilogue) through one cuBLASLt GEMM, for 2-D a [m, k] and b [k, n] laid
// out as la / lb say and a contiguous c [m, n]; `bias` / `bias_grad` as kernels::gemm_lt
// wants them for `epi`. Returns false, having written nothing, where cuBLASLt declines
// (dtype, alignment, no algorithm) or the product is empty; the caller then takes the
// cuBLAS path.
bool try_gemm_lt(const Tensor& a, const GemmOperand& la, const Tensor& b, const GemmOperand& lb,
                 Tensor& c, kernels::GemmEpilogue epi, const Tensor& bias, Tensor* bias_grad,
                 const char* op) {
  const int64_t m = c.size(0), n = c.size(1), k = a.size(1);
  if (m == 0 || n == 0 || k == 0) return false;
  const cuda::Workspace ws = cuda::gemm_workspace();
  const cublasStatus_t st = kernels::gemm_lt(
      cuda::cublaslt(), c.dtype(), la.transposed, lb.transposed, m, n, k, a.data_ptr(), la.ld,
      b.data_ptr(), lb.ld, c.data_ptr(), n, epi, ops::ptr_or_null(bias),
      bias_grad ? bias_grad->data_ptr() : nullptr, ws.ptr, ws.bytes, cuda::stream());
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
  VIMOE_CHECK(st == CUBLAS_STATUS_SUCCESS, op, ": the cuBLASLt GEMM failed with ",
              cublasGetStatusName(st), " (", cublasGetStatusString(st), ") for a ",
              shape_str(a.shape()), " ", dtype_name(a.dtype()), " @ ", shape_str(b.shape()),
              " product; expected success or CUBLAS_STATUS_NOT_SUPPORTED");
  return true;
}
#endif

// t viewed (or copied) as [rows, last dim]; unlike reshape({-1, n}) it works for n == 0.
Tensor as_rows(const Tensor& t) {
  const int64_t cols = t.size(-1);
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) rows *= t.size(d);
  return t.reshape({rows, cols});
}

Shape with_matrix(Shape batch, int64_t rows, int64_t cols) {
  batch.push_back(rows);
  batch.push_back(cols);
  return batch;
}

// a [..., m, k] @ b [..., k, n], both at least 2-D and already checked. Records nothing.
Tensor matmul_forward(const Tensor& a_in, const Tensor& b_in) {
  VIMOE_PROFILE_SCOPE("matmul");
  NoGradGuard no_grad;
  const int64_t m = a_in.size(-2), k = a_in.size(-1), n = b_in.size(-1);
  const Shape batch = broadcast_shapes(Shape(a_in.shape().begin(), a_in.shape().end() - 2),
                                       Shape(b_in.shape().begin(), b_in.shape().end() - 2),
                                       "matmul");
  GemmOperand la, lb;
  const Tensor a = gemm_ready(a_in, la).expand(with_matrix(batch, m, k));
  const Tensor b = gemm_ready(b_in, lb).expand(with_matrix(batch, k, n));
  Tensor c = Tensor::empty(with_matrix(batch, m, n), TensorOptions(a.dtype(), a.device()));
  run_gemm(a, la, b, lb, c, 0.0, "matmul");
  return c;
}

// matmul of operands with at least two dims each, recorded for autograd.
Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  Tensor out = matmul_forward(a, b);
  autograd::record("matmul", out, {a, b}, [a, b](const Tensor& g_in) {
    const Tensor g = g_in.to(a.dtype());
    Tensor ga, gb;
    if (a.requires_grad()) ga = sum_to_shape(matmul_nd(g, b.transpose(-1, -2)), a.shape());
    if (b.requires_grad()) {
      if (b.dim() == 2 && a.dim() > 2) {
        // b was shared by every batch entry: one GEMM over all rows sums them directly.
        gb = matmul_nd(as_rows(a).t(), as_rows(g));
      } else {
        gb = sum_to_shape(matmul_nd(a.transpose(-1, -2), g), b.shape());
      }
    }
    return std::vector<Tensor>{ga, gb};
  });
  return out;
}

void check_operands(const Tensor& a, const Tensor& b, const char* op, const char* na,
                    const char* nb) {
  ops::check_defined(a, op, na);
  ops::check_defined(b, op, nb);
  ops::check_same_device(a, b, op);
  ops::check_floating(a, op, na);
  ops::check_floating(b, op, nb);
  VIMOE_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", na, " is ", describe(a), ", ", nb,
              " is ", describe(b), " (no implicit promotion; convert one with .to())");
}

}  // namespace

Tensor matmul(const Tensor& a_arg, const Tensor& b_arg) {
  const Tensor a = autocast::lower(a_arg), b = autocast::lower(b_arg);
  check_operands(a, b, "matmul", "a", "b");
  VIMOE_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands need at least one dimension: a is ",
              shape_str(a.shape()), ", b is ", shape_str(b.shape()));
  const int64_t ka = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  VIMOE_CHECK(ka == kb, "matmul: inner dimensions differ: a is ", shape_str(a.shape()), ", b is ",
              shape_str(b.shape()));
  // Batch dims must broadcast; checked here so the message shows the operands' own shapes.
  const int64_t bda = std::max<int64_t>(a.dim() - 2, 0), bdb = std::max<int64_t>(b.dim() - 2, 0);
  for (int64_t i = 1; i <= std::min(bda, bdb); ++i) {
    const int64_t x = a.shape()[bda - i], y = b.shape()[bdb - i];
    VIMOE_CHECK(x == y || x == 1 || y == 1, "matmul: batch dimensions do not broadcast: a is ",
                shape_str(a.shape()), ", b is ", shape_str(b.shape()));
  }
  // 1-D operands become matrices through recorded views, so their gradients come back 1-D.
  const Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
  const Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
  Tensor out = matmul_nd(a2, b2);
  if (b.dim() == 1) out = out.squeeze(-1);
  if (a.dim() == 1) out = out.squeeze(-1 - (b.dim() == 1 ? 0 : 1));
  return out;
}

Tensor linear(const Tensor& x_arg, const Tensor& weight_arg, const Tensor& bias_arg) {
  VIMOE_PROFILE_SCOPE("linear");
  const Tensor x = autocast::lower(x_arg), weight = autocast::lower(weight_arg),
               bias = autocast::lower(bias_arg);
  check_operands(x, weight, "linear", "x", "weight");
  VIMOE_CHECK(weight.dim() == 2, "linear: weight must be 2-D [out_features, in_features], found ",
              shape_str(weight.shape()));
  VIMOE_CHECK(x.dim() >= 1, "linear: x needs at least one dimension, found ",
              shape_str(x.shape()));
  VIMOE_CHECK(x.size(-1) == weight.size(1), "linear: in_features differ: x is ",
              shape_str(x.shape()), ", weight is ", shape_str(weight.shape()));
  const int64_t out_f = weight.size(0);
  if (bias.defined()) {
    check_operands(x, bias, "linear", "x", "bias");
    VIMOE_CHECK(bias.shape() == Shape{out_f}, "linear: bias must be [", out_f,
                "] to match weight ", shape_str(weight.shape()), ", found ",
                shape_str(bias.shape()));
  }
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  out_shape.push_back(out_f);

  Tensor out;
  {
    NoGradGuard no_grad;
    GemmOperand lx, lw;
    const Tensor x2 = gemm_ready(as_rows(x), lx);
    const Tensor wt = gemm_ready(weight.t(), lw);
    Tensor c = Tensor::empty({x2.size(0), out_f}, TensorOptions(x.dtype(), x.device()));
    bool fused = false;
    // CUDA: the bias added in the GEMM's epilogue, in f32 before the output's one rounding
    // (what the cuBLAS path below does through beta = 1 too), without a pass over c first.
    if (bias.defined() && c.is_cuda()) {
      VIMOE_CUDA_PATH("linear", c,
        fused = try_gemm_lt(x2, lx, wt, lw, c, kernels::GemmEpilogue::Bias, bias.contiguous(),
                            nullptr, "linear");
      );
    }
    if (!fused) {
      double beta = 0;
      if (bias.defined()) {
        c.copy_(bias);  // broadcast over the rows; the GEMM then adds x @ w^T onto it
        beta = 1;
      }
      run_gemm(x2, lx, wt, lw, c, beta, "linear");
    }
    out = c.view(out_shape);
  }
  const bool bias_grad = bias.defined() && bias.requires_grad();
  autograd::record("linear", out, {x, weight, bias}, [x, weight, bias_grad](const Tensor& g_in) {
    const Tensor g2 = as_rows(g_in.to(x.dtype()));
    Tensor gx, gw, gb;
    if (x.requires_grad()) gx = matmul_nd(g2, weight).reshape(x.shape());
    // CUDA, both wanted: gw = g^T @ x and gb = the column sums of g from one cuBLASLt GEMM,
    // whose epilogue sums op(A) = g^T over the shared dimension (the rows) as it reads it
    // (GemmEpilogue::BiasGradA; kernels/gemm.cu works out that it is cuBLASLt's BGRADB).
    if (weight.requires_grad() && bias_grad && g2.is_cuda()) {
      VIMOE_CUDA_PATH("linear backward", g2,
        GemmOperand lg, lx;
        const Tensor gt = gemm_ready(g2.t(), lg);
        const Tensor xr = gemm_ready(as_rows(x), lx);
        const TensorOptions opts(x.dtype(), x.device());
        Tensor w_grad = Tensor::empty(weight.shape(), opts);
        Tensor b_grad = Tensor::empty({weight.size(0)}, opts);
        if (try_gemm_lt(gt, lg, xr, lx, w_grad, kernels::GemmEpilogue::BiasGradA, Tensor(), &b_grad,
                        "linear backward")) {
          gw = w_grad;
          gb = b_grad;
        }
      );
    }
    if (weight.requires_grad() && !gw.defined()) gw = matmul_nd(g2.t(), as_rows(x));
    if (bias_grad && !gb.defined()) gb = sum(g2, {0});
    return std::vector<Tensor>{gx, gw, gb};
  });
  return out;
}

}  // namespace vimoe
