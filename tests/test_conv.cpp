// conv2d's CPU reference against independent computations: a hand-worked example (with
// stride and padding), a 1x1 convolution as a matrix product over channels, a grouped
// convolution as its groups run one by one, a dilated kernel as the same kernel spread out
// with zeros; and the errors for bad shapes and options. The f64 gradient checks and the
// CUDA comparison are rows of the op-parity table (tests/op_parity/cases_conv.cpp).
#include <gtest/gtest.h>

#include "engine/ops/conv.h"
#include "engine/ops/index.h"
#include "engine/ops/linalg.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;

TEST(Conv2d, HandWorkedExample) {
  // x = 1..16 as a 4x4 image; a 2x2 kernel [[1, 0], [0, -1]] takes x[i][j] - x[i+1][j+1] = -5.
  const Tensor x = Tensor::arange(1, 17).reshape({1, 1, 4, 4});
  const Tensor w = Tensor::from_vector<float>({1, 0, 0, -1}, {1, 1, 2, 2});
  const Tensor b = Tensor::from_vector<float>({0.5f}, {1});
  EXPECT_EQ(conv2d(x, w, b).to_vector<float>(), std::vector<float>(9, -4.5f));
  // Stride 2 and padding 1 over the 6x6 padded image: out[i][j] = xp[2i][2j] - xp[2i+1][2j+1],
  // where xp[r][c] = x[r-1][c-1] (0 outside): the top-left output is 0 - x[0][0] = -1.
  Conv2dOptions o;
  o.stride = {2, 2};
  o.padding = {1, 1};
  const Tensor y = conv2d(x, w, Tensor(), o);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{-1, -3, 0, -9, -5, 8, 0, 14, 16}));
}

TEST(Conv2d, OneByOneIsAMatrixProductOverChannels) {
  const Tensor x = uniform({2, 5, 3, 4}, 1, -1, 1, DType::F64), w = uniform({7, 5, 1, 1}, 2, -1, 1, DType::F64);
  const Tensor y = conv2d(x, w, Tensor());
  // y[n, o, p] = sum_c w[o, c] x[n, c, p]
  const Tensor expected = matmul(w.reshape({7, 5}), x.reshape({2, 5, 12})).reshape({2, 7, 3, 4});
  EXPECT_TRUE(all_close(y, expected, 1e-12, 1e-12));
}

TEST(Conv2d, GroupsRunAsSeparateConvolutions) {
  for (int64_t groups : {2, 6}) {  // 6: depthwise
    SCOPED_TRACE(groups);
    const int64_t cin = 6, cout = 6;
    const Tensor x = uniform({2, cin, 7, 5}, 3, -1, 1, DType::F64);
    const Tensor w = uniform({cout, cin / groups, 3, 3}, 4, -1, 1, DType::F64);
    const Tensor b = uniform({cout}, 5, -1, 1, DType::F64);
    Conv2dOptions o;
    o.padding = {1, 1};
    o.stride = {2, 1};
    o.groups = groups;
    const Tensor y = conv2d(x, w, b, o);
    std::vector<Tensor> parts;
    Conv2dOptions one = o;
    one.groups = 1;
    const int64_t ci = cin / groups, co = cout / groups;
    for (int64_t g = 0; g < groups; ++g)
      parts.push_back(conv2d(x.narrow(1, g * ci, ci), w.narrow(0, g * co, co), b.narrow(0, g * co, co), one));
    EXPECT_TRUE(all_close(y, concat(parts, 1), 1e-12, 1e-12));
  }
}

TEST(Conv2d, DilationIsAKernelSpreadWithZeros) {
  const Tensor x = uniform({1, 2, 9, 8}, 6, -1, 1, DType::F64), w = uniform({3, 2, 2, 3}, 7, -1, 1, DType::F64);
  Conv2dOptions dilated;
  dilated.dilation = {3, 2};
  // The 2x3 kernel with dilation (3, 2) is the 4x5 kernel holding it at rows 0, 3 and columns 0, 2, 4.
  const std::vector<double> wv = w.to_vector<double>();
  std::vector<double> sv(3 * 2 * 4 * 5, 0.0);
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t b = 0; b < 3; ++b) sv[((o * 2 + c) * 4 + 3 * a) * 5 + 2 * b] = wv[((o * 2 + c) * 2 + a) * 3 + b];
  const Tensor spread = Tensor::from_vector<double>(sv, {3, 2, 4, 5});
  EXPECT_TRUE(all_close(conv2d(x, w, Tensor(), dilated), conv2d(x, spread, Tensor()), 1e-12, 1e-12));
}

TEST(Conv2d, BadInputsAreNamed) {
  const Tensor x = Tensor::zeros({2, 6, 8, 8});
  EXPECT_VIMOE_ERROR(conv2d(Tensor::zeros({6, 8, 8}), Tensor::zeros({4, 6, 3, 3}), Tensor()), "conv2d",
                     "x must be [N, C, H, W]");
  EXPECT_VIMOE_ERROR(conv2d(x, Tensor::zeros({4, 5, 3, 3}), Tensor()), "conv2d", "takes 5 channels per group",
                     "has 6");
  Conv2dOptions g4;
  g4.groups = 4;
  EXPECT_VIMOE_ERROR(conv2d(x, Tensor::zeros({4, 1, 3, 3}), Tensor(), g4), "groups (4) must divide");
  EXPECT_VIMOE_ERROR(conv2d(x, Tensor::zeros({4, 6, 3, 3}), Tensor::zeros({3})), "bias must be [4]");
  EXPECT_VIMOE_ERROR(conv2d(x, Tensor::zeros({4, 6, 9, 9}), Tensor()), "the output would be empty");
  Conv2dOptions bad;
  bad.stride = {0, 1};
  EXPECT_VIMOE_ERROR(conv2d(x, Tensor::zeros({4, 6, 3, 3}), Tensor(), bad), "stride and dilation must be >= 1");
  EXPECT_VIMOE_ERROR(conv2d(x, Tensor::zeros({4, 6, 3, 3}, TensorOptions(DType::F64)), Tensor()),
                     "must have the dtype of x");
  EXPECT_EQ(conv_output_size(224, 4, 4, 0, 1), 56);
  EXPECT_EQ(conv_output_size(56, 7, 1, 3, 1), 56);
}
