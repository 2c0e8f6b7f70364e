// MNIST-family datasets in the IDX format (MNIST, Fashion-MNIST, KMNIST, ...).
//
// An IDX file is a big-endian header -- two zero bytes, a type byte (0x08: unsigned byte),
// the number of dimensions d, then d 32-bit sizes -- followed by the values in row-major
// order. Images are [N, rows, cols] (or [N, rows, cols, channels] with 1 or 3 channels),
// labels [N]. Files may be gzip-compressed or raw; both are read through zlib.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace vimoe::data {

// Where Debian's dataset-fashion-mnist package installs the four .gz files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

class IdxDataset : public Dataset {
 public:
  // Reads and validates both files now; throws vimoe::Error naming the file for a missing
  // or unreadable file, a bad magic number or type, a truncated file or trailing bytes,
  // images and labels that differ in count, or a label >= class_names.size().
  IdxDataset(std::string images_path, std::string labels_path,
             std::vector<std::string> class_names);

  // The standard file names in `dir` for split "train" (train-images-idx3-ubyte, ...) or
  // "test" (t10k-images-idx3-ubyte, ...), each taken with a ".gz" suffix when that exists.
  static IdxDataset fashion_mnist(const std::string& split,
                                  const std::string& dir = kFashionMnistDir);
  static IdxDataset mnist(const std::string& split, const std::string& dir);
  // The split's two paths (images, labels) in `dir`; throws when either is missing.
  static std::pair<std::string, std::string> split_files(const std::string& dir,
                                                         const std::string& split);

  int64_t size() const override { return count_; }
  Sample get(int64_t index) const override;
  int64_t label(int64_t index) const override;
  const std::vector<std::string>& class_names() const override { return class_names_; }
  std::string name() const override { return "IdxDataset(" + images_path_ + ")"; }

  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  int64_t channels() const { return channels_; }

 private:
  std::string images_path_, labels_path_;
  std::vector<std::string> class_names_;
  int64_t count_ = 0, height_ = 0, width_ = 0, channels_ = 1;
  std::vector<uint8_t> pixels_;  // count_ * height_ * width_ * channels_
  std::vector<uint8_t> labels_;
};

}  // namespace vimoe::data
