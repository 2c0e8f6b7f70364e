#include "data/image_folder.h"

#include <stb_image.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <ostream>

#include "data/file_io.h"
#include "engine/error.h"

namespace fs = std::filesystem;

namespace vimoe::data {

namespace {

bool is_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// stb_image keeps its failure reason per thread (thread-local since v2.26), so this is
// safe from the loader's workers.
std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown error";
}

enum class ImageFormat { Jpeg, Png, Bmp, Other };

ImageFormat sniff_format(const std::vector<uint8_t>& b) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return ImageFormat::Jpeg;
  if (b.size() >= 8 && std::memcmp(b.data(), png_sig, 8) == 0) return ImageFormat::Png;
  if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') return ImageFormat::Bmp;
  return ImageFormat::Other;
}

// Whether `marker` occurs within the last `window` bytes: a JPEG ends with its end-of-image
// marker FF D9 and a PNG with its IEND chunk, give or take trailing padding some writers add.
bool ends_with_marker(const std::vector<uint8_t>& b, const std::string& marker, size_t window) {
  const size_t from = b.size() > window ? b.size() - window : 0;
  return std::search(b.begin() + static_cast<std::ptrdiff_t>(from), b.end(), marker.begin(), marker.end()) !=
         b.end();
}

// What went wrong, in words. stb_image probes the formats in turn (PNG first), and some of
// its JPEG decoder's failures -- data that ends inside the entropy-coded scan, typically --
// set no reason of their own, which leaves the PNG probe's "bad png sig" behind; such a
// stale reason is replaced, and a file that lacks its format's end marker is called truncated.
std::string decode_failure(const std::vector<uint8_t>& bytes, const std::string& stb) {
  const ImageFormat format = sniff_format(bytes);
  std::string reason;
  switch (format) {
    case ImageFormat::Jpeg:
      reason = "JPEG decoder: " + (stb == "bad png sig" ? std::string("corrupt entropy-coded data") : stb);
      if (!ends_with_marker(bytes, "\xff\xd9", 64))
        reason += "; the file has no end-of-image marker, so it is truncated";
      break;
    case ImageFormat::Png:
      reason = "PNG decoder: " + stb;
      if (!ends_with_marker(bytes, "IEND", 64)) reason += "; the file has no IEND chunk, so it is truncated";
      break;
    case ImageFormat::Bmp:
      reason = "BMP decoder: " + (stb == "bad png sig" ? std::string("corrupt or truncated data") : stb);
      break;
    case ImageFormat::Other:
      reason = "not a JPEG, PNG or BMP file";
      break;
  }
  return reason + " (" + std::to_string(bytes.size()) + " bytes)";
}

// The stb_image that Debian ships (2.27) trusts a JPEG's Huffman table sizes: a DHT table
// whose 16 code counts add up to more than 256 makes it write past its 256-entry tables (a
// heap overflow found by fuzz/fuzz_image.cpp; later stb_image releases check it). So the
// marker segments are walked here first, the way stb_image reads them, and such a file is
// refused: tables are read while the segment's length has bytes left (the last one may run
// past the segment, and bytes past the end of the file read as 0, as in stb_image), and the
// walk goes on across entropy-coded scans, as progressive files define tables between them.
std::string jpeg_table_error(const std::vector<uint8_t>& b) {
  auto byte = [&](size_t i) -> uint32_t { return i < b.size() ? b[i] : 0; };
  size_t at = 2;  // past SOI
  while (at + 4 <= b.size()) {
    if (b[at] != 0xff) {  // entropy-coded data or junk: on to the next marker
      ++at;
      continue;
    }
    const uint8_t marker = b[at + 1];
    if (marker == 0xff || marker == 0x00 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      ++at;  // fill byte, stuffed byte, TEM, restart: no length field
      continue;
    }
    if (marker == 0xd9) return "";  // EOI
    const size_t length = (byte(at + 2) << 8) | byte(at + 3);
    if (marker == 0xc4) {  // DHT: tables of a class/id byte, 16 counts, then the values
      size_t t = at + 4;
      for (int64_t left = static_cast<int64_t>(length) - 2; left > 0;) {
        size_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += byte(t + i);
        if (codes > 256)
          return "JPEG: a Huffman table (DHT segment at byte " + std::to_string(at) + ") declares " +
                 std::to_string(codes) + " codes, more than the 256 a table holds";
        t += 17 + codes;
        left -= static_cast<int64_t>(17 + codes);
      }
    }
    if (length < 2) return "";  // stb_image stops at such a segment
    at += 2 + length;
  }
  return "";
}

// Why stb_image must not be given these bytes, or "" when it may: only JPEG, PNG and BMP are
// accepted (stb_image's other decoders are never reached), and no JPEG with oversized tables.
std::string refusal(const std::vector<uint8_t>& bytes) {
  switch (sniff_format(bytes)) {
    case ImageFormat::Jpeg:
      return jpeg_table_error(bytes);
    case ImageFormat::Png:
    case ImageFormat::Bmp:
      return "";
    case ImageFormat::Other:
      break;
  }
  return "not a JPEG, PNG or BMP file (" + std::to_string(bytes.size()) + " bytes)";
}

// The scan's header read: the first 4 KiB hold the header of nearly every file; one whose
// header lies further in (large metadata segments such as EXIF thumbnails) is read again
// with 64 KiB, then whole, so a folder scan reads little more than the headers. True when
// the header parses; otherwise `reason` says why.
bool read_image_header(const std::string& path, int& w, int& h, int& c, std::string& reason) {
  try {
    for (size_t limit : {size_t{1} << 12, size_t{1} << 16, SIZE_MAX}) {
      const std::vector<uint8_t> bytes = read_file_bytes(path, limit);
      reason = refusal(bytes);
      if (!reason.empty()) return false;
      if (bytes.size() <= static_cast<size_t>(std::numeric_limits<int>::max()) &&
          stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &c) && w > 0 && h > 0)
        return true;
      reason = stb_reason();
      if (bytes.size() < limit) return false;  // the whole file was read
    }
  } catch (const Error& e) {
    reason = e.what();
  }
  return false;
}

}  // namespace

Image load_image(const std::string& path, int channels) {
  VIMOE_CHECK(channels == 1 || channels == 3, "load_image(", path, "): channels must be 1 or 3, got ",
              channels);
  std::vector<uint8_t> bytes;
  try {
    bytes = read_file_bytes(path);
  } catch (const Error& e) {
    throw UnreadableSample(e.what());
  }
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw UnreadableSample(detail::concat("cannot decode image ", path, ": ", bytes.size(),
                                          " bytes is more than stb_image reads"));
  if (const std::string why = refusal(bytes); !why.empty())
    throw UnreadableSample(detail::concat("cannot decode image ", path, ": ", why));
  int w = 0, h = 0, file_channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &file_channels, channels),
      stbi_image_free);
  if (pixels == nullptr)
    throw UnreadableSample(detail::concat("cannot decode image ", path, ": ", decode_failure(bytes, stb_reason())));
  Image img(h, w, channels);
  std::memcpy(img.pixels.data(), pixels.get(), img.pixels.size());
  return img;
}

ImageFolder::ImageFolder(const std::string& root, std::ostream* warnings) : root_(root) {
  try {
    scan(warnings);
  } catch (const fs::filesystem_error& e) {  // unreadable directories, link loops, ...
    VIMOE_FAIL("ImageFolder(", root_, "): ", e.what());
  }
}

void ImageFolder::scan(std::ostream* warnings) {
  std::error_code ec;
  VIMOE_CHECK(fs::is_directory(root_, ec), "ImageFolder: ", root_, " is not a directory");
  std::vector<fs::path> class_dirs;
  for (const fs::directory_entry& e : fs::directory_iterator(root_)) {
    if (!is_hidden(e.path()) && e.is_directory()) class_dirs.push_back(e.path());
  }
  VIMOE_CHECK(!class_dirs.empty(), "ImageFolder: ", root_, " has no class sub-directories");
  std::sort(class_dirs.begin(), class_dirs.end());

  for (const fs::path& dir : class_dirs) {
    const int64_t label = static_cast<int64_t>(classes_.size());
    classes_.push_back(dir.filename().string());
    std::vector<fs::path> files;
    for (auto e = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
         e != fs::recursive_directory_iterator(); ++e) {
      if (is_hidden(e->path())) {
        if (e->is_directory()) e.disable_recursion_pending();
        continue;
      }
      if (!e->is_regular_file()) continue;
      if (is_image_extension(e->path())) files.push_back(e->path());
      else ++ignored_;
    }
    std::sort(files.begin(), files.end());
    int64_t kept = 0;
    for (const fs::path& f : files) {
      int w = 0, h = 0, c = 0;
      std::string reason;
      if (read_image_header(f.string(), w, h, c, reason)) {
        items_.push_back({f.string(), label});
        if (native_size_ < 0) native_size_ = w == h ? w : 0;
        else if (w != h || w != native_size_) native_size_ = 0;
        ++kept;
        continue;
      }
      skipped_.push_back({f.string(), reason});
      if (warnings)
        *warnings << "ImageFolder: skipping unreadable image " << f.string() << ": "
                  << skipped_.back().reason << "\n";
    }
    VIMOE_CHECK(kept > 0, "ImageFolder: class directory ", dir.string(),
                " holds no readable image (", files.size(), " image files, ",
                files.size() - kept, " unreadable)");
  }
  native_size_ = std::max<int64_t>(native_size_, 0);
}

const std::string& ImageFolder::path(int64_t index) const {
  check_index(*this, index);
  return items_[index].path;
}

Sample ImageFolder::get(int64_t index) const {
  check_index(*this, index);
  Sample s;
  s.image = load_image(items_[index].path, 3);
  s.label = items_[index].label;
  return s;
}

int64_t ImageFolder::label(int64_t index) const {
  check_index(*this, index);
  return items_[index].label;
}

}  // namespace vimoe::data
