#include "data/file_io.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "engine/error.h"

namespace vimoe::data {

std::vector<uint8_t> read_file(const std::string& path) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  VIMOE_CHECK(f != nullptr, "cannot open ", path, ": ",
              errno != 0 ? std::strerror(errno) : "out of memory");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(f, gzclose);
  gzbuffer(f, 1 << 18);  // fewer read() calls than zlib's default 8 KiB

  // Fails with the file's name and zlib's reason; Z_BUF_ERROR means the input ended in the
  // middle of a gzip stream.
  auto fail = [&]() {
    int code = 0;
    const char* msg = gzerror(f, &code);
    if (code == Z_BUF_ERROR) VIMOE_FAIL("cannot read ", path, ": the gzip stream is truncated");
    if (code == Z_ERRNO) VIMOE_FAIL("cannot read ", path, ": ", std::strerror(errno));
    VIMOE_FAIL("cannot read ", path, ": corrupt gzip data (", msg, ")");
  };
  std::vector<uint8_t> bytes;
  constexpr size_t kChunk = 1 << 20;
  for (;;) {
    const size_t old = bytes.size();
    bytes.resize(old + kChunk);
    const int n = gzread(f, bytes.data() + old, static_cast<unsigned>(kChunk));
    if (n < 0) fail();
    bytes.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
  }
  int code = 0;
  gzerror(f, &code);
  if (code != Z_OK) fail();
  return bytes;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes) {
  errno = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  VIMOE_CHECK(f != nullptr, "cannot open ", path, ": ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  while (bytes.size() < max_bytes) {
    const size_t want = std::min(sizeof chunk, max_bytes - bytes.size());
    const size_t n = std::fread(chunk, 1, want, f.get());
    bytes.insert(bytes.end(), chunk, chunk + n);
    if (n < want) break;
  }
  VIMOE_CHECK(!std::ferror(f.get()), "cannot read ", path, ": ", std::strerror(errno));
  return bytes;
}

bool is_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

}  // namespace vimoe::data
