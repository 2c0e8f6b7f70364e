// safetensors: the engine's one on-disk format for weights and checkpoints.
// Layout: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name
// to {dtype, shape, data_offsets: [begin, end)} (offsets relative to the byte buffer that
// follows the header), an optional "__metadata__" object of strings, then the buffer.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace vimoe::io {

struct TensorInfo {
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte range within the data buffer
};

// A validated, memory-mapped safetensors file. Tensors it returns view the mapping without
// a copy (unless a tensor is misaligned for its dtype) and keep it alive.
class SafetensorsFile {
 public:
  // Throws vimoe::Error naming the file (and the tensor, where one is at fault) for: a
  // missing or unreadable file, a header length beyond the file, invalid JSON, an unknown
  // dtype, a bad shape, offsets out of range, overlapping or leaving holes, and a byte size
  // that does not equal numel x dtype size.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  // A CPU tensor of the stored dtype and shape; throws naming the file if absent.
  Tensor get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  std::shared_ptr<Storage> mapping_;  // the whole file
  size_t data_start_ = 0;
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

// Validates a header (the JSON text) against a data buffer of `data_size` bytes and fills
// `infos` and `metadata`; used by open(), and by tests on headers alone.
void parse_header(const std::string& json, size_t data_size, const std::string& path,
                  std::map<std::string, TensorInfo>& infos,
                  std::map<std::string, std::string>& metadata);

// Writes tensors (any device; copied to the CPU) atomically: the bytes go to a temporary
// file beside `path`, are flushed to disk, and only then renamed over `path`, so a failed
// or interrupted write never replaces a good file. Names must be unique and non-empty.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype string ("F32", "BF16", ...) of a dtype, and back.
const char* safetensors_dtype(DType t);
DType dtype_from_safetensors(const std::string& s, const std::string& context);

}  // namespace vimoe::io
