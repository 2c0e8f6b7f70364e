#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "engine/autograd.h"

// GCC announces AddressSanitizer with __SANITIZE_ADDRESS__, Clang through __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define VIMOE_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VIMOE_ADDRESS_SANITIZER 1
#endif
#endif
#ifdef VIMOE_ADDRESS_SANITIZER
#include <sanitizer/asan_interface.h>
#endif

namespace vimoe::io {

namespace {

constexpr size_t kMaxHeader = 100u << 20;  // a header larger than 100 MiB is not a real file

std::string errno_text() { return std::strerror(errno); }

// numel * element size, or SIZE_MAX when it overflows.
size_t byte_size(const Shape& shape, DType dt) {
  size_t n = dtype_size(dt);
  for (int64_t d : shape) {
    if (d != 0 && n > std::numeric_limits<size_t>::max() / static_cast<size_t>(d))
      return std::numeric_limits<size_t>::max();
    n *= static_cast<size_t>(d);
  }
  return n;
}

// mmap maps whole pages: past the end of the file, the rest of its last page reads as zeros
// instead of faulting, so a read beyond the file there would go unnoticed. Under
// AddressSanitizer that tail is poisoned while the mapping lives and such a read is reported.
void poison_mapping_tail(void* map, size_t size, bool poison) {
#ifdef VIMOE_ADDRESS_SANITIZER
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  char* tail = static_cast<char*>(map) + size;
  const size_t tail_size = (page - size % page) % page;
  if (poison)
    __asan_poison_memory_region(tail, tail_size);
  else
    __asan_unpoison_memory_region(tail, tail_size);
#else
  (void)map, (void)size, (void)poison;
#endif
}

// Closes the descriptor on every path out of a function.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    VIMOE_CHECK(w > 0, "save_safetensors: writing ", path, " failed: ", errno_text());
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
  }
  VIMOE_FAIL("safetensors: unknown dtype code ", static_cast<int>(t));
}

DType dtype_from_safetensors(const std::string& s, const std::string& context) {
  for (DType t : {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I32, DType::I64, DType::U8})
    if (s == safetensors_dtype(t)) return t;
  VIMOE_FAIL(context, ": unsupported dtype \"", s, "\" (expected F32, F64, BF16, F16, I32, I64 or U8)");
}

void parse_header(const std::string& text, size_t data_size, const std::string& path,
                  std::map<std::string, TensorInfo>& infos,
                  std::map<std::string, std::string>& metadata) {
  using nlohmann::json;
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    VIMOE_FAIL(path, ": the safetensors header is not valid JSON (", e.what(), ")");
  }
  VIMOE_CHECK(header.is_object(), path, ": the safetensors header must be a JSON object, found ",
              header.type_name());
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      VIMOE_CHECK(v.is_object(), path, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        VIMOE_CHECK(m.value().is_string(), path, ": __metadata__ entry \"", m.key(),
                    "\" is not a string");
        metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor \"" + name + "\"";
    VIMOE_CHECK(v.is_object(), where, ": expected an object with dtype, shape, data_offsets");
    VIMOE_CHECK(v.contains("dtype") && v["dtype"].is_string(), where, ": missing string \"dtype\"");
    VIMOE_CHECK(v.contains("shape") && v["shape"].is_array(), where, ": missing array \"shape\"");
    VIMOE_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() &&
                    v["data_offsets"].size() == 2,
                where, ": missing \"data_offsets\" [begin, end]");
    TensorInfo info;
    info.dtype = dtype_from_safetensors(v["dtype"].get<std::string>(), where);
    for (const json& d : v["shape"]) {
      VIMOE_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), where,
                  ": shape entries must be non-negative integers, found ", d.dump());
      const uint64_t dim = d.get<uint64_t>();
      VIMOE_CHECK(dim < (uint64_t{1} << 48), where, ": dimension ", dim, " is implausibly large");
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const json& o : v["data_offsets"])
      VIMOE_CHECK(o.is_number_unsigned() || (o.is_number_integer() && o.get<int64_t>() >= 0), where,
                  ": data_offsets must be non-negative integers, found ", o.dump());
    info.begin = v["data_offsets"][0].get<uint64_t>();
    info.end = v["data_offsets"][1].get<uint64_t>();
    VIMOE_CHECK(info.begin <= info.end && info.end <= data_size, where, ": data_offsets [",
                info.begin, ", ", info.end, ") out of range for a ", data_size, "-byte data buffer");
    const size_t want = byte_size(info.shape, info.dtype);
    VIMOE_CHECK(info.end - info.begin == want, where, ": ", dtype_name(info.dtype), " ",
                shape_str(info.shape), " needs ", want, " bytes, data_offsets give ",
                info.end - info.begin);
    infos.emplace(name, std::move(info));
  }
  // The buffer must be covered exactly: no overlaps, no holes (as the format requires).
  std::vector<std::pair<size_t, std::string>> spans;
  for (const auto& [name, info] : infos)
    if (info.end > info.begin) spans.emplace_back(info.begin, name);
  std::sort(spans.begin(), spans.end());
  size_t cursor = 0;
  for (const auto& [begin, name] : spans) {
    VIMOE_CHECK(begin >= cursor, path, ": tensor \"", name, "\" overlaps the tensor before it (starts at ",
                begin, ", previous ends at ", cursor, ")");
    VIMOE_CHECK(begin == cursor, path, ": ", begin - cursor, " unused bytes before tensor \"", name, "\"");
    cursor = infos.at(name).end;
  }
  VIMOE_CHECK(cursor == data_size, path, ": the data buffer has ", data_size - cursor,
              " trailing bytes that no tensor uses");
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  VIMOE_CHECK(fd.fd >= 0, path, ": cannot open: ", errno_text());
  struct stat st {};
  VIMOE_CHECK(::fstat(fd.fd, &st) == 0, path, ": cannot stat: ", errno_text());
  if (S_ISDIR(st.st_mode)) {
    // Most often a run directory given where its checkpoint was meant.
    struct stat last {};
    const std::string inside = path + (path.empty() || path.back() != '/' ? "/" : "") + "last.safetensors";
    VIMOE_FAIL(path, ": is a directory, not a safetensors file",
               ::stat(inside.c_str(), &last) == 0 ? " (did you mean " + inside + "?)" : std::string());
  }
  VIMOE_CHECK(S_ISREG(st.st_mode), path, ": not a regular file");
  const size_t size = static_cast<size_t>(st.st_size);
  VIMOE_CHECK(size >= 8, path, ": a safetensors file has at least 8 bytes, found ", size);

  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  VIMOE_CHECK(map != MAP_FAILED, path, ": mmap failed: ", errno_text());
  SafetensorsFile f;
  f.path_ = path;
  poison_mapping_tail(map, size, true);
  f.mapping_ = Storage::wrap(map, size, Device::cpu(), [size](void* p) {
    poison_mapping_tail(p, size, false);  // the address range may be mapped again
    ::munmap(p, size);
  });

  const unsigned char* bytes = static_cast<const unsigned char*>(map);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  VIMOE_CHECK(header_len <= kMaxHeader && header_len <= size - 8, path, ": header length ",
              header_len, " exceeds the file (", size, " bytes) or the 100 MiB limit; "
              "the file is truncated or not safetensors");
  f.data_start_ = 8 + header_len;
  const std::string text(reinterpret_cast<const char*>(bytes + 8), header_len);
  parse_header(text, size - f.data_start_, path, f.infos_, f.metadata_);
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& kv : infos_) out.push_back(kv.first);
  return out;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  VIMOE_CHECK(it != infos_.end(), path_, ": no tensor named \"", name, "\"");
  return it->second;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorInfo& ti = info(name);
  const size_t start = data_start_ + ti.begin;
  const size_t elem = dtype_size(ti.dtype);
  if (start % elem == 0) {
    return Tensor::from_storage(mapping_, ti.dtype, ti.shape, contiguous_strides(ti.shape),
                                static_cast<int64_t>(start / elem));
  }
  // Misaligned for its dtype (the header length is not a multiple of 8): copy it out.
  Tensor t = Tensor::empty(ti.shape, ti.dtype);
  if (ti.end > ti.begin)  // an empty tensor may have no buffer at all
    std::memcpy(t.data_ptr(), static_cast<const char*>(mapping_->data()) + start, ti.end - ti.begin);
  return t;
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  using nlohmann::json;
  NoGradGuard no_grad;
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  // Widest element types first: with the header padded to 8 bytes every tensor is then
  // aligned for its dtype and a reader can map it without a copy (the format allows no gaps).
  std::vector<std::pair<std::string, Tensor>> order(tensors.begin(), tensors.end());
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second.defined() && b.second.defined() &&
           dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });
  std::vector<Tensor> host;
  size_t offset = 0;
  for (const auto& [name, t] : order) {
    VIMOE_CHECK(!name.empty() && name != "__metadata__", "save_safetensors: invalid tensor name \"",
                name, "\"");
    VIMOE_CHECK(!header.contains(name), "save_safetensors: tensor name \"", name, "\" used twice");
    VIMOE_CHECK(t.defined(), "save_safetensors: tensor \"", name, "\" is undefined");
    Tensor h = t.detach().cpu().contiguous();
    header[name] = {{"dtype", safetensors_dtype(h.dtype())},
                    {"shape", h.shape()},
                    {"data_offsets", {offset, offset + h.nbytes()}}};
    offset += h.nbytes();
    host.push_back(std::move(h));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps every tensor 8-byte aligned
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    Fd fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    VIMOE_CHECK(fd.fd >= 0, "save_safetensors: cannot create ", tmp, ": ", errno_text());
    try {
      write_all(fd.fd, len, 8, tmp);
      write_all(fd.fd, text.data(), text.size(), tmp);
      for (const Tensor& h : host) write_all(fd.fd, h.data_ptr(), h.nbytes(), tmp);
      VIMOE_CHECK(::fsync(fd.fd) == 0, "save_safetensors: fsync of ", tmp, " failed: ", errno_text());
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    VIMOE_FAIL("save_safetensors: cannot rename ", tmp, " to ", path, ": ", why);
  }
  // Make the rename itself durable (best effort: some filesystems refuse to sync a directory).
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  Fd dfd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dfd.fd >= 0) ::fsync(dfd.fd);
}

}  // namespace vimoe::io
