// Segmentation datasets: the CamVid and ADE20K layouts on generated image / label pairs (the
// stored values mapped to classes and the ignore index), and the errors naming the files:
// unpaired files, sizes that differ, labels that are not 8-bit greyscale, values no class has.
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <zlib.h>

#include <filesystem>
#include <functional>

#include "data/loader.h"
#include "data/segmentation.h"
#include "test_data_util.h"

using namespace vimoe;
using namespace vimoe::data;
namespace fs = std::filesystem;
using vimoe::testing::error_of;
using vimoe::testing::TempDir;

namespace {

void write_png(const std::string& path, int w, int h, int channels, const std::vector<uint8_t>& px) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_NE(stbi_write_png(path.c_str(), w, h, channels, px.data(), w * channels), 0) << path;
}

// A w x h pair whose label holds stored value (x + y) % `values` and whose image is grey at
// 2 x that value, so pixels can be checked against their label.
void write_pair(const std::string& image, const std::string& label, int values, int w = 8, int h = 6) {
  std::vector<uint8_t> rgb(static_cast<size_t>(w * h * 3)), lab(static_cast<size_t>(w * h));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      lab[y * w + x] = static_cast<uint8_t>((x + y) % values);
      for (int c = 0; c < 3; ++c) rgb[(y * w + x) * 3 + c] = static_cast<uint8_t>(2 * lab[y * w + x]);
    }
  if (fs::path(image).extension() == ".jpg") {
    fs::create_directories(fs::path(image).parent_path());
    ASSERT_NE(stbi_write_jpg(image.c_str(), w, h, 3, rgb.data(), 95), 0) << image;
  } else {
    write_png(image, w, h, 3, rgb);
  }
  write_png(label, w, h, 1, lab);
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

void put_chunk(std::vector<uint8_t>& out, const std::string& type, const std::vector<uint8_t>& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> body(type.begin(), type.end());
  body.insert(body.end(), data.begin(), data.end());
  out.insert(out.end(), body.begin(), body.end());
  put_u32(out, static_cast<uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size()))));
}

// A PNG assembled by hand, since stb_image_write writes only 8-bit grey, RGB and RGBA: colour
// type `colour` at `depth` bits, every sample `value` (rows unfiltered, one IDAT; a palette
// image gets a 2-entry PLTE).
std::vector<uint8_t> png_bytes(int w, int h, int depth, int colour, uint8_t value = 0) {
  const int samples = colour == 2 ? 3 : colour == 4 ? 2 : colour == 6 ? 4 : 1;
  const size_t row = (static_cast<size_t>(w) * samples * depth + 7) / 8;
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), row, value);
  }
  std::vector<uint8_t> z(compressBound(static_cast<uLong>(raw.size())));
  uLongf zn = static_cast<uLongf>(z.size());
  EXPECT_EQ(compress(z.data(), &zn, raw.data(), static_cast<uLong>(raw.size())), Z_OK);
  z.resize(zn);
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_u32(ihdr, static_cast<uint32_t>(w));
  put_u32(ihdr, static_cast<uint32_t>(h));
  ihdr.insert(ihdr.end(), {static_cast<uint8_t>(depth), static_cast<uint8_t>(colour), 0, 0, 0});
  put_chunk(out, "IHDR", ihdr);
  if (colour == 3) put_chunk(out, "PLTE", {0, 0, 0, 255, 0, 0});
  put_chunk(out, "IDAT", z);
  put_chunk(out, "IEND", {});
  return out;
}

bool throws_unreadable(const std::function<void()>& f) {
  try {
    f();
  } catch (const UnreadableSample&) {
    return true;
  } catch (const Error&) {
  }
  return false;
}

void expect_has(const std::string& msg, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(msg.empty()) << "expected an error";
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg << "\n lacks: " << p;
}

std::string open_error(const TempDir& d, const std::string& split, SegmentationLayout layout) {
  return error_of([&] { SegmentationFolder(d.path(), split, layout); });
}

}  // namespace

TEST(SegmentationFolder, CamVidLayout) {
  TempDir d;
  for (const std::string stem : {"b", "a"}) write_pair(d / ("train/" + stem + ".png"), d / ("trainannot/" + stem + ".png"), 12);
  write_png(d / "train/.hidden.png", 2, 2, 3, std::vector<uint8_t>(12, 0));  // no label: ignored
  SegmentationFolder ds(d.path(), "train", SegmentationLayout::CamVid);
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.layout(), SegmentationLayout::CamVid);
  EXPECT_EQ(ds.class_names(), SegmentationFolder::camvid_classes());
  EXPECT_EQ(ds.class_names(), (std::vector<std::string>{"Sky", "Building", "Pole", "Road", "Pavement", "Tree",
                                                         "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"}));
  EXPECT_EQ(ds.num_classes(), 11);
  EXPECT_TRUE(ds.dense_labels());
  EXPECT_EQ(ds.ignore_index(), 255);
  EXPECT_EQ(ds.image_path(0), d / "train/a.png") << "items in stem order";
  EXPECT_EQ(ds.label_path(1), d / "trainannot/b.png");
  EXPECT_EQ(ds.image_size(0), (std::pair<int64_t, int64_t>{6, 8}));
  EXPECT_EQ(ds.label(1), 0);
  EXPECT_NE(ds.name().find("CamVid"), std::string::npos) << ds.name();
  const Sample s = ds.get(0);
  ASSERT_EQ(s.image.channels, 3);
  ASSERT_EQ(s.mask.channels, 1);
  ASSERT_EQ(s.mask.height, 6);
  ASSERT_EQ(s.mask.width, 8);
  for (int64_t y = 0; y < 6; ++y)
    for (int64_t x = 0; x < 8; ++x) {
      const int stored = static_cast<int>((x + y) % 12);
      EXPECT_EQ(s.mask.at(y, x, 0), stored == 11 ? 255 : stored) << "stored 11 (void) is ignored";
      EXPECT_EQ(s.image.at(y, x, 1), 2 * stored);
    }
  EXPECT_THROW(ds.get(2), Error);
}

TEST(SegmentationFolder, Ade20kLayoutReducesZeroLabel) {
  TempDir d;
  // 151 x 2 covers every stored value 0..150; a JPEG image (lossy) with an exact PNG label.
  write_pair(d / "images/training/x.jpg", d / "annotations/training/x.png", 151, 151, 2);
  SegmentationFolder ds(d.path(), "training", SegmentationLayout::ADE20K);
  ASSERT_EQ(ds.size(), 1);
  EXPECT_EQ(ds.num_classes(), 150);
  EXPECT_EQ(ds.class_names().front(), "wall");
  EXPECT_EQ(ds.class_names()[12], "person");
  EXPECT_EQ(ds.class_names().back(), "flag");
  EXPECT_EQ(ds.image_path(0), d / "images/training/x.jpg");
  EXPECT_EQ(ds.label_path(0), d / "annotations/training/x.png");
  const Sample s = ds.get(0);
  ASSERT_EQ(s.mask.width, 151);
  EXPECT_EQ(s.mask.at(0, 0, 0), 255) << "0 (other) is ignored";
  EXPECT_EQ(s.mask.at(0, 1, 0), 0);
  EXPECT_EQ(s.mask.at(0, 150, 0), 149);
  EXPECT_EQ(s.mask.at(1, 0, 0), 0) << "stored 1 at (x 0, y 1)";
  EXPECT_EQ(s.mask.at(1, 149, 0), 149);
}

TEST(SegmentationFolder, UnpairedFilesAndSizeMismatchNameTheFiles) {
  {
    TempDir d;
    write_pair(d / "train/a.png", d / "trainannot/a.png", 11);
    write_pair(d / "train/b.png", d / "trainannot/other.png", 11);
    expect_has(open_error(d, "train", SegmentationLayout::CamVid),
               {d / "train/b.png", "has no label file", d / "trainannot/b.png", "(and 1 other problem)"});
  }
  {
    TempDir d;
    write_pair(d / "train/a.png", d / "trainannot/a.png", 11);
    write_png(d / "trainannot/lonely.png", 8, 6, 1, std::vector<uint8_t>(48, 0));
    expect_has(open_error(d, "train", SegmentationLayout::CamVid),
               {d / "trainannot/lonely.png", "has no image", d / "train/lonely"});
  }
  {
    TempDir d;
    write_pair(d / "images/validation/a.jpg", d / "annotations/validation/a.png", 11);
    write_png(d / "annotations/validation/a.png", 8, 5, 1, std::vector<uint8_t>(40, 1));
    expect_has(open_error(d, "validation", SegmentationLayout::ADE20K),
               {d / "images/validation/a.jpg", "is 8x6", d / "annotations/validation/a.png", "8x5"});
  }
  {
    TempDir d;
    write_pair(d / "train/a.png", d / "trainannot/a.png", 11);
    write_pair(d / "train/a.jpg", d / "trainannot/a.png", 11);
    expect_has(open_error(d, "train", SegmentationLayout::CamVid),
               {"two files of one stem", d / "train/a.jpg", d / "train/a.png"});
  }
}

TEST(SegmentationFolder, LabelMustBe8BitGreyscale) {
  {
    TempDir d;
    write_pair(d / "train/a.png", d / "trainannot/a.png", 11);
    write_png(d / "trainannot/a.png", 8, 6, 3, std::vector<uint8_t>(8 * 6 * 3, 1));
    expect_has(open_error(d, "train", SegmentationLayout::CamVid),
               {d / "trainannot/a.png", d / "train/a.png", "8-bit greyscale", "found 3 channels", "RGB"});
  }
  const struct {
    int depth, colour;
    const char* found;
  } cases[] = {{16, 0, "16-bit greyscale"}, {4, 0, "4-bit greyscale"}, {8, 3, "palette"}, {8, 4, "2 channels"}};
  for (const auto& c : cases) {
    TempDir d;
    write_pair(d / "train/a.png", d / "trainannot/a.png", 11);
    vimoe::testing::write_bytes(d / "trainannot/a.png", png_bytes(8, 6, c.depth, c.colour));
    expect_has(open_error(d, "train", SegmentationLayout::CamVid),
               {d / "trainannot/a.png", "8-bit greyscale", c.found});
    EXPECT_THROW(load_label_map(d / "trainannot/a.png"), Error);
  }
  {
    TempDir d;
    write_pair(d / "train/a.png", d / "trainannot/a.png", 11);
    vimoe::testing::write_bytes(d / "trainannot/a.png", {'n', 'o', 't', ' ', 'a', ' ', 'p', 'n', 'g'});
    expect_has(open_error(d, "train", SegmentationLayout::CamVid), {d / "trainannot/a.png", "not a PNG"});
  }
}

TEST(SegmentationFolder, ValueWithoutClassIsAnErrorAtGet) {
  {
    TempDir d;
    write_pair(d / "train/a.png", d / "trainannot/a.png", 11);
    std::vector<uint8_t> lab(48, 3);
    lab[2 * 8 + 5] = 12;  // (x 5, y 2)
    write_png(d / "trainannot/a.png", 8, 6, 1, lab);
    SegmentationFolder ds(d.path(), "train", SegmentationLayout::CamVid);
    const std::string msg = error_of([&] { ds.get(0); });
    expect_has(msg, {d / "trainannot/a.png", "holds 12", "(x, y) = (5, 2)", "0..10", "11 (void)"});
    EXPECT_FALSE(throws_unreadable([&] { ds.get(0); }))
        << "a configuration error, not an unreadable sample the loader would skip";
  }
  {
    TempDir d;
    write_pair(d / "images/training/a.png", d / "annotations/training/a.png", 11);
    std::vector<uint8_t> lab(48, 150);
    lab[0] = 151;
    write_png(d / "annotations/training/a.png", 8, 6, 1, lab);
    SegmentationFolder ds(d.path(), "training", SegmentationLayout::ADE20K);
    expect_has(error_of([&] { ds.get(0); }), {d / "annotations/training/a.png", "holds 151", "(x, y) = (0, 0)", "1..150"});
  }
}

TEST(SegmentationFolder, MissingOrEmptySplit) {
  TempDir d;
  write_pair(d / "train/a.png", d / "trainannot/a.png", 11);
  expect_has(open_error(d, "val", SegmentationLayout::CamVid), {d / "val", "is not a directory"});
  expect_has(open_error(d, "train", SegmentationLayout::ADE20K), {d / "images/train", "is not a directory"});
  fs::create_directories(d / "valannot");
  fs::create_directories(d / "val");
  expect_has(open_error(d, "val", SegmentationLayout::CamVid), {d / "val", "holds no images"});
  fs::remove_all(d / "trainannot");
  expect_has(open_error(d, "train", SegmentationLayout::CamVid), {d / "trainannot", "is not a directory"});
}

TEST(SegmentationFolder, UndecodableImageIsAnUnreadableSample) {
  TempDir d;
  write_pair(d / "train/a.png", d / "trainannot/a.png", 11, 64, 64);
  SegmentationFolder ds(d.path(), "train", SegmentationLayout::CamVid);
  std::vector<uint8_t> bytes = vimoe::testing::read_bytes(d / "train/a.png");
  bytes.resize(bytes.size() / 2);  // the header survives, the pixels do not
  vimoe::testing::write_bytes(d / "train/a.png", bytes);
  EXPECT_THROW(ds.get(0), UnreadableSample);
}

TEST(LoadLabelMap, StoredValuesAsTheyAre) {
  TempDir d;
  vimoe::testing::write_bytes(d / "l.png", png_bytes(5, 3, 8, 0, 200));
  const Image m = load_label_map(d / "l.png");
  ASSERT_EQ(m.height, 3);
  ASSERT_EQ(m.width, 5);
  ASSERT_EQ(m.channels, 1);
  EXPECT_EQ(m.pixels, std::vector<uint8_t>(15, 200)) << "no layout mapping here";
  write_png(d / "rgb.png", 2, 2, 3, std::vector<uint8_t>(12, 7));
  expect_has(error_of([&] { load_label_map(d / "rgb.png"); }), {d / "rgb.png", "3 channels"});
  EXPECT_THROW(load_label_map(d / "missing.png"), UnreadableSample);
  std::vector<uint8_t> cut = png_bytes(5, 3, 8, 0, 200);
  cut.resize(20);  // inside IHDR
  vimoe::testing::write_bytes(d / "cut.png", cut);
  EXPECT_THROW(load_label_map(d / "cut.png"), UnreadableSample);
}

TEST(SegmentationFolder, FeedsTheLoader) {
  TempDir d;
  for (const std::string stem : {"0", "1", "2"})
    write_pair(d / ("val/" + stem + ".png"), d / ("valannot/" + stem + ".png"), 12);
  LoaderOptions o;
  o.batch_size = 3;
  o.shuffle = false;
  o.num_workers = 1;
  Loader loader(std::make_shared<SegmentationFolder>(d.path(), "val", SegmentationLayout::CamVid), o);
  const std::optional<Batch> b = loader.next();
  ASSERT_TRUE(b.has_value());
  ASSERT_EQ(b->masks.shape(), (Shape{3, 6, 8}));
  const std::vector<int64_t> m = b->masks.to_vector<int64_t>();
  EXPECT_EQ(m[3], 3);                 // (x 3, y 0) of the first
  EXPECT_EQ(m[48 + 5 * 8 + 6], 255);  // (x 6, y 5) of the second: stored 11, void
}
