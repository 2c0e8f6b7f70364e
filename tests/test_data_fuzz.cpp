// Mutated dataset files never crash the readers: each IDX (raw and gzip), CIFAR and image file
// either loads -- and then every sample of it reads -- or is rejected with a vimoe::Error
// naming the file. Built into the sanitized test binary when it exists (tests/CMakeLists.txt),
// so an out-of-bounds access fails the test even where it would not fault.
#include <zlib.h>

#include <stb_image_write.h>

#include <string>
#include <vector>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "engine/error.h"
#include "test_data_util.h"

namespace vimoe::data {
namespace {

using vimoe::testing::pattern_bytes;
using vimoe::testing::read_bytes;
using vimoe::testing::TempDir;
using vimoe::testing::write_bytes;

// A small deterministic generator for the mutations (independent of the code under test).
struct Mutator {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  size_t below(size_t n) { return n ? next() % n : 0; }

  // One to four edits: overwrite a byte (half the time within the first 32, where the headers
  // are), truncate, append, or set a byte to 0x00 / 0xff.
  std::vector<uint8_t> mutate(std::vector<uint8_t> b) {
    const int edits = 1 + static_cast<int>(below(4));
    for (int e = 0; e < edits && !b.empty(); ++e) {
      switch (below(5)) {
        case 0: b[below(2) ? below(std::min<size_t>(32, b.size())) : below(b.size())] = static_cast<uint8_t>(next()); break;
        case 1: b.resize(below(b.size())); break;
        case 2: for (size_t i = 1 + below(16); i > 0; --i) b.push_back(static_cast<uint8_t>(next())); break;
        case 3: b[below(std::min<size_t>(32, b.size()))] = 0x00; break;
        default: b[below(std::min<size_t>(32, b.size()))] = 0xff; break;
      }
    }
    return b;
  }
};

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& values) {
  std::vector<uint8_t> b = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  b.insert(b.end(), values.begin(), values.end());
  return b;
}

std::vector<uint8_t> gzip(const std::vector<uint8_t>& raw) {
  uLongf n = compressBound(raw.size()) + 32;
  std::vector<uint8_t> out(n);
  // A gzip stream (window bits 15 + 16), as the .gz files the reader opens.
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = const_cast<Bytef*>(raw.data());
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// Reads every sample of a dataset that loaded.
void read_all(const Dataset& ds) {
  for (int64_t i = 0; i < ds.size(); ++i) {
    const Sample s = ds.get(i);
    ASSERT_EQ(s.label, ds.label(i));
    ASSERT_GE(s.label, 0);
    ASSERT_LT(s.label, ds.num_classes());
    ASSERT_EQ(s.image.pixels.size(), static_cast<size_t>(s.image.height * s.image.width * s.image.channels));
  }
}

// The outcome of one mutated file: loaded (and read), or rejected naming `path`.
template <typename Open>
bool loads(const std::string& path, Open open) {
  try {
    read_all(open());
    return true;
  } catch (const vimoe::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    return false;
  }
}

// "<stem><i><ext>" inside dir, built by appending (GCC 12 warns wrongly about chained +).
std::string numbered(const TempDir& dir, const char* stem, int i, const char* ext) {
  std::string name = stem;
  name += std::to_string(i);
  name += ext;
  return dir / name;
}

std::vector<std::string> class_names(int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(std::to_string(i));
  return v;
}

}  // namespace

TEST(DataFuzz, IdxFilesRawAndGzip) {
  TempDir dir;
  const auto images = idx_bytes({6, 5, 4}, pattern_bytes(6 * 5 * 4, 1));
  std::vector<uint8_t> label_values;
  for (int i = 0; i < 6; ++i) label_values.push_back(static_cast<uint8_t>(i % 3));
  const auto labels = idx_bytes({6}, label_values);
  Mutator m{17};
  int loaded = 0, rejected = 0;
  for (int i = 0; i < 600; ++i) {
    const bool gz = i % 2;
    const bool mutate_images = i % 3 != 0;
    std::vector<uint8_t> img = mutate_images ? m.mutate(images) : images;
    std::vector<uint8_t> lab = mutate_images ? labels : m.mutate(labels);
    if (gz) {
      // Half of the gzip files are mutated after compression: broken streams, bad CRCs.
      img = gzip(img);
      lab = gzip(lab);
      if (i % 4 == 1) img = m.mutate(img);
    }
    const char* ext = gz ? ".gz" : "";
    const std::string ip = numbered(dir, "images", i, ext), lp = numbered(dir, "labels", i, ext);
    write_bytes(ip, img);
    write_bytes(lp, lab);
    try {
      IdxDataset ds(ip, lp, class_names(3));
      read_all(ds);
      ++loaded;
    } catch (const vimoe::Error& e) {
      const std::string msg = e.what();
      EXPECT_TRUE(msg.find(ip) != std::string::npos || msg.find(lp) != std::string::npos) << msg;
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 300);  // most mutations break something
  EXPECT_GT(loaded, 0);      // some only touch pixel values
}

TEST(DataFuzz, CifarFiles) {
  TempDir dir;
  std::vector<uint8_t> c10, c100;
  for (int r = 0; r < 4; ++r) {
    c10.push_back(static_cast<uint8_t>(r % 10));
    const auto px = pattern_bytes(3072, 3 + r);
    c10.insert(c10.end(), px.begin(), px.end());
    c100.push_back(static_cast<uint8_t>(r % 20));
    c100.push_back(static_cast<uint8_t>(r % 100));
    c100.insert(c100.end(), px.begin(), px.end());
  }
  Mutator m{5};
  int loaded = 0, rejected = 0;
  for (int i = 0; i < 400; ++i) {
    const bool hundred = i % 2;
    const std::string path = numbered(dir, "batch", i, ".bin");
    write_bytes(path, m.mutate(hundred ? c100 : c10));
    const bool ok = loads(path, [&] {
      return CifarDataset({path}, hundred, CifarLabels::Fine, class_names(hundred ? 100 : 10));
    });
    ok ? ++loaded : ++rejected;
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(loaded, 0);
}

TEST(DataFuzz, ImageFiles) {
  TempDir dir;
  const auto rgb = pattern_bytes(13 * 9 * 3, 7);
  const std::string png_path = dir / "base.png", jpg_path = dir / "base.jpg";
  ASSERT_NE(stbi_write_png(png_path.c_str(), 13, 9, 3, rgb.data(), 13 * 3), 0);
  ASSERT_NE(stbi_write_jpg(jpg_path.c_str(), 13, 9, 3, rgb.data(), 90), 0);
  const std::vector<uint8_t> png = read_bytes(png_path), jpg = read_bytes(jpg_path);
  Mutator m{9};
  int loaded = 0, rejected = 0;
  for (int i = 0; i < 400; ++i) {
    const bool is_png = i % 2;
    const std::string path = numbered(dir, "img", i, is_png ? ".png" : ".jpg");
    write_bytes(path, m.mutate(is_png ? png : jpg));
    try {
      const Image img = load_image(path, 3);
      ASSERT_EQ(img.pixels.size(), static_cast<size_t>(img.height * img.width * 3));
      ++loaded;
    } catch (const vimoe::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(loaded, 0);
}

}  // namespace vimoe::data
