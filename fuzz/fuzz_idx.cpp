// The IDX reader (MNIST family), raw or gzip-compressed, with its images/labels pairing.
// Input: a 4-byte little-endian length n, n bytes of the labels file, then the images file.
#include <cstring>

#include "data/idx.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t n = 0;
  std::memcpy(&n, data, 4);
  n = static_cast<uint32_t>(std::min<size_t>(n, size - 4));
  const std::string labels = vimoe::fuzz::write_input("-labels.idx", data + 4, n);
  const std::string images = vimoe::fuzz::write_input("-images.idx", data + 4 + n, size - 4 - n);
  vimoe::fuzz::reject_only_with_vimoe_errors([&] {
    const vimoe::data::IdxDataset ds(images, labels, {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
    for (int64_t i = 0; i < std::min<int64_t>(ds.size(), 256); ++i) {
      const vimoe::data::Sample s = ds.get(i);
      if (s.label != ds.label(i) || s.image.pixels.size() != static_cast<size_t>(ds.height() * ds.width() * ds.channels()))
        std::abort();
    }
  });
  return 0;
}
