// ImageFolder on a tree of PNG / BMP files written here with stb_image_write, including a
// corrupt file (skipped and reported at the scan) and truncated PNG and JPEG files (which
// fail in get() as UnreadableSample, with the decoder's reason).
#include <stb_image_write.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "data/image_folder.h"
#include "test_data_util.h"
#include "test_util.h"

namespace vimoe::data {
namespace {

using vimoe::testing::pattern_bytes;
using vimoe::testing::read_bytes;
using vimoe::testing::TempDir;
using vimoe::testing::write_bytes;

struct Raw {
  int w, h, c;
  std::vector<uint8_t> px;  // h * w * c, HWC
};

Raw write_png(const std::string& path, int w, int h, int c, uint32_t seed) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  Raw r{w, h, c, pattern_bytes(static_cast<size_t>(w * h * c), seed)};
  EXPECT_NE(stbi_write_png(path.c_str(), w, h, c, r.px.data(), w * c), 0) << path;
  return r;
}

Raw write_bmp(const std::string& path, int w, int h, int c, uint32_t seed) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  Raw r{w, h, c, pattern_bytes(static_cast<size_t>(w * h * c), seed)};
  EXPECT_NE(stbi_write_bmp(path.c_str(), w, h, c, r.px.data()), 0) << path;
  return r;
}

// Writes a side x side RGB JPEG (quality 90) and returns the file's bytes.
std::vector<uint8_t> write_jpg(const std::string& path, int side, uint32_t seed) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  const auto px = pattern_bytes(static_cast<size_t>(side * side * 3), seed);
  EXPECT_NE(stbi_write_jpg(path.c_str(), side, side, 3, px.data(), 90), 0) << path;
  return read_bytes(path);
}

// The RGB pixel ImageFolder must produce from a raw image of 1 (grey), 3 or 4 (RGBA) channels.
uint8_t expected_rgb(const Raw& r, int y, int x, int ch) {
  const uint8_t* p = &r.px[(y * r.w + x) * r.c];
  return r.c < 3 ? p[0] : p[ch];
}

void expect_image(const Image& img, const Raw& r) {
  ASSERT_EQ(img.height, r.h);
  ASSERT_EQ(img.width, r.w);
  ASSERT_EQ(img.channels, 3);
  for (int y = 0; y < r.h; ++y)
    for (int x = 0; x < r.w; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(img.at(y, x, c), expected_rgb(r, y, x, c)) << "pixel " << y << "," << x << "," << c;
}

TEST(DataImageFolder, ScanDecodeAndSkip) {
  TempDir root;
  // Classes are listed out of order on purpose; labels follow sorted names.
  const Raw dog_rgba = write_png(root / "dog/b_rgba.png", 5, 3, 4, 1);
  const Raw dog_grey = write_png(root / "dog/a_grey.PNG", 4, 6, 1, 2);
  const Raw cat_rgb = write_png(root / "cat/z.png", 7, 2, 3, 3);
  const Raw cat_bmp = write_bmp(root / "cat/m.bmp", 3, 3, 3, 4);
  const Raw cat_nested = write_png(root / "cat/sub/n.png", 2, 2, 2, 5);  // grey + alpha
  // A PNG signature followed by garbage (random bytes alone might pass as a TGA header).
  std::vector<uint8_t> corrupt = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const auto junk = pattern_bytes(300, 6);
  corrupt.insert(corrupt.end(), junk.begin(), junk.end());
  write_bytes(root / "dog/corrupt.png", corrupt);
  write_bytes(root / "dog/readme.txt", {'h', 'i'});
  write_png(root / ".hidden/x.png", 2, 2, 3, 7);
  write_png(root / "cat/.x.png", 2, 2, 3, 8);

  std::ostringstream warnings;
  const ImageFolder ds(root.path(), &warnings);
  EXPECT_EQ(ds.class_names(), (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(ds.size(), 5);
  // Sorted paths: cat/m.bmp, cat/sub/n.png, cat/z.png, dog/a_grey.PNG, dog/b_rgba.png.
  const std::vector<std::pair<std::string, const Raw*>> want = {
      {"cat/m.bmp", &cat_bmp}, {"cat/sub/n.png", &cat_nested}, {"cat/z.png", &cat_rgb},
      {"dog/a_grey.PNG", &dog_grey}, {"dog/b_rgba.png", &dog_rgba}};
  for (int64_t i = 0; i < ds.size(); ++i) {
    SCOPED_TRACE(want[i].first);
    EXPECT_EQ(ds.path(i), root / want[i].first);
    EXPECT_EQ(ds.label(i), i < 3 ? 0 : 1);
    const Sample s = ds.get(i);
    EXPECT_EQ(s.label, i < 3 ? 0 : 1);
    expect_image(s.image, *want[i].second);
  }
  // The corrupt file is skipped, counted and reported with its path and stb_image's reason.
  ASSERT_EQ(ds.skipped().size(), 1u);
  EXPECT_EQ(ds.skipped()[0].path, root / "dog/corrupt.png");
  EXPECT_FALSE(ds.skipped()[0].reason.empty());
  EXPECT_NE(warnings.str().find(root / "dog/corrupt.png"), std::string::npos) << warnings.str();
  EXPECT_NE(warnings.str().find(ds.skipped()[0].reason), std::string::npos);
  EXPECT_EQ(ds.num_ignored(), 1);  // readme.txt
}

// get() throws UnreadableSample (which the loader skips) naming the file and the real
// problem: "truncated", never the stale "bad png sig" stb_image leaves after its PNG probe.
void expect_unreadable(const ImageFolder& ds, int64_t index, const std::string& path, const char* format) {
  try {
    ds.get(index);
    ADD_FAILURE() << path << " decoded";
  } catch (const UnreadableSample& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cannot decode image " + path), std::string::npos) << what;
    EXPECT_NE(what.find(format), std::string::npos) << what;
    EXPECT_NE(what.find("truncated"), std::string::npos) << what;
    EXPECT_EQ(what.find("bad png sig"), std::string::npos) << what;
  }
}

TEST(DataImageFolder, TruncatedPngFailsInGetWithItsName) {
  TempDir root;
  write_png(root / "a/good.png", 4, 4, 3, 1);
  write_png(root / "a/trunc.png", 16, 16, 3, 2);
  // Keep the signature and the IHDR chunk (8 + 25 bytes): the header still parses.
  const auto bytes = read_bytes(root / "a/trunc.png");
  write_bytes(root / "a/trunc.png", std::vector<uint8_t>(bytes.begin(), bytes.begin() + 40));
  std::ostringstream warnings;
  const ImageFolder ds(root.path(), &warnings);
  ASSERT_EQ(ds.size(), 2);
  EXPECT_TRUE(ds.skipped().empty());
  EXPECT_NO_THROW(ds.get(0));
  expect_unreadable(ds, 1, root / "a/trunc.png", "PNG decoder");
}

TEST(DataImageFolder, TruncatedJpegFailsInGetWithTheRealReason) {
  TempDir root;
  const auto bytes = write_jpg(root / "full.jpg", 32, 9);
  write_png(root / "a/good.png", 4, 4, 3, 1);
  // Cut the file at every eighth byte past its first segments: a cut inside the headers is
  // refused by the scan (libjpeg-turbo reads up to the first scan), a cut in the image data
  // passes the scan and fails in get(); both give the decoder's reason, and get() says
  // "truncated".
  int failures = 0;
  for (size_t cut = 200; cut + 2 < bytes.size(); cut += 8) {
    SCOPED_TRACE(cut);
    const std::string path = root / "a/cut.jpg";
    write_bytes(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut)));
    const ImageFolder ds(root.path(), nullptr);
    if (ds.size() == 1) {
      ASSERT_EQ(ds.skipped().size(), 1u);
      EXPECT_NE(ds.skipped()[0].reason.find("JPEG decoder: "), std::string::npos) << ds.skipped()[0].reason;
      continue;
    }
    ASSERT_EQ(ds.size(), 2);
    try {
      ds.get(0);  // cut.jpg sorts before good.png
    } catch (const UnreadableSample&) {
      ++failures;
      expect_unreadable(ds, 0, path, "JPEG decoder");
    }
  }
  EXPECT_GT(failures, 10);
  // A file gone since the scan is unreadable too, with the system's reason.
  write_bytes(root / "a/cut.jpg", bytes);
  const ImageFolder ds(root.path(), nullptr);
  ASSERT_EQ(ds.size(), 2);
  EXPECT_NO_THROW(ds.get(0));
  std::filesystem::remove(root / "a/cut.jpg");
  EXPECT_THROW(
      try { ds.get(0); } catch (const UnreadableSample& e) {
        EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
        throw;
      },
      UnreadableSample);
}

// A JPEG whose Huffman table declares more than 256 codes (found by fuzz/fuzz_image: the
// stb_image Debian ships wrote past its tables on it, which is why JPEG now goes through
// libjpeg-turbo) is refused, in the scan and in load_image, with the decoder's reason.
TEST(DataImageFolder, JpegWithAnOversizedHuffmanTableIsRefused) {
  TempDir root;
  const std::string good = root / "a/good.jpg";
  std::vector<uint8_t> bytes = write_jpg(good, 16, 4);
  // The first DHT segment (FF C4, length, then a table's class byte and 16 counts): raise
  // its last two counts to 255 each, so the table claims far more than 256 codes.
  size_t dht = 0;
  for (size_t i = 2; i + 21 < bytes.size(); ++i)
    if (bytes[i] == 0xff && bytes[i + 1] == 0xc4) {
      dht = i;
      break;
    }
  ASSERT_GT(dht, 0u) << "no DHT segment in stb_image_write's JPEG";
  bytes[dht + 5 + 14] = 255;
  bytes[dht + 5 + 15] = 255;
  const std::string bad = root / "a/bad.jpg";
  write_bytes(bad, bytes);
  try {
    load_image(bad, 3);
    ADD_FAILURE() << "decoded";
  } catch (const UnreadableSample& e) {
    EXPECT_NE(std::string(e.what()).find("Huffman table"), std::string::npos) << e.what();
  }
  std::ostringstream warnings;
  const ImageFolder ds(root.path(), &warnings);
  ASSERT_EQ(ds.size(), 1);  // good.jpg
  ASSERT_EQ(ds.skipped().size(), 1u);
  EXPECT_EQ(ds.skipped()[0].path, bad);
  EXPECT_NE(ds.skipped()[0].reason.find("Huffman table"), std::string::npos) << ds.skipped()[0].reason;
  // A header behind a large metadata segment (a 30 KB comment here, past the scan's first
  // read of 4 KiB) is still found, and the image decodes.
  const auto good_bytes = write_jpg(good, 16, 4);
  std::vector<uint8_t> commented(6 + 30000 + good_bytes.size() - 2, 'x');
  const uint8_t head[6] = {0xff, 0xd8, 0xff, 0xfe, 0x75, 0x32};  // SOI, COM of length 30002
  std::copy(head, head + 6, commented.begin());
  std::copy(good_bytes.begin() + 2, good_bytes.end(), commented.begin() + 6 + 30000);
  TempDir other;
  write_bytes(other / "a/commented.jpg", commented);
  const ImageFolder with_comment(other.path(), nullptr);
  ASSERT_EQ(with_comment.size(), 1) << (with_comment.skipped().empty() ? "" : with_comment.skipped()[0].reason);
  EXPECT_EQ(with_comment.get(0).image.width, 16);
  // Files that are not JPEG, PNG or BMP never reach stb_image, whatever their extension.
  write_bytes(root / "a/gif.jpg", {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0});
  EXPECT_VIMOE_ERROR(load_image(root / "a/gif.jpg", 3), "not a JPEG, PNG or BMP file");
}

// Headers that cannot be honest are refused before any decoding (found by fuzz/fuzz_image: a
// 67-byte BMP declaring 1,048,580 x 91 pixels made stb_image allocate 286 MB and fill it
// with zeros): an uncompressed BMP whose rows do not fit in the file, a JPEG far smaller than
// its declared size allows, any image over the pixel limit.
TEST(DataImageFolder, DishonestHeadersAreRefused) {
  TempDir root;
  write_png(root / "ok/good.png", 4, 4, 3, 1);
  write_bmp(root / "bad/tall.bmp", 4, 3, 3, 2);
  auto bmp = read_bytes(root / "bad/tall.bmp");
  bmp[22] = 0xe8, bmp[23] = 0x03;  // height 1000
  write_bytes(root / "bad/tall.bmp", bmp);
  auto jpg = write_jpg(root / "bad/huge.jpg", 16, 3);
  size_t sof = 0;
  for (size_t i = 2; i + 9 < jpg.size(); ++i)
    if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) {
      sof = i;
      break;
    }
  ASSERT_GT(sof, 0u);
  auto with_dims = [&](int hgt, int wid) {
    std::vector<uint8_t> b = jpg;
    b[sof + 5] = static_cast<uint8_t>(hgt >> 8), b[sof + 6] = static_cast<uint8_t>(hgt & 0xff);
    b[sof + 7] = static_cast<uint8_t>(wid >> 8), b[sof + 8] = static_cast<uint8_t>(wid & 0xff);
    return b;
  };
  write_bytes(root / "bad/huge.jpg", with_dims(4000, 4000));   // 16M pixels in ~1 KB
  write_bytes(root / "bad/bomb.jpg", with_dims(60000, 60000));  // 3.6G pixels
  write_png(root / "bad/fine.png", 2, 2, 3, 4);  // keeps the class readable
  const ImageFolder ds(root.path(), nullptr);
  std::map<std::string, std::string> reasons;
  for (const auto& s : ds.skipped()) reasons[std::filesystem::path(s.path).filename().string()] = s.reason;
  ASSERT_EQ(reasons.size(), 3u);
  EXPECT_NE(reasons["tall.bmp"].find("so it is truncated"), std::string::npos) << reasons["tall.bmp"];
  EXPECT_NE(reasons["huge.jpg"].find("fewer than any JPEG of that size"), std::string::npos) << reasons["huge.jpg"];
  EXPECT_NE(reasons["bomb.jpg"].find("more than the 178956970 accepted"), std::string::npos) << reasons["bomb.jpg"];
  // A PNG chunk whose length runs past the end of the file (stb_image would allocate it first).
  write_png(root / "ok/lying.png", 4, 4, 3, 5);
  auto png = read_bytes(root / "ok/lying.png");
  for (size_t i = 8; i + 8 <= png.size();) {  // find IDAT and claim 2 GB for it
    const size_t len = (size_t{png[i]} << 24) | (size_t{png[i + 1]} << 16) | (size_t{png[i + 2]} << 8) | png[i + 3];
    if (std::string(reinterpret_cast<const char*>(&png[i + 4]), 4) == "IDAT") {
      png[i] = 0x7f, png[i + 1] = 0xff;
      break;
    }
    i += 12 + len;
  }
  write_bytes(root / "ok/lying.png", png);
  try {
    load_image(root / "ok/lying.png", 3);
    ADD_FAILURE() << "decoded";
  } catch (const UnreadableSample& e) {
    EXPECT_NE(std::string(e.what()).find("IDAT chunk"), std::string::npos) << e.what();
  }
  // load_image refuses them too.
  EXPECT_THROW(load_image(root / "bad/tall.bmp", 3), UnreadableSample);
  EXPECT_THROW(load_image(root / "bad/bomb.jpg", 3), UnreadableSample);
}

TEST(DataImageFolder, NativeSizeOnlyWhenAllImagesAreOneSquareSize) {
  TempDir root;
  write_png(root / "a/x.png", 6, 6, 3, 1);
  write_png(root / "b/y.png", 6, 6, 1, 2);
  EXPECT_EQ(ImageFolder(root.path()).native_size(), 6);
  write_png(root / "b/z.png", 6, 5, 3, 3);  // not square
  EXPECT_EQ(ImageFolder(root.path()).native_size(), 0);
  TempDir other;
  write_png(other / "a/x.png", 6, 6, 3, 1);
  write_png(other / "a/y.png", 7, 7, 3, 2);  // square, another size
  EXPECT_EQ(ImageFolder(other.path()).native_size(), 0);
}

TEST(DataImageFolder, Errors) {
  TempDir root;
  EXPECT_VIMOE_ERROR(ImageFolder(root / "absent"), "is not a directory");
  EXPECT_VIMOE_ERROR(ImageFolder(root.path()), "no class sub-directories");
  write_png(root / "a/x.png", 2, 2, 3, 1);
  std::filesystem::create_directories(root / "b");
  write_bytes(root / "b/bad.jpg", {1, 2, 3});
  std::ostringstream warnings;
  const std::string b = root / "b";
  EXPECT_VIMOE_ERROR(ImageFolder(root.path(), &warnings), b.c_str(),
                     "no readable image", "1 unreadable");
  EXPECT_NE(warnings.str().find("bad.jpg"), std::string::npos);
  EXPECT_VIMOE_ERROR(load_image(root / "a/x.png", 2), "channels must be 1 or 3");
  // Grey decoding of an RGB file goes through stb_image's luma conversion.
  EXPECT_EQ(load_image(root / "a/x.png", 1).channels, 1);
}

}  // namespace
}  // namespace vimoe::data
