// Semantic-segmentation datasets: image + label-map pairs on disk, labels stored as 8-bit
// greyscale PNGs of class indices.
//
// Layouts (the one a dataset name picks; the split is a folder name):
//   CamVid (SegNet's 360x480 release): root/<split>/<stem>.{jpg,png} with its labels in
//     root/<split>annot/<stem>.png; 11 classes (Sky ... Bicyclist), stored value 11 is
//     "void" and becomes the ignore index. Splits: train, val, test.
//   ADE20K (ADEChallengeData2016): root/images/<split>/<stem>.jpg with
//     root/annotations/<split>/<stem>.png; stored 0 is "other" and becomes the ignore index,
//     the 150 classes are stored 1..150 and shifted down to 0..149 (mmseg's
//     reduce_zero_label). Splits: training, validation.
// Every sample's mask holds class indices in [0, num_classes()) or ignore_index() (255).
//
// Opening validates the pairing from the files' headers alone: an image without its label
// file, a label file without its image, two images (or labels) of one stem, a label that is
// not 8-bit greyscale (an RGB or palette PNG holds colours, not indices; 16-bit is refused,
// and so are 1-, 2- and 4-bit, which decoders scale to 0..255), and an image and label of
// different sizes are errors naming the files. Hidden (dot) files are ignored. Label values are checked when a sample is
// decoded: a stored value that maps to no class (CamVid: above 11 -- it allows 0..10 and
// 11; ADE20K: above 150) is a vimoe::Error naming the label file, the pixel and the range,
// since a wrong class count is a configuration error, not a corrupt file. An image that does
// not decode throws UnreadableSample (the Loader skips it), as in ImageFolder.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace vimoe::data {

enum class SegmentationLayout { CamVid, ADE20K };

class SegmentationFolder : public Dataset {
 public:
  // Items in stem order. Throws vimoe::Error when the split's folders are missing or empty,
  // or a pair fails the checks above (the first failure names its files; the message counts
  // the others).
  SegmentationFolder(const std::string& root, const std::string& split, SegmentationLayout layout);

  int64_t size() const override { return static_cast<int64_t>(items_.size()); }
  Sample get(int64_t index) const override;  // image 3 channels, mask 1 channel
  int64_t label(int64_t index) const override;  // 0: segmentation items have no image label
  const std::vector<std::string>& class_names() const override { return classes_; }
  int64_t ignore_index() const override { return 255; }
  std::string name() const override;

  const std::string& image_path(int64_t index) const;
  const std::string& label_path(int64_t index) const;
  // Each image's height and width, from the headers read at open.
  std::pair<int64_t, int64_t> image_size(int64_t index) const;
  SegmentationLayout layout() const { return layout_; }

  // Class names of the layouts, in index order.
  static const std::vector<std::string>& camvid_classes();
  static const std::vector<std::string>& ade20k_classes();

 private:
  struct Item {
    std::string image, label;
    int64_t height = 0, width = 0;
  };
  std::string root_, split_;
  SegmentationLayout layout_;
  std::vector<std::string> classes_;
  std::vector<Item> items_;
};

// Decodes a label PNG to an h x w x 1 Image of its stored values, unchanged. Throws
// vimoe::Error naming the file when it is not 8-bit greyscale; UnreadableSample when it does
// not decode.
Image load_label_map(const std::string& path);

}  // namespace vimoe::data
