// The dataset interface: N labelled images, decoded on demand.
//
// Every dataset validates its files when it is opened and throws vimoe::Error naming the
// file and what was wrong (bad magic, truncated data, a label out of range, images and
// labels that disagree in count). get() is const and safe to call from several threads at
// once: the loader's workers share one dataset.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"

namespace vimoe::data {

// Thrown by Dataset::get when one item's stored data cannot be read or decoded (a truncated
// or corrupt image file, a file gone since the scan). The Loader skips such items and reports
// them (Batch::skipped); any other error stops loading.
class UnreadableSample : public Error {
 public:
  using Error::Error;
};

// A decoded image: 8-bit, height x width x channels, row-major (HWC), channels 1 or 3.
struct Image {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels bytes

  Image() = default;
  Image(int64_t h, int64_t w, int64_t c)
      : height(h), width(w), channels(c), pixels(static_cast<size_t>(h * w * c)) {}
  uint8_t& at(int64_t y, int64_t x, int64_t c) { return pixels[(y * width + x) * channels + c]; }
  uint8_t at(int64_t y, int64_t x, int64_t c) const {
    return pixels[(y * width + x) * channels + c];
  }
};

struct Sample {
  Image image;
  int64_t label = 0;  // in [0, num_classes()); 0 for segmentation samples (they have `mask`)
  // Segmentation: the label map, image.height x image.width x 1 class indices in
  // [0, num_classes()) or the dataset's ignore_index() where a pixel is unlabelled. Empty
  // (0 x 0) for classification.
  Image mask;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Item `index` in [0, size()); throws vimoe::Error outside that range, UnreadableSample
  // (naming the file and the decoder's reason) when the item's data cannot be decoded.
  virtual Sample get(int64_t index) const = 0;
  virtual int64_t num_classes() const { return static_cast<int64_t>(class_names().size()); }
  virtual const std::vector<std::string>& class_names() const = 0;
  // Label of item `index` without decoding its image.
  virtual int64_t label(int64_t index) const = 0;
  // Segmentation datasets: every sample carries a label map (Sample::mask) and this is the
  // value that marks its unlabelled pixels (255, as in mmseg); classification: -1.
  virtual int64_t ignore_index() const { return -1; }
  bool dense_labels() const { return ignore_index() >= 0; }
  // A short description for error messages, e.g. "IdxDataset(/path/train-images-idx3-ubyte.gz)".
  virtual std::string name() const = 0;
};

// Throws vimoe::Error naming the dataset unless 0 <= index < dataset.size().
void check_index(const Dataset& dataset, int64_t index);

}  // namespace vimoe::data
