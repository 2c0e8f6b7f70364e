#include "engine/autocast.h"

#include "engine/error.h"

namespace vimoe {
namespace {
thread_local std::optional<DType> g_autocast;
}  // namespace

std::optional<DType> autocast_dtype() { return g_autocast; }

AutocastGuard::AutocastGuard(DType dtype, bool enabled) : prev_(g_autocast) {
  VIMOE_CHECK(dtype == DType::BF16 || dtype == DType::F16,
              "AutocastGuard: the autocast type must be bf16 or f16, found ", dtype_name(dtype));
  g_autocast = enabled ? std::optional<DType>(dtype) : std::nullopt;
}

AutocastGuard::~AutocastGuard() { g_autocast = prev_; }

namespace autocast {

Tensor lower(const Tensor& t) {
  if (!g_autocast || !t.defined() || t.dtype() != DType::F32) return t;
  return t.to(*g_autocast);
}

Tensor upper(const Tensor& t) {
  if (!g_autocast || !t.defined()) return t;
  if (t.dtype() != DType::BF16 && t.dtype() != DType::F16) return t;
  return t.to(DType::F32);
}

Tensor follow(const Tensor& t, const Tensor& like) {
  if (!g_autocast || !t.defined() || !like.defined()) return t;
  if (!is_floating(t.dtype()) || !is_floating(like.dtype())) return t;
  if (t.dtype() == like.dtype() || t.dtype() == DType::F64 || like.dtype() == DType::F64) return t;
  return t.to(like.dtype());
}

}  // namespace autocast
}  // namespace vimoe
