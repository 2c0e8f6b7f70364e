// Whole-file reads shared by the dataset readers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vimoe::data {

// Every byte of `path`, gunzipped on the fly when the file is gzip-compressed (zlib reads
// uncompressed files unchanged). Throws vimoe::Error naming the file when it cannot be
// opened or read, or when its gzip stream is corrupt or ends early.
std::vector<uint8_t> read_file(const std::string& path);

// The bytes of `path` as stored (no decompression), all of them or the first `max_bytes`:
// small files such as images are read without zlib's buffers. Throws vimoe::Error naming
// the file when it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes = SIZE_MAX);

// True when `path` names an existing regular file (or a link to one).
bool is_file(const std::string& path);

}  // namespace vimoe::data
