#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "engine/nn/layers.h"
#include "engine/nn/module.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

namespace {

struct Leaf : nn::Module {
  Tensor weight = uniform({3, 2}, 1), bias = Tensor::zeros({3});
  Leaf() {
    register_parameter("weight", &weight);
    register_parameter("bias", &bias);
  }
};

struct Tree : nn::Module {
  Tensor scale = Tensor::ones({1});
  Tensor steps = Tensor::zeros({1}, DType::I64);
  std::shared_ptr<Leaf> first, second;
  Tree() {
    register_parameter("scale", &scale);
    register_buffer("steps", &steps);
    first = register_module("first", std::make_shared<Leaf>());
    second = register_module("second", std::make_shared<Leaf>());
  }
};

std::vector<std::string> names(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> out;
  for (const auto& [n, t] : v) out.push_back(n);
  return out;
}

}  // namespace

TEST(Module, NamesParametersDepthFirst) {
  Tree m;
  EXPECT_EQ(names(m.named_parameters()),
            (std::vector<std::string>{"scale", "first.weight", "first.bias", "second.weight", "second.bias"}));
  EXPECT_EQ(names(m.named_buffers()), (std::vector<std::string>{"steps"}));
  EXPECT_EQ(m.num_parameters(), 1 + 2 * (6 + 3));
  for (const Tensor& p : m.parameters()) EXPECT_TRUE(p.requires_grad());
  EXPECT_EQ(m.state_dict().size(), 6u);
}

TEST(Module, RejectsDuplicateAndDottedNames) {
  struct Bad : nn::Module {
    Tensor a = Tensor::zeros({1});
    void add(const std::string& n) { register_parameter(n, &a); }
  } bad;
  bad.add("a");
  EXPECT_VIMOE_ERROR(bad.add("a"), "\"a\"", "twice");
  EXPECT_VIMOE_ERROR(bad.add("x.y"), "x.y", "dots");
}

TEST(Module, StateDictRoundTripThroughSafetensors) {
  Tree a, b;
  {
    NoGradGuard g;
    a.first->weight.fill_(0.25);
    a.steps.fill_(7);
  }
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("vimoe_module_" + std::to_string(::getpid()) + ".safetensors")).string();
  a.save(path);
  const auto report = b.load(path);
  std::filesystem::remove(path);
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.unexpected.empty());
  for (const auto& [n, t] : a.state_dict()) EXPECT_TRUE(all_close(b.state_dict().at(n), t, 0, 0)) << n;
  EXPECT_TRUE(b.first->weight.requires_grad());
  EXPECT_TRUE(b.first->weight.is_leaf());
}

TEST(Module, LoadReportsKeysAndRejectsShapes) {
  Tree m;
  std::map<std::string, Tensor> sd = m.state_dict();
  sd.erase("second.bias");
  sd.emplace("extra.weight", Tensor::zeros({1}));
  EXPECT_VIMOE_ERROR(m.load_state_dict(sd), "1 missing", "1 unexpected", "second.bias", "extra.weight");
  const auto report = m.load_state_dict(sd, /*strict=*/false);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"second.bias"}));
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"extra.weight"}));

  std::map<std::string, Tensor> wrong = m.state_dict();
  const Tensor before = m.first->bias.clone();
  wrong["first.bias"] = Tensor::ones({3});
  wrong["second.weight"] = Tensor::zeros({2, 3});
  EXPECT_VIMOE_ERROR(m.load_state_dict(wrong), "second.weight", "[2, 3]", "[3, 2]");
  EXPECT_TRUE(all_close(m.first->bias, before, 0, 0)) << "a failed load changed the module";
}

TEST(Module, DtypeTrainModeAndZeroGrad) {
  Tree m;
  m.to(DType::F64);
  EXPECT_EQ(m.first->weight.dtype(), DType::F64);
  EXPECT_EQ(m.steps.dtype(), DType::I64);  // integer buffers keep their type
  EXPECT_TRUE(m.first->weight.requires_grad());
  m.eval();
  EXPECT_FALSE(m.second->is_training());
  m.train();
  EXPECT_TRUE(m.second->is_training());
  sum(m.first->weight * 2.0).backward();
  EXPECT_TRUE(m.first->weight.grad().defined());
  m.zero_grad();
  EXPECT_FALSE(m.first->weight.grad().defined());
}

// nn::Conv2d: parameter names and shapes (depthwise too), torch's initialisation bound, and a
// forward that is conv2d with the module's options.
TEST(Module, Conv2dLayer) {
  Conv2dOptions o;
  o.stride = {2, 2};
  o.padding = {1, 1};
  nn::Conv2d conv(4, 6, {3, 3}, o);
  const auto params = conv.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].first, "weight");
  EXPECT_EQ(conv.weight.shape(), (Shape{6, 4, 3, 3}));
  EXPECT_EQ(conv.bias.shape(), (Shape{6}));
  const double bound = 1.0 / std::sqrt(4.0 * 9.0);
  for (float v : conv.weight.to_vector<float>()) ASSERT_LE(std::abs(v), bound);
  const Tensor x = vimoe::testing::uniform({2, 4, 7, 6}, 1);
  EXPECT_TRUE(vimoe::testing::all_close(conv.forward(x), conv2d(x, conv.weight, conv.bias, o), 0, 0));
  EXPECT_EQ(conv.forward(x).shape(), (Shape{2, 6, 4, 3}));

  Conv2dOptions depthwise;
  depthwise.padding = {3, 3};
  depthwise.groups = 8;
  nn::Conv2d dw(8, 8, {7, 7}, depthwise, /*bias=*/false);
  EXPECT_EQ(dw.weight.shape(), (Shape{8, 1, 7, 7}));
  EXPECT_FALSE(dw.bias.defined());
  EXPECT_EQ(dw.named_parameters().size(), 1u);
  EXPECT_VIMOE_ERROR(nn::Conv2d(6, 4, {3, 3}, depthwise), "Conv2d", "groups must divide");
}
