#include "data/segmentation.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>

#include "data/file_io.h"
#include "data/image_folder.h"
#include "engine/error.h"

namespace fs = std::filesystem;

namespace vimoe::data {

namespace {

bool has_extension(const fs::path& p, std::initializer_list<const char*> exts) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::any_of(exts.begin(), exts.end(), [&](const char* e) { return ext == e; });
}

// stem -> path of the regular, non-hidden files of `dir` with one of the extensions. Two
// files of one stem (a.jpg and a.png) are a problem: which one pairs with the label?
std::map<std::string, std::string> files_by_stem(const fs::path& dir, std::initializer_list<const char*> exts,
                                                 std::vector<std::string>& problems) {
  std::map<std::string, std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || !e.is_regular_file() || !has_extension(e.path(), exts)) continue;
    const auto [it, fresh] = out.emplace(e.path().stem().string(), e.path().string());
    if (!fresh)
      problems.push_back("two files of one stem: " + std::min(it->second, e.path().string()) + " and " +
                         std::max(it->second, e.path().string()));
  }
  return out;
}

// The stored value -> class index (or the ignore index 255) of a layout; 256 entries, -1 for
// a value that is no class.
std::vector<int> value_map(SegmentationLayout layout) {
  std::vector<int> m(256, -1);
  if (layout == SegmentationLayout::CamVid) {
    for (int v = 0; v < 11; ++v) m[v] = v;
    m[11] = 255;  // void
  } else {
    m[0] = 255;  // "other": reduce_zero_label
    for (int v = 1; v <= 150; ++v) m[v] = v - 1;
  }
  return m;
}

const char* stored_values(SegmentationLayout layout) {
  return layout == SegmentationLayout::CamVid ? "0..10 (the classes) and 11 (void)" : "0 (other) and 1..150 (the classes)";
}

// A PNG's IHDR fields. The PNG format puts IHDR first, right after the 8-byte signature, so
// 33 bytes tell the bit depth and colour type; stb_image would report a palette image only
// after reading up to its first IDAT, and it scales 1-, 2- and 4-bit grey to 0..255, which
// would turn class indices into other numbers.
struct PngHeader {
  bool png = false;       // the signature is there
  bool complete = false;  // and so is a whole IHDR
  int depth = 0, colour = 0;
};

PngHeader read_png_header(const std::string& path) {
  const std::vector<uint8_t> b = read_file_bytes(path, 33);
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  PngHeader h;
  h.png = b.size() >= 8 && std::memcmp(b.data(), signature, 8) == 0;
  h.complete = h.png && b.size() == 33 && std::memcmp(&b[12], "IHDR", 4) == 0;
  if (h.complete) h.depth = b[24], h.colour = b[25];
  return h;
}

// Why a label file with this header cannot hold class indices, or "".
std::string label_format_error(const PngHeader& h) {
  if (!h.png) return "it is not a PNG file; label maps are PNGs of class indices";
  if (!h.complete) return "its PNG header (IHDR) is missing or cut short";
  if (h.colour == 0 && h.depth == 8) return "";
  std::string found;
  switch (h.colour) {
    case 0: found = std::to_string(h.depth) + "-bit greyscale"; break;
    case 2: found = "3 channels (an RGB image holds colours, not indices)"; break;
    case 3: found = "a palette image (3 or 4 channels once decoded: colours, not indices)"; break;
    case 4: found = "2 channels (greyscale with alpha)"; break;
    case 6: found = "4 channels (an RGBA image holds colours, not indices)"; break;
    default: found = "colour type " + std::to_string(h.colour) + ", which PNG does not define"; break;
  }
  return "it must be an 8-bit greyscale PNG of class indices; found " + found;
}

// What is wrong with an image and its label file, from their headers, or "" (then w x h is
// their size).
std::string pair_problem(const std::string& image, const std::string& label, int& iw, int& ih) {
  int lw = 0, lh = 0;
  std::string reason;
  if (!read_image_header(image, iw, ih, reason)) return "the image " + image + " cannot be read: " + reason;
  try {
    if (const std::string why = label_format_error(read_png_header(label)); !why.empty())
      return "the label " + label + " (of " + image + "): " + why;
  } catch (const Error& e) {
    return "the label " + label + " (of " + image + ") cannot be read: " + e.what();
  }
  if (!read_image_header(label, lw, lh, reason)) return "the label " + label + " cannot be read: " + reason;
  if (iw != lw || ih != lh)
    return "the image " + image + " is " + std::to_string(iw) + "x" + std::to_string(ih) + " (w x h) but its label " +
           label + " is " + std::to_string(lw) + "x" + std::to_string(lh);
  return "";
}

}  // namespace

const std::vector<std::string>& SegmentationFolder::camvid_classes() {
  static const std::vector<std::string> names = {"Sky",        "Building", "Pole", "Road",       "Pavement", "Tree",
                                                 "SignSymbol", "Fence",    "Car",  "Pedestrian", "Bicyclist"};
  return names;
}

// mmseg's ADE20KDataset classes, in index order (stored value - 1).
const std::vector<std::string>& SegmentationFolder::ade20k_classes() {
  static const std::vector<std::string> names = {
      "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
      "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
      "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
      "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
      "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
      "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
      "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
      "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
      "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
      "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
      "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
      "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
      "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
      "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
      "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
      "glass", "clock", "flag"};
  return names;
}

SegmentationFolder::SegmentationFolder(const std::string& root, const std::string& split, SegmentationLayout layout)
    : root_(root), split_(split), layout_(layout) {
  const bool camvid = layout == SegmentationLayout::CamVid;
  classes_ = camvid ? camvid_classes() : ade20k_classes();
  const fs::path image_dir = camvid ? fs::path(root) / split : fs::path(root) / "images" / split;
  const fs::path label_dir = camvid ? fs::path(root) / (split + "annot") : fs::path(root) / "annotations" / split;
  std::error_code ec;
  const bool have_images = fs::is_directory(image_dir, ec), have_labels = fs::is_directory(label_dir, ec);
  VIMOE_CHECK(have_images && have_labels, name(), ": expected the image folder ", image_dir.string(),
              " and the label folder ", label_dir.string(), "; ",
              have_images ? label_dir.string() : image_dir.string(), " is not a directory");
  std::vector<std::string> problems;
  std::map<std::string, std::string> images, labels;
  try {
    images = files_by_stem(image_dir, {".jpg", ".jpeg", ".png"}, problems);
    labels = files_by_stem(label_dir, {".png"}, problems);
  } catch (const fs::filesystem_error& e) {  // an unreadable directory
    VIMOE_FAIL(name(), ": ", e.what());
  }
  for (const auto& [stem, image] : images) {
    const auto it = labels.find(stem);
    if (it == labels.end()) {
      problems.push_back("the image " + image + " has no label file " + (label_dir / (stem + ".png")).string());
      continue;
    }
    int w = 0, h = 0;
    if (std::string problem = pair_problem(image, it->second, w, h); !problem.empty()) {
      problems.push_back(std::move(problem));
      continue;
    }
    items_.push_back({image, it->second, h, w});
  }
  for (const auto& [stem, label] : labels)
    if (!images.count(stem))
      problems.push_back("the label " + label + " has no image " + (image_dir / stem).string() + ".{jpg,jpeg,png}");
  if (!problems.empty()) {
    const size_t others = problems.size() - 1;
    VIMOE_FAIL(name(), ": ", problems.front(),
               others == 0 ? "" : " (and " + std::to_string(others) + (others == 1 ? " other problem)" : " other problems)"));
  }
  VIMOE_CHECK(!items_.empty(), name(), ": ", image_dir.string(), " holds no images");
}

std::string SegmentationFolder::name() const {
  return std::string(layout_ == SegmentationLayout::CamVid ? "CamVid" : "ADE20K") + "(" + root_ + ", " + split_ + ")";
}

const std::string& SegmentationFolder::image_path(int64_t index) const {
  check_index(*this, index);
  return items_[static_cast<size_t>(index)].image;
}

const std::string& SegmentationFolder::label_path(int64_t index) const {
  check_index(*this, index);
  return items_[static_cast<size_t>(index)].label;
}

std::pair<int64_t, int64_t> SegmentationFolder::image_size(int64_t index) const {
  check_index(*this, index);
  const Item& it = items_[static_cast<size_t>(index)];
  return {it.height, it.width};
}

int64_t SegmentationFolder::label(int64_t index) const {
  check_index(*this, index);
  return 0;
}

Sample SegmentationFolder::get(int64_t index) const {
  check_index(*this, index);
  const Item& it = items_[static_cast<size_t>(index)];
  Sample s;
  s.image = load_image(it.image, 3);
  s.mask = load_label_map(it.label);
  VIMOE_CHECK(s.image.height == s.mask.height && s.image.width == s.mask.width, name(), ": the image ", it.image,
              " decodes to ", s.image.width, "x", s.image.height, " (w x h) but its label ", it.label, " to ",
              s.mask.width, "x", s.mask.height);
  static const std::vector<int> camvid_map = value_map(SegmentationLayout::CamVid);
  static const std::vector<int> ade_map = value_map(SegmentationLayout::ADE20K);
  const std::vector<int>& map = layout_ == SegmentationLayout::CamVid ? camvid_map : ade_map;
  for (size_t i = 0; i < s.mask.pixels.size(); ++i) {
    const int v = map[s.mask.pixels[i]];
    VIMOE_CHECK(v >= 0, name(), ": the label ", it.label, " holds ", static_cast<int>(s.mask.pixels[i]),
                " at pixel (x, y) = (", static_cast<int64_t>(i) % s.mask.width, ", ",
                static_cast<int64_t>(i) / s.mask.width, "); the stored values are ", stored_values(layout_),
                ": is this dataset laid out as ", layout_ == SegmentationLayout::CamVid ? "CamVid" : "ADE20K", "?");
    s.mask.pixels[i] = static_cast<uint8_t>(v);
  }
  return s;
}

Image load_label_map(const std::string& path) {
  PngHeader header;
  try {
    header = read_png_header(path);
  } catch (const Error& e) {  // gone since the scan, or unreadable
    throw UnreadableSample(e.what());
  }
  if (header.png && !header.complete)
    throw UnreadableSample(detail::concat("cannot decode label map ", path, ": ", label_format_error(header)));
  if (const std::string why = label_format_error(header); !why.empty()) VIMOE_FAIL("label map ", path, ": ", why);
  return load_image(path, 1);  // 8-bit grey with one channel asked: the stored values as they are
}

}  // namespace vimoe::data
