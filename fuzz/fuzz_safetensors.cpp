// The safetensors reader: header length, JSON header, dtypes, shapes, offsets, metadata.
// Every tensor of a file that opens is read and converted, so offsets are really used.
#include "engine/io/safetensors.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = vimoe::fuzz::write_input(".safetensors", data, size);
  vimoe::fuzz::reject_only_with_vimoe_errors([&] {
    const vimoe::io::SafetensorsFile f = vimoe::io::SafetensorsFile::open(path);
    for (const std::string& name : f.names()) {
      const vimoe::Tensor t = f.get(name);
      if (t.numel() > 0 && t.numel() < (1 << 16)) (void)t.to(vimoe::DType::F32).to_vector<float>();
    }
    for (const auto& [key, value] : f.metadata()) (void)key.size(), (void)value.size();
  });
  return 0;
}
