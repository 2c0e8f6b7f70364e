// The image reader as training uses it: an image folder's scan (the header check) over one
// file, then the full decode (load_image: JPEG / PNG / BMP through stb_image, with the checks
// made before stb_image sees the bytes, and the failure diagnosis). The first byte picks grey
// or RGB output; the rest is the file.
#include <filesystem>

#include "data/image_folder.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int channels = (data[0] & 1) ? 1 : 3;
  static const std::filesystem::path root = [] {
    const std::filesystem::path dir = vimoe::fuzz::write_input(".dir", nullptr, 0) + "s";
    std::filesystem::create_directories(dir / "class");
    return dir;
  }();
  const std::string path = (root / "class" / "input.jpg").string();
  vimoe::fuzz::write_file(path, data + 1, size - 1);
  vimoe::fuzz::reject_only_with_vimoe_errors([&] {
    const vimoe::data::ImageFolder folder(root.string(), nullptr);  // throws when the scan refuses it
    const vimoe::data::Image img = vimoe::data::load_image(path, channels);
    if (img.channels != channels || img.pixels.size() != static_cast<size_t>(img.height * img.width * channels))
      std::abort();
  });
  return 0;
}
