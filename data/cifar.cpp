#include "data/cifar.h"

#include <fstream>

#include "data/file_io.h"
#include "engine/error.h"

namespace vimoe::data {

namespace {

constexpr int64_t kSide = 32;
constexpr int64_t kImageBytes = 3 * kSide * kSide;

// One name per line (trailing blank lines dropped); `count` numeric names when the file is
// absent. A present file must name exactly `count` classes.
std::vector<std::string> read_names(const std::string& path, int64_t count) {
  std::vector<std::string> names;
  if (!is_file(path)) {
    for (int64_t i = 0; i < count; ++i) names.push_back(std::to_string(i));
    return names;
  }
  std::ifstream in(path);
  VIMOE_CHECK(in, "cannot open ", path);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  VIMOE_CHECK(static_cast<int64_t>(names.size()) == count, path, ": ", names.size(),
              " class names; expected ", count);
  return names;
}

}  // namespace

CifarDataset CifarDataset::cifar10(const std::string& dir, const std::string& split) {
  std::vector<std::string> files;
  if (split == "train") {
    for (int i = 1; i <= 5; ++i) files.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
  } else if (split == "test") {
    files.push_back(dir + "/test_batch.bin");
  } else {
    VIMOE_FAIL("CifarDataset: unknown split '", split, "': expected \"train\" or \"test\"");
  }
  return CifarDataset(std::move(files), false, CifarLabels::Fine,
                      read_names(dir + "/batches.meta.txt", 10));
}

CifarDataset CifarDataset::cifar100(const std::string& dir, const std::string& split,
                                    CifarLabels labels) {
  VIMOE_CHECK(split == "train" || split == "test", "CifarDataset: unknown split '", split,
              "': expected \"train\" or \"test\"");
  std::vector<std::string> names =
      labels == CifarLabels::Fine ? read_names(dir + "/fine_label_names.txt", 100)
                                  : read_names(dir + "/coarse_label_names.txt", 20);
  return CifarDataset({dir + "/" + split + ".bin"}, true, labels, std::move(names));
}

CifarDataset::CifarDataset(std::vector<std::string> files, bool cifar100, CifarLabels labels,
                           std::vector<std::string> class_names)
    : files_(std::move(files)),
      cifar100_(cifar100),
      labels_kind_(labels),
      class_names_(std::move(class_names)) {
  VIMOE_CHECK(!files_.empty(), "CifarDataset: no files given");
  VIMOE_CHECK(!class_names_.empty(), "CifarDataset(", files_[0], "): no class names given");
  const int64_t label_bytes = cifar100_ ? 2 : 1;
  const int64_t record = label_bytes + kImageBytes;
  // The label byte chosen, and the range each label byte must respect.
  const int64_t chosen = cifar100_ && labels_kind_ == CifarLabels::Fine ? 1 : 0;
  const int64_t limits[2] = {cifar100_ ? 20 : 10, 100};
  VIMOE_CHECK(static_cast<int64_t>(class_names_.size()) == limits[chosen], "CifarDataset(",
              files_[0], "): ", class_names_.size(), " class names given for ",
              limits[chosen], " classes");
  for (const std::string& path : files_) {
    const std::vector<uint8_t> bytes = read_file(path);
    const int64_t n = static_cast<int64_t>(bytes.size());
    VIMOE_CHECK(n > 0, "CIFAR file ", path, ": empty");
    VIMOE_CHECK(n % record == 0, "CIFAR file ", path, ": truncated: ", n,
                " bytes is not a whole number of ", record, "-byte records (", n / record,
                " records and ", n % record, " bytes left over)");
    const int64_t records = n / record;
    images_.reserve(images_.size() + static_cast<size_t>(records * kImageBytes));
    for (int64_t r = 0; r < records; ++r) {
      const uint8_t* rec = bytes.data() + r * record;
      for (int64_t b = 0; b < label_bytes; ++b) {
        const int64_t limit = cifar100_ ? limits[b] : limits[0];
        VIMOE_CHECK(rec[b] < limit, "CIFAR file ", path, ": record ", r, " has ",
                    cifar100_ ? (b == 0 ? "coarse label " : "fine label ") : "label ",
                    int{rec[b]}, ", out of range for ", limit, " classes");
      }
      labels_.push_back(rec[chosen]);
      images_.insert(images_.end(), rec + label_bytes, rec + record);
    }
    count_ += records;
  }
}

std::string CifarDataset::name() const {
  return std::string(cifar100_ ? "CIFAR-100" : "CIFAR-10") + "(" + files_[0] +
         (files_.size() > 1 ? ", ..." : "") + ")";
}

Sample CifarDataset::get(int64_t index) const {
  check_index(*this, index);
  Sample s;
  s.image = Image(kSide, kSide, 3);
  const uint8_t* planes = images_.data() + index * kImageBytes;
  // Planar RGB -> interleaved HWC.
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t p = 0; p < kSide * kSide; ++p) s.image.pixels[p * 3 + c] = planes[c * kSide * kSide + p];
  s.label = labels_[index];
  return s;
}

int64_t CifarDataset::label(int64_t index) const {
  check_index(*this, index);
  return labels_[index];
}

}  // namespace vimoe::data
