#include "data/image_folder.h"

#include <stb_image.h>
#include <turbojpeg.h>

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

// What went wrong, in words: the decoder's reason (`stb` is libjpeg-turbo's for a JPEG), and
// "truncated" for a file that lacks its format's end marker. stb_image probes the formats in
// turn (PNG first) and some of its failures set no reason of their own, leaving the PNG
// probe's stale "bad png sig"; that is replaced.
std::string decode_failure(const std::vector<uint8_t>& bytes, const std::string& stb) {
  const ImageFormat format = sniff_format(bytes);
  std::string reason;
  switch (format) {
    case ImageFormat::Jpeg:
      reason = "JPEG decoder: " + stb;
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

// Why these bytes are not decoded at all, or "": only JPEG, PNG and BMP are accepted, so
// stb_image's other decoders (GIF, PSD, PIC, TGA, HDR) are never reached.
std::string refusal(const std::vector<uint8_t>& bytes) {
  if (sniff_format(bytes) != ImageFormat::Other) return "";
  return "not a JPEG, PNG or BMP file (" + std::to_string(bytes.size()) + " bytes)";
}

// JPEG goes through libjpeg-turbo's TurboJPEG API (the decoder Pillow and torchvision use):
// fuzzing Debian's stb_image 2.27 found a heap overflow on oversized Huffman tables and
// out-of-bounds reads on corrupt Huffman codes in its JPEG decoder. One decompressor per
// thread: the loader's workers decode at once. A decompressor that has failed is replaced:
// libjpeg-turbo 2.1 leaves state behind after an error that breaks the next file ("Bogus
// Huffman table definition" for good files).
struct JpegDecompressor {
  tjhandle h = nullptr;
  ~JpegDecompressor() {
    if (h) tjDestroy(h);
  }
};
thread_local JpegDecompressor tls_jpeg;

tjhandle jpeg_decompressor() {
  if (!tls_jpeg.h) tls_jpeg.h = tjInitDecompress();
  VIMOE_CHECK(tls_jpeg.h != nullptr, "cannot create a JPEG decompressor: ", tjGetErrorStr2(nullptr));
  return tls_jpeg.h;
}

// libjpeg-turbo's message for the failure just seen; the decompressor is then replaced.
std::string jpeg_failure() {
  std::string message = tjGetErrorStr2(tls_jpeg.h);
  tjDestroy(tls_jpeg.h);
  tls_jpeg.h = nullptr;
  return message;
}

// The JPEG's size and colour space from its header (the bytes up to its frame header
// suffice); false with libjpeg-turbo's reason when it does not parse.
bool jpeg_header(const std::vector<uint8_t>& b, int& w, int& h, int& colorspace, std::string& reason) {
  int subsampling = 0;
  if (tjDecompressHeader3(jpeg_decompressor(), b.data(), static_cast<unsigned long>(b.size()), &w, &h,
                          &subsampling, &colorspace) == 0)
    return true;
  reason = jpeg_failure();
  return false;
}

// Decodes a whole JPEG into `out` (1 or 3 channels); "" or libjpeg-turbo's reason. A
// warning that the data ended early ("Premature end of JPEG file": libjpeg fills the rest
// with grey) fails, as Pillow fails such a file; other warnings (extraneous bytes before a
// marker, ...) are tolerated, as Pillow tolerates them. CMYK / YCCK files (Adobe's, stored
// inverted) become RGB as R = C K / 255 (likewise G, B), as stb_image converts them.
std::string jpeg_decode(const std::vector<uint8_t>& b, int channels, Image& out) {
  int w = 0, h = 0, colorspace = 0;
  std::string reason;
  if (!jpeg_header(b, w, h, colorspace, reason)) return reason;
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  const int format = cmyk ? TJPF_CMYK : channels == 1 ? TJPF_GRAY : TJPF_RGB;
  std::vector<uint8_t> pixels(static_cast<size_t>(w) * h * tjPixelSize[format]);
  const tjhandle tj = jpeg_decompressor();
  if (tjDecompress2(tj, b.data(), static_cast<unsigned long>(b.size()), pixels.data(), w, 0, h, format, 0) != 0) {
    const bool warning = tjGetErrorCode(tj) == TJERR_WARNING;
    const std::string message = jpeg_failure();
    if (!warning || message.find("Premature end") != std::string::npos) return message;
  }
  out = Image(h, w, channels);
  if (!cmyk) {
    out.pixels = std::move(pixels);
    return "";
  }
  for (int64_t i = 0; i < static_cast<int64_t>(w) * h; ++i) {
    const uint8_t* p = &pixels[4 * i];
    const int r = p[0] * p[3] / 255, g = p[1] * p[3] / 255, bl = p[2] * p[3] / 255;
    if (channels == 3) {
      out.pixels[3 * i] = static_cast<uint8_t>(r), out.pixels[3 * i + 1] = static_cast<uint8_t>(g);
      out.pixels[3 * i + 2] = static_cast<uint8_t>(bl);
    } else {  // stb_image's luma weights
      out.pixels[i] = static_cast<uint8_t>((r * 77 + g * 150 + 29 * bl) >> 8);
    }
  }
  return "";
}

// stb_image's PNG decoder sizes its buffer from each IDAT chunk's declared length before
// reading it, so a lying length (found by fuzz/fuzz_image.cpp: 2 GB from a 700-byte file)
// would allocate gigabytes. Every chunk must fit in the file; "" when they do.
std::string png_chunk_error(const std::vector<uint8_t>& b) {
  for (size_t at = 8; at + 8 <= b.size();) {
    const uint64_t length = (uint64_t{b[at]} << 24) | (uint64_t{b[at + 1]} << 16) | (uint64_t{b[at + 2]} << 8) | b[at + 3];
    const std::string type(reinterpret_cast<const char*>(&b[at + 4]), 4);
    if (at + 12 + length > b.size())
      return "PNG: the " + type + " chunk at byte " + std::to_string(at) + " declares " + std::to_string(length) +
             " bytes, past the end of the file (" + std::to_string(b.size()) + " bytes), so it is truncated";
    if (type == "IEND") break;
    at += 12 + length;
  }
  return "";
}

// The image's size from its header, through the decoder that will read it.
bool image_info(const std::vector<uint8_t>& b, int& w, int& h, std::string& reason) {
  if (sniff_format(b) == ImageFormat::Jpeg) {
    int colorspace = 0;
    return jpeg_header(b, w, h, colorspace, reason);
  }
  int c = 0;
  if (b.size() <= static_cast<size_t>(std::numeric_limits<int>::max()) &&
      stbi_info_from_memory(b.data(), static_cast<int>(b.size()), &w, &h, &c) && w > 0 && h > 0)
    return true;
  reason = stb_reason();
  return false;
}

// The most pixels an image may declare: Pillow's threshold for refusing a decompression bomb
// (twice its MAX_IMAGE_PIXELS), so a corrupt header cannot make a loader worker allocate
// gigabytes.
constexpr int64_t kMaxImagePixels = 178956970;

uint32_t le32(const std::vector<uint8_t>& b, size_t at) {
  return b[at] | (uint32_t{b[at + 1]} << 8) | (uint32_t{b[at + 2]} << 16) | (uint32_t{b[at + 3]} << 24);
}

// Why a header that parsed (w x h) cannot be honest, or "": more pixels than kMaxImagePixels;
// a JPEG smaller than any JPEG of that size can be (its best case, a flat image with 1-bit
// codes, is 2 bits per 8x8 block, 256 pixels a byte: 1024 allows four times that); an
// uncompressed BMP whose rows do not fit in the file (stb_image would read zeros past the
// end and return a made-up image; a BMP's bit depth and offset are read as stb_image
// reads them). `head` holds at least the header, `file_bytes` is the
// file's whole size.
std::string size_refusal(const std::vector<uint8_t>& head, int64_t w, int64_t h, uint64_t file_bytes) {
  const int64_t pixels = w * h;
  const std::string dims = std::to_string(w) + "x" + std::to_string(h);
  if (pixels > kMaxImagePixels)
    return "the header declares " + dims + " = " + std::to_string(pixels) + " pixels, more than the " +
           std::to_string(kMaxImagePixels) + " accepted (a corrupt header or a decompression bomb)";
  const ImageFormat format = sniff_format(head);
  if (format == ImageFormat::Jpeg && static_cast<uint64_t>(pixels) > 1024 * file_bytes)
    return "the header declares " + dims + " pixels but the file holds " + std::to_string(file_bytes) +
           " bytes, fewer than any JPEG of that size; it is corrupt or truncated";
  if (format == ImageFormat::Bmp && head.size() >= 34) {
    // stb_image decodes every compression code but the RLE ones (1, 2) as plain rows; the
    // OS/2 header (12 bytes) has 16-bit fields and no compression code.
    const uint32_t header = le32(head, 14), offset = le32(head, 10);
    const uint32_t bpp = header == 12 ? head[24] | (uint32_t{head[25]} << 8) : head[28] | (uint32_t{head[29]} << 8);
    const uint32_t compression = header >= 40 ? le32(head, 30) : 0;
    if (compression != 1 && compression != 2 && bpp > 0 && bpp <= 32) {
      const uint64_t row = (static_cast<uint64_t>(w) * bpp + 31) / 32 * 4;
      const uint64_t need = uint64_t{offset} + row * static_cast<uint64_t>(h);
      if (need > file_bytes)
        return "the BMP header declares " + dims + " pixels in " + std::to_string(need) + " bytes, but the file has " +
               std::to_string(file_bytes) + ", so it is truncated";
    }
  }
  return "";
}

}  // namespace

// The scan's header read: the first 4 KiB hold the header of nearly every file; one whose
// header lies further in (large metadata segments such as EXIF thumbnails) is read again
// with 64 KiB, then whole, so a folder scan reads little more than the headers. True when
// the header parses; otherwise `reason` says why.
bool read_image_header(const std::string& path, int& w, int& h, std::string& reason) {
  try {
    for (size_t limit : {size_t{1} << 12, size_t{1} << 16, SIZE_MAX}) {
      const std::vector<uint8_t> bytes = read_file_bytes(path, limit);
      reason = refusal(bytes);
      if (!reason.empty()) return false;
      if (image_info(bytes, w, h, reason)) {
        std::error_code ec;
        const uint64_t whole = bytes.size() < limit ? bytes.size() : fs::file_size(path, ec);
        reason = size_refusal(bytes, w, h, ec ? bytes.size() : whole);
        return reason.empty();
      }
      if (bytes.size() < limit) {  // the whole file was read: say whether it is truncated
        reason = decode_failure(bytes, reason);
        return false;
      }
    }
  } catch (const Error& e) {
    reason = e.what();
  }
  return false;
}

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
  std::string reason;
  if (!image_info(bytes, w, h, reason))
    throw UnreadableSample(detail::concat("cannot decode image ", path, ": ", decode_failure(bytes, reason)));
  if (const std::string why = size_refusal(bytes, w, h, bytes.size()); !why.empty())
    throw UnreadableSample(detail::concat("cannot decode image ", path, ": ", why));
  if (sniff_format(bytes) == ImageFormat::Png) {
    if (const std::string why = png_chunk_error(bytes); !why.empty())
      throw UnreadableSample(detail::concat("cannot decode image ", path, ": ", why));
  }
  if (sniff_format(bytes) == ImageFormat::Jpeg) {
    Image img;
    if (const std::string why = jpeg_decode(bytes, channels, img); !why.empty())
      throw UnreadableSample(detail::concat("cannot decode image ", path, ": ", decode_failure(bytes, why)));
    return img;
  }
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
      int w = 0, h = 0;
      std::string reason;
      if (read_image_header(f.string(), w, h, reason)) {
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
