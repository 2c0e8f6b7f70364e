// CIFAR-10 / CIFAR-100 binary readers on files generated here.
#include "data/cifar.h"
#include "test_data_util.h"
#include "test_util.h"

namespace vimoe::data {
namespace {

using vimoe::testing::pattern_bytes;
using vimoe::testing::TempDir;
using vimoe::testing::write_bytes;

// `n` records: the label bytes given by label(r) (one for CIFAR-10, two for CIFAR-100),
// then 3072 pattern bytes.
template <typename LabelFn>
std::vector<uint8_t> records(int n, uint32_t seed, LabelFn label) {
  std::vector<uint8_t> out;
  for (int r = 0; r < n; ++r) {
    const std::vector<uint8_t> l = label(r);
    out.insert(out.end(), l.begin(), l.end());
    const auto img = pattern_bytes(3072, seed * 100 + r);
    out.insert(out.end(), img.begin(), img.end());
  }
  return out;
}

// Pixel (y, x, c) of a record's image: planes of 1024 bytes, R then G then B.
uint8_t planar(const std::vector<uint8_t>& file, int record_size, int label_bytes, int r, int y,
               int x, int c) {
  return file[r * record_size + label_bytes + c * 1024 + y * 32 + x];
}

TEST(DataCifar, Cifar10) {
  TempDir dir;
  std::vector<std::vector<uint8_t>> batches;
  for (int b = 1; b <= 5; ++b) {
    batches.push_back(records(b, b, [b](int r) { return std::vector<uint8_t>{uint8_t((b + r) % 10)}; }));
    write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), batches.back());
  }
  write_bytes(dir / "test_batch.bin", records(4, 9, [](int r) { return std::vector<uint8_t>{uint8_t(9 - r)}; }));
  const std::string meta = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
  write_bytes(dir / "batches.meta.txt", std::vector<uint8_t>(meta.begin(), meta.end()));

  const CifarDataset train = CifarDataset::cifar10(dir.path(), "train");
  ASSERT_EQ(train.size(), 1 + 2 + 3 + 4 + 5);
  EXPECT_EQ(train.num_classes(), 10);
  EXPECT_EQ(train.class_names()[9], "truck");
  // Item 7 is record 1 of data_batch_4 (items 0 | 1-2 | 3-5 | 6-9 | 10-14).
  const Sample s = train.get(7);
  EXPECT_EQ(s.label, (4 + 1) % 10);
  ASSERT_EQ(s.image.height, 32);
  ASSERT_EQ(s.image.width, 32);
  ASSERT_EQ(s.image.channels, 3);
  for (int y : {0, 13, 31})
    for (int x : {0, 7, 31})
      for (int c = 0; c < 3; ++c)
        EXPECT_EQ(s.image.at(y, x, c), planar(batches[3], 3073, 1, 1, y, x, c));

  const CifarDataset test = CifarDataset::cifar10(dir.path(), "test");
  ASSERT_EQ(test.size(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(test.label(i), 9 - i);
}

TEST(DataCifar, Cifar100FineAndCoarse) {
  TempDir dir;
  const auto file = records(6, 3, [](int r) {
    return std::vector<uint8_t>{uint8_t(19 - r), uint8_t(99 - 7 * r)};
  });
  write_bytes(dir / "train.bin", file);
  const CifarDataset fine = CifarDataset::cifar100(dir.path(), "train");
  const CifarDataset coarse = CifarDataset::cifar100(dir.path(), "train", CifarLabels::Coarse);
  ASSERT_EQ(fine.size(), 6);
  EXPECT_EQ(fine.num_classes(), 100);
  EXPECT_EQ(coarse.num_classes(), 20);
  EXPECT_EQ(fine.class_names()[42], "42");  // no name file: numeric names
  for (int r = 0; r < 6; ++r) {
    EXPECT_EQ(fine.label(r), 99 - 7 * r);
    EXPECT_EQ(coarse.label(r), 19 - r);
  }
  const Sample s = coarse.get(5);
  EXPECT_EQ(s.image.at(31, 30, 1), planar(file, 3074, 2, 5, 31, 30, 1));
  EXPECT_EQ(s.image.at(2, 3, 2), planar(file, 3074, 2, 5, 2, 3, 2));

  std::string coarse_names;
  for (int i = 0; i < 20; ++i) coarse_names += "super" + std::to_string(i) + "\r\n";
  write_bytes(dir / "coarse_label_names.txt", std::vector<uint8_t>(coarse_names.begin(), coarse_names.end()));
  EXPECT_EQ(CifarDataset::cifar100(dir.path(), "train", CifarLabels::Coarse).class_names()[3], "super3");
}

TEST(DataCifar, Errors) {
  TempDir dir;
  auto label = [](uint8_t v) { return [v](int) { return std::vector<uint8_t>{v}; }; };
  const auto good = records(3, 1, label(2));
  const std::string path = dir / "test_batch.bin";

  // A record cut short.
  write_bytes(path, std::vector<uint8_t>(good.begin(), good.end() - 100));
  EXPECT_VIMOE_ERROR(CifarDataset::cifar10(dir.path(), "test"), path.c_str(), "truncated",
                     "3073-byte records");
  write_bytes(path, {});
  EXPECT_VIMOE_ERROR(CifarDataset::cifar10(dir.path(), "test"), path.c_str(), "empty");
  // Label 10 in a 10-class file.
  auto bad = good;
  bad[3073] = 10;
  write_bytes(path, bad);
  EXPECT_VIMOE_ERROR(CifarDataset::cifar10(dir.path(), "test"), path.c_str(), "record 1",
                     "label 10", "10 classes");
  // Missing files, a bad split, a meta file with the wrong number of names.
  EXPECT_VIMOE_ERROR(CifarDataset::cifar10(dir.path(), "train"), "data_batch_1.bin", "cannot open");
  EXPECT_VIMOE_ERROR(CifarDataset::cifar10(dir.path(), "valid"), "unknown split 'valid'");
  write_bytes(path, good);
  write_bytes(dir / "batches.meta.txt", {'a', '\n', 'b', '\n'});
  EXPECT_VIMOE_ERROR(CifarDataset::cifar10(dir.path(), "test"), "batches.meta.txt", "2 class names");

  // CIFAR-100: both label bytes are checked whichever is used.
  const std::string p100 = dir / "test.bin";
  write_bytes(p100, records(2, 1, [](int r) { return std::vector<uint8_t>{uint8_t(r ? 20 : 0), 5}; }));
  EXPECT_VIMOE_ERROR(CifarDataset::cifar100(dir.path(), "test"), p100.c_str(), "record 1",
                     "coarse label 20");
  write_bytes(p100, records(2, 1, [](int) { return std::vector<uint8_t>{3, 100}; }));
  EXPECT_VIMOE_ERROR(CifarDataset::cifar100(dir.path(), "test", CifarLabels::Coarse), p100.c_str(),
                     "record 0", "fine label 100");
  write_bytes(p100, std::vector<uint8_t>(3073, 0));  // a CIFAR-10-sized record
  EXPECT_VIMOE_ERROR(CifarDataset::cifar100(dir.path(), "test"), p100.c_str(), "3074-byte records");

  write_bytes(p100, records(2, 1, [](int) { return std::vector<uint8_t>{3, 4}; }));
  const CifarDataset ds = CifarDataset::cifar100(dir.path(), "test");
  EXPECT_VIMOE_ERROR(ds.get(2), "index 2", "[0, 2)", "CIFAR-100");
}

}  // namespace
}  // namespace vimoe::data
