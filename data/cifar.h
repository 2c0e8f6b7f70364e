// CIFAR-10 and CIFAR-100 in their canonical binary distribution.
//
// CIFAR-10 ("cifar-10-batches-bin"): data_batch_1.bin .. data_batch_5.bin and test_batch.bin,
// each a run of 3073-byte records: the label byte, then 1024 red, 1024 green and 1024 blue
// bytes of a 32x32 image (planes row-major). Class names come from batches.meta.txt.
// CIFAR-100 ("cifar-100-binary"): train.bin and test.bin, 3074-byte records: the coarse
// (superclass, 20) label byte, the fine (100) label byte, then the same 3072 image bytes.
// Class names come from fine_label_names.txt / coarse_label_names.txt.
// Missing name files give the names "0", "1", ...
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace vimoe::data {

enum class CifarLabels { Fine, Coarse };  // CIFAR-100 only

class CifarDataset : public Dataset {
 public:
  // Split "train" or "test" of the extracted archive in `dir`.
  static CifarDataset cifar10(const std::string& dir, const std::string& split);
  static CifarDataset cifar100(const std::string& dir, const std::string& split,
                               CifarLabels labels = CifarLabels::Fine);

  // The records of `files` in order. `cifar100` picks the 3074-byte record layout and
  // `labels` which of its label bytes to use; `class_names` sets num_classes().
  // Throws vimoe::Error naming the file for a missing or unreadable file, an empty file, a
  // size that is not a whole number of records (truncated), or a label out of range
  // (for CIFAR-100 both label bytes are checked: fine < 100, coarse < 20).
  CifarDataset(std::vector<std::string> files, bool cifar100, CifarLabels labels,
               std::vector<std::string> class_names);

  int64_t size() const override { return count_; }
  Sample get(int64_t index) const override;
  int64_t label(int64_t index) const override;
  const std::vector<std::string>& class_names() const override { return class_names_; }
  std::string name() const override;

 private:
  std::vector<std::string> files_;
  bool cifar100_ = false;
  CifarLabels labels_kind_ = CifarLabels::Fine;
  std::vector<std::string> class_names_;
  int64_t count_ = 0;
  std::vector<uint8_t> images_;  // count_ records of 3072 bytes (R, G, B planes)
  std::vector<uint8_t> labels_;  // the chosen label of each record
};

}  // namespace vimoe::data
