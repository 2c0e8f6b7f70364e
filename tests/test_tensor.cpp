#include <gtest/gtest.h>

#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::grad_ok;
using vimoe::testing::leaf64;
using vimoe::testing::uniform;

namespace {
std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }
}  // namespace

TEST(Tensor, Factories) {
  const Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.strides(), (Shape{3, 1}));
  EXPECT_EQ(z.dtype(), DType::F32);
  EXPECT_EQ(values(z), std::vector<double>(6, 0.0));
  EXPECT_EQ(values(Tensor::ones({4}, DType::I64)), std::vector<double>(4, 1.0));
  EXPECT_EQ(values(Tensor::full({2}, 2.5, DType::BF16)), (std::vector<double>{2.5, 2.5}));
  EXPECT_EQ(values(Tensor::arange(0, 5)), (std::vector<double>{0, 1, 2, 3, 4}));
  EXPECT_EQ(values(Tensor::arange(1, 0, -0.25, DType::F64)), (std::vector<double>{1, 0.75, 0.5, 0.25}));
  EXPECT_EQ(Tensor::arange(3, 3).numel(), 0);
  const Tensor s = Tensor::scalar(7, DType::I32);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<int32_t>(), 7);
  const Tensor v = Tensor::from_vector<int64_t>({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(v.dtype(), DType::I64);
  EXPECT_EQ(v.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3, 4}));
  const Tensor e = Tensor::empty({0, 5});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_TRUE(values(e).empty());
}

TEST(Tensor, Int64SurvivesConversionsExactly) {
  const int64_t big = (int64_t{1} << 60) + 1;  // not representable in f64
  const Tensor t = Tensor::from_vector<int64_t>({big, -big}, {2});
  EXPECT_EQ(t.to_vector<int64_t>(), (std::vector<int64_t>{big, -big}));
  EXPECT_EQ(t.transpose(0, 0).contiguous().to_vector<int64_t>()[0], big);
  EXPECT_EQ(t.slice(0, 0, 2, 1).clone().to_vector<int64_t>()[1], -big);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor base = Tensor::arange(0, 24).reshape({2, 3, 4});
  const Tensor p = base.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.storage(), base.storage());
  // p[3][1][2] = base[1][2][3] = 1*12 + 2*4 + 3
  EXPECT_EQ(values(p.select(0, 3).select(0, 1).select(0, 2))[0], 23.0);

  const Tensor s = base.slice(2, 1, 4, 2);  // columns 1 and 3
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(values(s.select(0, 0).select(0, 0)), (std::vector<double>{1, 3}));
  EXPECT_EQ(values(base.narrow(1, 2, 1).flatten()), (std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23}));
  EXPECT_EQ(values(base.slice(0, -1, 100)).size(), 12u);  // python-style clamping

  // Writing through a view changes the base.
  base.narrow(0, 1, 1).fill_(-1);
  EXPECT_EQ(values(base)[12], -1.0);
  EXPECT_EQ(values(base)[11], 11.0);
}

TEST(Tensor, ReshapeViewsWhenItCanAndCopiesWhenItMust) {
  const Tensor base = Tensor::arange(0, 24).reshape({2, 3, 4});
  const Tensor merged = base.reshape({6, 4});
  EXPECT_EQ(merged.storage(), base.storage());
  const Tensor split = base.reshape({2, 3, 2, 2});
  EXPECT_EQ(split.storage(), base.storage());
  // Merging dims 0 and 1 of a tensor whose last dim is sliced is still a view.
  const Tensor sliced = base.slice(2, 0, 2);
  EXPECT_EQ(sliced.view({6, 2}).storage(), base.storage());
  EXPECT_EQ(values(sliced.view({6, 2})), values(sliced.contiguous().view({6, 2})));
  // A transposed tensor cannot be flattened without a copy.
  const Tensor t = base.transpose(1, 2);
  EXPECT_VIMOE_ERROR(t.view({24}), "view", "[2, 4, 3]", "reshape()");
  const Tensor flat = t.reshape({24});
  EXPECT_NE(flat.storage(), base.storage());
  EXPECT_EQ(values(flat)[1], 4.0);  // t[0][0][1] = base[0][1][0]
  EXPECT_EQ(base.reshape({-1, 8}).shape(), (Shape{3, 8}));
  EXPECT_VIMOE_ERROR(base.reshape({5, -1}), "reshape", "[2, 3, 4]", "[5, -1]");
  EXPECT_VIMOE_ERROR(base.reshape({-1, -1}), "only one dimension may be -1");
}

TEST(Tensor, ExpandSqueezeUnsqueeze) {
  const Tensor col = Tensor::arange(0, 3).reshape({3, 1});
  const Tensor e = col.expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_EQ(values(e.contiguous())[5], 1.0);  // [0][1][1]
  EXPECT_VIMOE_ERROR(col.expand({3, 3}).expand({3, 4}), "expand", "[3, 3]", "[3, 4]");
  EXPECT_EQ(col.squeeze(1).shape(), (Shape{3}));
  EXPECT_EQ(col.squeeze(0).shape(), (Shape{3, 1}));  // size 3: unchanged
  EXPECT_EQ(col.unsqueeze(0).shape(), (Shape{1, 3, 1}));
  EXPECT_EQ(col.unsqueeze(-1).shape(), (Shape{3, 1, 1}));
}

TEST(Tensor, DtypeConversionAndPrinting) {
  const Tensor x = Tensor::from_vector<float>({1.5f, -2.25f, 3.0f, 1e-3f}, {2, 2});
  EXPECT_EQ(values(x.to(DType::I32)), (std::vector<double>{1, -2, 3, 0}));
  EXPECT_EQ(values(x.to(DType::BF16)), (std::vector<double>{1.5, -2.25, 3, 0.00099945068359375}));
  const std::string s = x.str();
  EXPECT_NE(s.find("Tensor([2, 2], f32, cpu)"), std::string::npos) << s;
  EXPECT_NE(s.find("[[1.5, -2.25],"), std::string::npos) << s;
  const std::string big = Tensor::zeros({40, 40}).str();
  EXPECT_NE(big.find("..."), std::string::npos);
  EXPECT_LT(big.size(), 400u);
}

TEST(Tensor, BadInputsThrowNamedErrors) {
  const Tensor x = Tensor::zeros({2, 3});
  EXPECT_VIMOE_ERROR(x.permute({0}), "permute", "[2, 3]");
  EXPECT_VIMOE_ERROR(x.permute({0, 0}), "permute", "repeated");
  EXPECT_VIMOE_ERROR(x.transpose(0, 2), "transpose", "dimension 2 out of range");
  EXPECT_VIMOE_ERROR(x.narrow(1, 2, 2), "narrow", "[2, 4)", "[2, 3]");
  EXPECT_VIMOE_ERROR(x.select(0, 2), "select", "index 2", "[2, 3]");
  EXPECT_VIMOE_ERROR(x.item<float>(), "item", "[2, 3]");
  EXPECT_VIMOE_ERROR(x.data<double>(), "data", "f64", "f32");
  EXPECT_VIMOE_ERROR(Tensor::from_vector<float>({1, 2, 3}, {2, 2}), "from_vector", "3 values", "[2, 2]");
  EXPECT_VIMOE_ERROR(Tensor().shape(), "undefined");
  EXPECT_VIMOE_ERROR(Tensor::zeros({2}, DType::I32).set_requires_grad(), "floating", "i32");
  const auto storage = Storage::allocate(16, Device::cpu());
  EXPECT_VIMOE_ERROR(Tensor::from_storage(storage, DType::F32, {2, 3}, {3, 1}, 0), "from_storage", "24 bytes", "16");
  if (!cuda::is_available()) {
    EXPECT_VIMOE_ERROR(x.to(Device::cuda()), "CUDA");
  }
}

TEST(Tensor, CopyBroadcastsAndConverts) {
  Tensor dst = Tensor::zeros({2, 3}, DType::F64);
  dst.copy_(Tensor::from_vector<float>({1, 2, 3}, {3}));
  EXPECT_EQ(values(dst), (std::vector<double>{1, 2, 3, 1, 2, 3}));
  dst.transpose(0, 1).copy_(Tensor::arange(0, 6).reshape({3, 2}));
  EXPECT_EQ(values(dst), (std::vector<double>{0, 2, 4, 1, 3, 5}));
  EXPECT_VIMOE_ERROR(dst.copy_(Tensor::zeros({4})), "copy_", "[2, 3]");
  Tensor w = Tensor::zeros({2}).set_requires_grad();
  EXPECT_VIMOE_ERROR(w.fill_(1), "fill_", "NoGradGuard");
  {
    NoGradGuard g;
    w.fill_(1);
  }
  EXPECT_EQ(values(w), (std::vector<double>{1, 1}));
}

// Views, copies and conversions are differentiable.
TEST(TensorGrad, Views) {
  const Tensor x = leaf64({2, 3, 4}, 1);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return in[0].permute({2, 0, 1}) * 3.0; }, {x}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return in[0].transpose(0, 2).reshape({4, 6}); }, {x}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return in[0].slice(2, 1, 4, 2); }, {x}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return in[0].select(1, -1); }, {x}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return in[0].narrow(0, 1, 1).flatten(); }, {x}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return in[0].unsqueeze(1).squeeze(1).contiguous(); }, {x}));
  const Tensor col = leaf64({3, 1}, 2);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return in[0].expand({2, 3, 5}); }, {col}));
  // Through f32 a finite difference would measure f32 rounding, so check the cast directly.
  const Tensor fresh = leaf64({3, 1}, 9);
  (fresh.to(DType::F32) * 2.0).backward(Tensor::ones({3, 1}));
  EXPECT_EQ(fresh.grad().dtype(), DType::F64);
  EXPECT_EQ(fresh.grad().to_vector<double>(), (std::vector<double>{2, 2, 2}));
}

TEST(TensorGrad, BinaryOpsBroadcastAndNonContiguous) {
  const Tensor a = leaf64({3, 1}, 3), b = leaf64({1, 4}, 4, 0.5, 2.0);
  for (auto f : {+[](const std::vector<Tensor>& in) { return in[0] + in[1]; },
                 +[](const std::vector<Tensor>& in) { return in[0] - in[1]; },
                 +[](const std::vector<Tensor>& in) { return in[0] * in[1]; },
                 +[](const std::vector<Tensor>& in) { return in[0] / in[1]; }}) {
    EXPECT_TRUE(grad_ok(f, {a, b}));
  }
  const Tensor m = leaf64({4, 3}, 5);
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return in[0].t() * in[1] + 2.0; }, {m, a}));
  EXPECT_TRUE(grad_ok([](const std::vector<Tensor>& in) { return sum(in[0], {0}) / sum(in[0]); }, {m}));
}

TEST(Tensor, BinaryOpsValuesAndPromotion) {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3, 1});
  const Tensor b = Tensor::from_vector<int32_t>({10, 20}, {1, 2});
  const Tensor c = a * b;
  EXPECT_EQ(c.dtype(), DType::F32);
  EXPECT_EQ(values(c), (std::vector<double>{10, 20, 20, 40, 30, 60}));
  const Tensor d = Tensor::from_vector<int32_t>({7, 8}, {2}) / Tensor::from_vector<int32_t>({2, 4}, {2});
  EXPECT_EQ(d.dtype(), DType::F32);
  EXPECT_EQ(values(d), (std::vector<double>{3.5, 2}));
  EXPECT_EQ((Tensor::ones({2}, DType::BF16) + 1.0).dtype(), DType::BF16);
  EXPECT_EQ((Tensor::ones({2}, DType::I64) * 0.5).dtype(), DType::F32);
  EXPECT_VIMOE_ERROR(Tensor::zeros({2, 3}) + Tensor::zeros({4}), "add", "[2, 3]", "[4]", "broadcast");
}

TEST(Tensor, SumOverAxes) {
  const Tensor x = Tensor::arange(0, 24).reshape({2, 3, 4});
  EXPECT_EQ(sum(x).item<double>(), 276.0);
  EXPECT_EQ(values(sum(x, {0, 2})), (std::vector<double>{0 + 1 + 2 + 3 + 12 + 13 + 14 + 15, 92, 124}));
  EXPECT_EQ(sum(x, {1}, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(values(sum(x.permute({2, 1, 0}), {-1})), values(sum(x, {0}).t().contiguous().flatten()));
  EXPECT_EQ(sum(Tensor::ones({3}, DType::U8)).dtype(), DType::I64);
  EXPECT_VIMOE_ERROR(sum(x, {1, 1}), "sum", "twice");
  EXPECT_VIMOE_ERROR(sum(x, {3}), "sum", "dimension 3 out of range");
}
