// IDX (MNIST-family) reader: round trips through generated raw and gzip files, every error
// case, and the real Fashion-MNIST when Debian's dataset-fashion-mnist is installed.
#include <zlib.h>

#include <filesystem>

#include "data/idx.h"
#include "test_data_util.h"
#include "test_util.h"

namespace vimoe::data {
namespace {

using vimoe::testing::pattern_bytes;
using vimoe::testing::read_bytes;
using vimoe::testing::TempDir;
using vimoe::testing::write_bytes;

// Header bytes: 0, 0, type, ndims, then big-endian 32-bit sizes.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& values,
                               uint8_t type = 0x08) {
  std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  b.insert(b.end(), values.begin(), values.end());
  return b;
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::vector<std::string> names(int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back("class" + std::to_string(i));
  return v;
}

struct IdxFiles {
  std::vector<uint8_t> pixels, labels;
  std::string images_path, labels_path;
};

// 7 images of 5x4 and labels i % 3 in `dir`, raw or gzipped, under the train split's names.
IdxFiles write_split(const TempDir& dir, bool gz) {
  IdxFiles f;
  f.pixels = pattern_bytes(7 * 5 * 4, 1);
  for (int i = 0; i < 7; ++i) f.labels.push_back(static_cast<uint8_t>(i % 3));
  const std::string suffix = gz ? ".gz" : "";
  f.images_path = dir / ("train-images-idx3-ubyte" + suffix);
  f.labels_path = dir / ("train-labels-idx1-ubyte" + suffix);
  const auto images = idx_bytes({7, 5, 4}, f.pixels), labels = idx_bytes({7}, f.labels);
  if (gz) {
    write_gz(f.images_path, images);
    write_gz(f.labels_path, labels);
  } else {
    write_bytes(f.images_path, images);
    write_bytes(f.labels_path, labels);
  }
  return f;
}

void expect_round_trip(const IdxDataset& ds, const IdxFiles& f) {
  ASSERT_EQ(ds.size(), 7);
  EXPECT_EQ(ds.height(), 5);
  EXPECT_EQ(ds.width(), 4);
  EXPECT_EQ(ds.channels(), 1);
  EXPECT_EQ(ds.num_classes(), 3);
  for (int64_t i = 0; i < 7; ++i) {
    const Sample s = ds.get(i);
    EXPECT_EQ(s.label, i % 3);
    EXPECT_EQ(ds.label(i), i % 3);
    ASSERT_EQ(s.image.height, 5);
    ASSERT_EQ(s.image.width, 4);
    ASSERT_EQ(s.image.channels, 1);
    for (int64_t y = 0; y < 5; ++y)
      for (int64_t x = 0; x < 4; ++x) ASSERT_EQ(s.image.at(y, x, 0), f.pixels[i * 20 + y * 4 + x]);
  }
}

TEST(DataIdx, RoundTripRawAndGzip) {
  for (bool gz : {false, true}) {
    SCOPED_TRACE(gz ? "gzip" : "raw");
    TempDir dir;
    const IdxFiles f = write_split(dir, gz);
    expect_round_trip(IdxDataset(f.images_path, f.labels_path, names(3)), f);
    // The split helper finds the same files (preferring .gz) under their standard names.
    auto [images, labels] = IdxDataset::split_files(dir.path(), "train");
    EXPECT_EQ(images, f.images_path);
    EXPECT_EQ(labels, f.labels_path);
  }
}

TEST(DataIdx, FourDimensionalColourImages) {
  TempDir dir;
  const auto pixels = pattern_bytes(2 * 3 * 2 * 3, 2);
  write_bytes(dir / "im", idx_bytes({2, 3, 2, 3}, pixels));
  write_bytes(dir / "lb", idx_bytes({2}, {1, 0}));
  IdxDataset ds(dir / "im", dir / "lb", names(2));
  EXPECT_EQ(ds.channels(), 3);
  const Sample s = ds.get(1);
  EXPECT_EQ(s.label, 0);
  EXPECT_EQ(s.image.at(2, 1, 2), pixels[18 + (2 * 2 + 1) * 3 + 2]);
}

TEST(DataIdx, Errors) {
  TempDir dir;
  const IdxFiles f = write_split(dir, false);
  const std::string im = dir / "im", lb = dir / "lb";

  // Wrong type byte (0x09: signed bytes) and wrong dimension count.
  write_bytes(im, idx_bytes({7, 5, 4}, f.pixels, 0x09));
  EXPECT_VIMOE_ERROR(IdxDataset(im, f.labels_path, names(3)), im.c_str(), "bad magic");
  write_bytes(im, idx_bytes({7, 20}, f.pixels));
  EXPECT_VIMOE_ERROR(IdxDataset(im, f.labels_path, names(3)), im.c_str(), "bad magic");
  write_bytes(lb, idx_bytes({7, 1}, f.labels));
  EXPECT_VIMOE_ERROR(IdxDataset(f.images_path, lb, names(3)), lb.c_str(), "bad magic");

  // Truncated: missing pixel bytes, a cut header, a file shorter than the magic number.
  std::vector<uint8_t> bytes = idx_bytes({7, 5, 4}, f.pixels);
  write_bytes(im, std::vector<uint8_t>(bytes.begin(), bytes.end() - 1));
  EXPECT_VIMOE_ERROR(IdxDataset(im, f.labels_path, names(3)), im.c_str(), "truncated");
  write_bytes(im, std::vector<uint8_t>(bytes.begin(), bytes.begin() + 10));
  EXPECT_VIMOE_ERROR(IdxDataset(im, f.labels_path, names(3)), im.c_str(), "truncated");
  write_bytes(im, {0, 0});
  EXPECT_VIMOE_ERROR(IdxDataset(im, f.labels_path, names(3)), im.c_str(), "truncated");
  // Trailing garbage.
  bytes.push_back(0);
  write_bytes(im, bytes);
  EXPECT_VIMOE_ERROR(IdxDataset(im, f.labels_path, names(3)), im.c_str(), "1 unexpected bytes");

  // A gzip stream cut short, and one whose compressed body is garbage.
  const std::string im_gz = im + ".gz";
  write_gz(im_gz, idx_bytes({7, 5, 4}, f.pixels));
  std::vector<uint8_t> gz = read_bytes(im_gz);
  write_bytes(im_gz, std::vector<uint8_t>(gz.begin(), gz.end() - 12));
  EXPECT_VIMOE_ERROR(IdxDataset(im_gz, f.labels_path, names(3)), im_gz.c_str(), "truncated");
  for (size_t i = 10; i < gz.size(); ++i) gz[i] = 0xff;
  write_bytes(im_gz, gz);
  EXPECT_VIMOE_ERROR(IdxDataset(im_gz, f.labels_path, names(3)), im_gz.c_str(), "corrupt gzip");

  // Counts disagree; a label out of range; a missing file.
  write_bytes(lb, idx_bytes({6}, std::vector<uint8_t>(f.labels.begin(), f.labels.end() - 1)));
  EXPECT_VIMOE_ERROR(IdxDataset(f.images_path, lb, names(3)), "7 images", "6 labels", lb.c_str());
  std::vector<uint8_t> bad = f.labels;
  bad[4] = 3;
  write_bytes(lb, idx_bytes({7}, bad));
  EXPECT_VIMOE_ERROR(IdxDataset(f.images_path, lb, names(3)), lb.c_str(), "label 3", "item 4",
                     "3 classes");
  const std::string absent = dir / "absent";
  EXPECT_VIMOE_ERROR(IdxDataset(absent, f.labels_path, names(3)), absent.c_str(), "cannot open");

  // Bad split names, a split whose files are absent, indices out of range.
  EXPECT_VIMOE_ERROR(IdxDataset::split_files(dir.path(), "val"), "unknown split 'val'");
  EXPECT_VIMOE_ERROR(IdxDataset::split_files(dir.path(), "test"), "t10k-images-idx3-ubyte");
  IdxDataset ds(f.images_path, f.labels_path, names(3));
  EXPECT_VIMOE_ERROR(ds.get(7), "index 7", "[0, 7)", f.images_path.c_str());
  EXPECT_VIMOE_ERROR(ds.label(-1), "index -1");
}

// The real thing, when Debian's dataset-fashion-mnist is installed.
TEST(DataIdx, FashionMnist) {
  if (!std::filesystem::is_directory(kFashionMnistDir))
    GTEST_SKIP() << kFashionMnistDir << " is absent (Debian package dataset-fashion-mnist)";
  for (auto [split, count] : {std::pair<const char*, int64_t>{"train", 60000}, {"test", 10000}}) {
    SCOPED_TRACE(split);
    const IdxDataset ds = IdxDataset::fashion_mnist(split);
    ASSERT_EQ(ds.size(), count);
    EXPECT_EQ(ds.num_classes(), 10);
    EXPECT_EQ(ds.class_names()[9], "Ankle boot");
    EXPECT_EQ(ds.height(), 28);
    EXPECT_EQ(ds.width(), 28);
    EXPECT_EQ(ds.channels(), 1);
    // Fashion-MNIST is balanced: every class holds a tenth of each split.
    std::vector<int64_t> per_class(10, 0);
    for (int64_t i = 0; i < ds.size(); ++i) {
      const int64_t y = ds.label(i);
      ASSERT_TRUE(y >= 0 && y < 10) << "item " << i;
      ++per_class[y];
    }
    for (int64_t c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], count / 10) << "class " << c;
    // Real images are not blank: the first one has both dark and bright pixels.
    const Sample s = ds.get(0);
    const auto [lo, hi] = std::minmax_element(s.image.pixels.begin(), s.image.pixels.end());
    EXPECT_EQ(*lo, 0);
    EXPECT_GT(*hi, 200);
  }
}

}  // namespace
}  // namespace vimoe::data
