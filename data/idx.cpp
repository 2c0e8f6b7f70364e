#include "data/idx.h"

#include <algorithm>
#include <cstring>

#include "data/file_io.h"
#include "engine/error.h"

namespace vimoe::data {

namespace {

// An IDX file's sizes and its values (the header stripped off).
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> values;
};

IdxArray read_idx(const std::string& path, int64_t min_dims, int64_t max_dims, const char* what) {
  std::vector<uint8_t> bytes = read_file(path);
  VIMOE_CHECK(bytes.size() >= 4, "IDX ", what, " file ", path, ": truncated: ", bytes.size(),
              " bytes, too short for the 4-byte magic number");
  const uint32_t magic = (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
                         (uint32_t{bytes[2]} << 8) | bytes[3];
  const int64_t ndims = bytes[3];
  VIMOE_CHECK(bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 0x08 && ndims >= min_dims &&
                  ndims <= max_dims,
              "IDX ", what, " file ", path, ": bad magic number 0x", std::hex, magic, std::dec,
              ": expected 0x0000080", min_dims,
              (max_dims > min_dims ? " or 0x0000080" + std::to_string(max_dims) : std::string()),
              " (unsigned bytes, ", min_dims, (max_dims > min_dims ? "+" : ""), " dimensions)");
  const size_t header = 4 + 4 * static_cast<size_t>(ndims);
  VIMOE_CHECK(bytes.size() >= header, "IDX ", what, " file ", path, ": truncated: ",
              bytes.size(), " bytes, too short for a ", header, "-byte header");
  IdxArray a;
  size_t numel = 1;
  for (int64_t d = 0; d < ndims; ++d) {
    const uint8_t* p = bytes.data() + 4 + 4 * d;
    const int64_t n = (int64_t{p[0]} << 24) | (int64_t{p[1]} << 16) | (int64_t{p[2]} << 8) | p[3];
    a.dims.push_back(n);
    numel *= static_cast<size_t>(n);
  }
  const size_t data = bytes.size() - header;
  VIMOE_CHECK(data >= numel, "IDX ", what, " file ", path, ": truncated: the header promises ",
              numel, " values, the file holds ", data);
  VIMOE_CHECK(data == numel, "IDX ", what, " file ", path, ": ", data - numel,
              " unexpected bytes after the ", numel, " values");
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  a.values = std::move(bytes);
  return a;
}

std::vector<std::string> digit_names() {
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i) names.push_back(std::to_string(i));
  return names;
}

}  // namespace

IdxDataset::IdxDataset(std::string images_path, std::string labels_path,
                       std::vector<std::string> class_names)
    : images_path_(std::move(images_path)),
      labels_path_(std::move(labels_path)),
      class_names_(std::move(class_names)) {
  VIMOE_CHECK(!class_names_.empty(), "IdxDataset(", images_path_, "): no class names given");
  IdxArray images = read_idx(images_path_, 3, 4, "images");
  IdxArray labels = read_idx(labels_path_, 1, 1, "labels");
  count_ = images.dims[0];
  height_ = images.dims[1];
  width_ = images.dims[2];
  channels_ = images.dims.size() == 4 ? images.dims[3] : 1;
  VIMOE_CHECK(channels_ == 1 || channels_ == 3, "IDX images file ", images_path_, ": ",
              channels_, " channels per pixel; expected 1 or 3");
  VIMOE_CHECK(height_ > 0 && width_ > 0, "IDX images file ", images_path_,
              ": empty images of ", height_, "x", width_, " pixels");
  VIMOE_CHECK(labels.dims[0] == count_, "IDX files disagree: ", images_path_, " holds ", count_,
              " images but ", labels_path_, " holds ", labels.dims[0], " labels");
  const int64_t classes = num_classes();
  for (int64_t i = 0; i < count_; ++i)
    VIMOE_CHECK(labels.values[i] < classes, "IDX labels file ", labels_path_, ": label ",
                int{labels.values[i]}, " of item ", i, " is out of range for ", classes,
                " classes");
  pixels_ = std::move(images.values);
  labels_ = std::move(labels.values);
}

std::pair<std::string, std::string> IdxDataset::split_files(const std::string& dir,
                                                            const std::string& split) {
  VIMOE_CHECK(split == "train" || split == "test", "IdxDataset: unknown split '", split,
              "': expected \"train\" or \"test\"");
  const std::string prefix = dir + "/" + (split == "train" ? "train" : "t10k");
  auto pick = [&](const std::string& base) {
    if (is_file(base + ".gz")) return base + ".gz";
    if (is_file(base)) return base;
    VIMOE_FAIL("IdxDataset: neither ", base, ".gz nor ", base, " exists");
  };
  return {pick(prefix + "-images-idx3-ubyte"), pick(prefix + "-labels-idx1-ubyte")};
}

IdxDataset IdxDataset::fashion_mnist(const std::string& split, const std::string& dir) {
  auto [images, labels] = split_files(dir, split);
  return IdxDataset(images, labels,
                    {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"});
}

IdxDataset IdxDataset::mnist(const std::string& split, const std::string& dir) {
  auto [images, labels] = split_files(dir, split);
  return IdxDataset(images, labels, digit_names());
}

Sample IdxDataset::get(int64_t index) const {
  check_index(*this, index);
  Sample s;
  s.image = Image(height_, width_, channels_);
  const size_t n = s.image.pixels.size();
  std::memcpy(s.image.pixels.data(), pixels_.data() + static_cast<size_t>(index) * n, n);
  s.label = labels_[index];
  return s;
}

int64_t IdxDataset::label(int64_t index) const {
  check_index(*this, index);
  return labels_[index];
}

}  // namespace vimoe::data
