// A directory tree of images, one sub-directory per class (torchvision's ImageFolder):
//   root/<class name>/**/<image file>
// Classes are the sub-directories of root sorted by name (label = position); each class's
// files are sorted by path. JPEG files are decoded with libjpeg-turbo (as Pillow and
// torchvision decode them), PNG and BMP with stb_image; grayscale, grey+alpha, RGBA and
// CMYK images become RGB (alpha dropped), so every image has 3 channels. Files with an image
// extension (.jpg, .jpeg, .png, .bmp, any case) are taken; other files and hidden (dot)
// entries are ignored.
//
// The scan reads only each file's header (its first 4 KiB as a rule): a file that is not
// JPEG, PNG or BMP whatever its extension, whose header does not parse, or whose header
// cannot be honest (more pixels than 178,956,970, Pillow's decompression-bomb limit; a JPEG
// smaller than any of its declared size; an uncompressed BMP whose rows do not fit) is
// reported -- path and reason, one line on the warning stream -- and skipped; skipped()
// lists them afterwards. Pixels are decoded lazily in get(), which throws UnreadableSample
// naming the file and the decoder's reason if decoding fails there (a file whose body is
// corrupt or cut short); the Loader skips such a sample and reports it.
#pragma once
#include <iostream>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace vimoe::data {

class ImageFolder : public Dataset {
 public:
  struct Skipped {
    std::string path, reason;
  };

  // Throws vimoe::Error when root is not a directory, has no class sub-directories, or a
  // class ends up with no readable image. `warnings` may be null (no report lines; the
  // skipped() list is still kept).
  explicit ImageFolder(const std::string& root, std::ostream* warnings = &std::cerr);

  int64_t size() const override { return static_cast<int64_t>(items_.size()); }
  Sample get(int64_t index) const override;
  int64_t label(int64_t index) const override;
  const std::vector<std::string>& class_names() const override { return classes_; }
  std::string name() const override { return "ImageFolder(" + root_ + ")"; }

  const std::string& path(int64_t index) const;
  // Files with an image extension whose header could not be read, in scan order.
  const std::vector<Skipped>& skipped() const { return skipped_; }
  // Files ignored because their extension is not an image format.
  int64_t num_ignored() const { return ignored_; }
  // The side of every image when all are square and of one size (CIFAR as a folder), else 0;
  // read from the headers during the scan.
  int64_t native_size() const { return native_size_; }

 private:
  struct Item {
    std::string path;
    int64_t label;
  };
  void scan(std::ostream* warnings);

  std::string root_;
  std::vector<std::string> classes_;
  std::vector<Item> items_;
  std::vector<Skipped> skipped_;
  int64_t ignored_ = 0;
  int64_t native_size_ = -1;  // -1 until the first image
};

// Decodes an image file to 8-bit HWC with `channels` channels (1 or 3; the decoder converts).
// Throws UnreadableSample naming the file and what is wrong with it (the decoder's reason;
// "truncated" when the file lacks its format's end marker), vimoe::Error for bad channels.
Image load_image(const std::string& path, int channels = 3);

// An image file's width and height from its header (the first 4 KiB as a rule), with the
// checks ImageFolder's scan makes; false with the reason (not JPEG, PNG or BMP; a header that
// does not parse or cannot be honest) otherwise. Reads no pixels.
bool read_image_header(const std::string& path, int& w, int& h, std::string& reason);

}  // namespace vimoe::data
