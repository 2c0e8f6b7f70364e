// The CIFAR-10 / CIFAR-100 binary reader. The first byte picks the layout (bit 0: CIFAR-100)
// and, for CIFAR-100, the label kind (bit 1: coarse); the rest is the batch file.
#include "data/cifar.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool hundred = data[0] & 1;
  const auto labels = (data[0] & 2) ? vimoe::data::CifarLabels::Coarse : vimoe::data::CifarLabels::Fine;
  const std::string path = vimoe::fuzz::write_input(".bin", data + 1, size - 1);
  std::vector<std::string> names(hundred ? (labels == vimoe::data::CifarLabels::Coarse ? 20 : 100) : 10);
  for (size_t i = 0; i < names.size(); ++i) names[i] = std::to_string(i);
  vimoe::fuzz::reject_only_with_vimoe_errors([&] {
    const vimoe::data::CifarDataset ds({path}, hundred, labels, names);
    for (int64_t i = 0; i < std::min<int64_t>(ds.size(), 64); ++i) {
      const vimoe::data::Sample s = ds.get(i);
      if (s.label < 0 || s.label >= ds.num_classes() || s.image.pixels.size() != 32 * 32 * 3) std::abort();
    }
  });
  return 0;
}
