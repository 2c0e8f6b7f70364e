#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "engine/io/safetensors.h"
#include "tests/test_util.h"

using namespace vimoe;
using vimoe::testing::all_close;
using vimoe::testing::uniform;
namespace fs = std::filesystem;

namespace {

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vimoe_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
// A file with the given header text and `data` bytes of buffer.
std::string make_file(const std::string& header, size_t data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + std::string(data, '\x01');
}

// One blind edit: a bit flip, a byte of the length prefix, a JSON-significant character,
// truncation or extension.
void mutate_bytes(std::string& m, std::mt19937_64& rng) {
  switch (rng() % 5) {
    case 0: m[rng() % m.size()] ^= static_cast<char>(1u << (rng() % 8)); break;
    case 1: m[rng() % std::min<size_t>(m.size(), 8)] = static_cast<char>(rng()); break;
    case 2:
      if (m.size() > 8) m[8 + rng() % (m.size() - 8)] = "{}[]\":,0123456789-e"[rng() % 19];
      break;
    case 3: m.resize(rng() % m.size()); break;
    default: m.resize(m.size() + rng() % 16, static_cast<char>(rng())); break;
  }
  if (m.empty()) m.push_back('x');
}

// One edit of the header's meaning that keeps it valid JSON and the length prefix right, so
// the file reaches the checks past parsing: a number (shape entry or offset) replaced, one
// tensor's data_offsets shifted (overlaps, holes, out of range), a dtype swapped, a metadata
// value made a number, or the header wrapped in an array. `m` is a well-formed file.
void mutate_header(std::string& m, std::mt19937_64& rng) {
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(m[i]);
  std::string header = m.substr(8, len);
  const std::string data = m.substr(8 + len);
  std::vector<std::pair<size_t, size_t>> numbers;  // [begin, end) of each digit run
  for (size_t i = 0; i < header.size();) {
    if (!std::isdigit(static_cast<unsigned char>(header[i]))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < header.size() && std::isdigit(static_cast<unsigned char>(header[j]))) ++j;
    numbers.emplace_back(i, j);
    i = j;
  }
  switch (rng() % 8) {  // weighted towards the edits that reach the deepest checks
    case 0:
    case 1:
    case 2: {
      if (numbers.empty()) break;
      const auto [b, e] = numbers[rng() % numbers.size()];
      const int64_t old = std::stoll(header.substr(b, e - b));
      const int64_t candidates[] = {0, old + 1, old - 1, old * 2, -old - 1, int64_t{1} << 50,
                                    static_cast<int64_t>(rng() % 128)};
      header.replace(b, e - b, std::to_string(candidates[rng() % 7]));
      break;
    }
    case 3:
    case 4: {
      static const std::regex offsets(R"("data_offsets":\[(\d+),(\d+)\])");
      std::vector<std::smatch> pairs;
      for (auto it = std::sregex_iterator(header.begin(), header.end(), offsets);
           it != std::sregex_iterator(); ++it)
        pairs.push_back(*it);
      if (pairs.empty()) break;
      const std::smatch& pick = pairs[rng() % pairs.size()];
      const int64_t delta = static_cast<int64_t>(rng() % 97) - 48;
      const int64_t begin = std::max<int64_t>(0, std::stoll(pick[1]) + delta);
      const int64_t end = begin + std::stoll(pick[2]) - std::stoll(pick[1]);
      header.replace(pick.position(0), pick.length(0),
                     "\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(end) + "]");
      break;
    }
    case 5: {
      static const std::regex dtype(R"("dtype":"[A-Z0-9]+")");
      const char* swaps[] = {"F32", "F64", "BF16", "F16", "I64", "U8", "Q4"};
      std::vector<std::smatch> found;
      for (auto it = std::sregex_iterator(header.begin(), header.end(), dtype);
           it != std::sregex_iterator(); ++it)
        found.push_back(*it);
      if (found.empty()) break;
      const std::smatch& pick = found[rng() % found.size()];
      header.replace(pick.position(0), pick.length(0),
                     std::string("\"dtype\":\"") + swaps[rng() % 7] + "\"");
      break;
    }
    case 6: {
      const size_t at = header.find("\"v\"");
      if (at != std::string::npos) header.replace(at, 3, "7");
      break;
    }
    default: header = "[" + header + "]"; break;
  }
  m.assign(8, '\0');
  for (int i = 0; i < 8; ++i) m[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  m += header + data;
}

}  // namespace

TEST_F(SafetensorsTest, RoundTripsEveryDtypeAndMetadata) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  const DType all[] = {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I32, DType::I64, DType::U8};
  for (DType dt : all)
    tensors.emplace_back(std::string("t_") + dtype_name(dt), uniform({3, 5}, 1, 0, 100).to(dt));
  tensors.emplace_back("scalar", Tensor::scalar(4.5));
  tensors.emplace_back("empty", Tensor::zeros({0, 3}));
  tensors.emplace_back("view", uniform({4, 6}, 2).t());  // non-contiguous: saved contiguous
  io::save_safetensors(file("a.safetensors"), tensors, {{"format", "pt"}});

  const io::SafetensorsFile f = io::SafetensorsFile::open(file("a.safetensors"));
  EXPECT_EQ(f.names().size(), tensors.size());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  for (const auto& [name, t] : tensors) {
    const Tensor got = f.get(name);
    EXPECT_EQ(got.dtype(), t.dtype()) << name;
    EXPECT_EQ(got.shape(), t.shape()) << name;
    EXPECT_TRUE(all_close(got, t, 0, 0)) << name;
  }
  // Aligned tensors are views of the mapping, not copies.
  EXPECT_EQ(f.get("t_f32").storage(), f.get("t_i64").storage());
  EXPECT_VIMOE_ERROR(f.get("nope"), "a.safetensors", "nope");
}

TEST_F(SafetensorsTest, ReadsMisalignedTensors) {
  // Header length 61 puts the data at byte 69: misaligned for F32, which is then copied.
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append(61 - header.size(), ' ');
  std::string bytes = make_file(header, 0);
  const float v[2] = {1.5f, -3.0f};
  bytes.append(reinterpret_cast<const char*>(v), 8);
  write_bytes(file("m.safetensors"), bytes);
  const Tensor x = io::SafetensorsFile::open(file("m.safetensors")).get("x");
  EXPECT_EQ(x.to_vector<float>(), (std::vector<float>{1.5f, -3.0f}));
}

// An empty tensor at a misaligned offset has no bytes to copy (found by fuzz/fuzz_safetensors:
// the copy passed a null buffer to memcpy, which UBSan reports in the sanitized build).
TEST_F(SafetensorsTest, ReadsAnEmptyMisalignedTensor) {
  std::string header = R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[1,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  header.append(((header.size() + 7) / 8) * 8 - header.size(), ' ');
  std::string bytes = make_file(header, 0);
  bytes.push_back('\x05');
  write_bytes(file("e.safetensors"), bytes);
  const io::SafetensorsFile f = io::SafetensorsFile::open(file("e.safetensors"));
  EXPECT_EQ(f.get("e").shape(), (Shape{0, 3}));
  EXPECT_EQ(f.get("b").to_vector<uint8_t>(), (std::vector<uint8_t>{5}));
}

TEST_F(SafetensorsTest, RejectsBadHeadersNamingFileAndTensor) {
  const std::string p = file("bad.safetensors");
  auto expect_bad = [&](const std::string& header, size_t data, std::vector<std::string> parts) {
    write_bytes(p, make_file(header, data));
    try {
      io::SafetensorsFile::open(p);
      ADD_FAILURE() << "accepted: " << header;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
      for (const std::string& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << msg;
    }
  };
  expect_bad("{not json", 0, {"not valid JSON"});
  expect_bad("[1,2]", 0, {"JSON object"});
  expect_bad(R"({"w":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}})", 1, {"\"w\"", "Q8"});
  expect_bad(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, {"\"w\"", "non-negative"});
  expect_bad(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4, {"\"w\"", "needs 8 bytes"});
  expect_bad(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, {"\"w\"", "out of range"});
  expect_bad(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4, {"\"w\"", "out of range"});
  expect_bad(R"({"w":{"dtype":"F32","shape":[1]}})", 4, {"\"w\"", "data_offsets"});
  expect_bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
             8, {"overlaps"});
  expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, {"unused bytes", "\"a\""});
  expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8, {"trailing"});
  expect_bad(R"({"__metadata__":{"k":1}})", 0, {"__metadata__"});
  // Truncated: the header length points past the end of the file.
  std::string good = make_file(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 4);
  write_bytes(p, good.substr(0, 30));
  EXPECT_VIMOE_ERROR(io::SafetensorsFile::open(p), "bad.safetensors", "truncated");
  write_bytes(p, good.substr(0, good.size() - 1));
  EXPECT_VIMOE_ERROR(io::SafetensorsFile::open(p), "bad.safetensors", "out of range");
  write_bytes(p, "abc");
  EXPECT_VIMOE_ERROR(io::SafetensorsFile::open(p), "bad.safetensors", "at least 8 bytes");
  EXPECT_VIMOE_ERROR(io::SafetensorsFile::open(file("missing.safetensors")), "missing.safetensors", "cannot open");
}

TEST_F(SafetensorsTest, FailedWriteKeepsTheOldFile) {
  const std::string p = file("ckpt.safetensors");
  io::save_safetensors(p, {{"w", Tensor::ones({4})}});
  const std::string before = read_bytes(p);
  EXPECT_VIMOE_ERROR(io::save_safetensors(p, {{"w", Tensor::zeros({4})}, {"w", Tensor::zeros({2})}}),
                     "used twice");
  EXPECT_VIMOE_ERROR(io::save_safetensors(p, {{"w", Tensor::zeros({4})}, {"u", Tensor()}}), "undefined");
  EXPECT_VIMOE_ERROR(io::save_safetensors(file("no/such/dir/x.safetensors"), {{"w", Tensor::zeros({1})}}),
                     "cannot create");
  EXPECT_EQ(read_bytes(p), before);
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1u) << "a temporary file was left behind";
  // Overwriting works and is visible to a new reader.
  io::save_safetensors(p, {{"w", Tensor::full({2}, 3.0)}});
  EXPECT_EQ(io::SafetensorsFile::open(p).get("w").to_vector<float>(), (std::vector<float>{3, 3}));
}

// Mutated files either load or raise vimoe::Error: never a crash, hang or other exception.
// The sanitized test binary runs this under AddressSanitizer and UBSan. Half the files get
// blind byte edits, half edits of the header's meaning, so every validation is reached; the
// test counts rejections by the check that made them and requires each to have fired.
TEST_F(SafetensorsTest, FuzzedFilesNeverCrash) {
  const std::string seed_path = file("seed.safetensors");
  io::save_safetensors(seed_path,
                       {{"a", uniform({3, 4}, 3)}, {"b", Tensor::ones({5}, DType::I64)},
                        {"c", Tensor::zeros({2, 2}, DType::BF16)}},
                       {{"k", "v"}});
  const std::string seed = read_bytes(seed_path);
  // A rejection counts under the first check whose message it contains. A truncated file
  // fails "header length" (cut inside the header) or "offsets out of range" (inside the data).
  const std::vector<std::pair<std::string, std::string>> checks = {
      {"too short", "at least 8 bytes"},
      {"header length", "header length"},
      {"invalid JSON", "not valid JSON"},
      {"not an object", "must be a JSON object"},
      {"metadata", "__metadata__"},
      {"dtype", "unsupported dtype"},
      {"missing field", "missing"},
      {"negative entry", "non-negative integers"},
      {"huge dimension", "implausibly large"},
      {"offsets out of range", "out of range"},
      {"size mismatch", "data_offsets give"},
      {"overlap", "overlaps"},
      {"hole", "unused bytes"},
      {"trailing bytes", "trailing bytes"}};
  std::map<std::string, int> rejected_by;
  std::mt19937_64 rng(12345);
  const std::string p = file("fuzz.safetensors");
  constexpr int kFiles = 1200;
  int loaded = 0;
  for (int i = 0; i < kFiles; ++i) {
    std::string m = seed;
    const int edits = 1 + static_cast<int>(rng() % (i % 2 == 0 ? 4 : 2));
    for (int e = 0; e < edits; ++e) {
      if (i % 2 == 0)
        mutate_bytes(m, rng);
      else
        mutate_header(m, rng);
    }
    write_bytes(p, m);
    try {
      const io::SafetensorsFile f = io::SafetensorsFile::open(p);
      for (const std::string& n : f.names()) f.get(n).to_vector<double>();
      ++loaded;
    } catch (const Error& e) {
      const std::string msg = e.what();
      std::string check = "other: " + msg;
      for (const auto& [name, text] : checks)
        if (msg.find(text) != std::string::npos) {
          check = name;
          break;
        }
      ++rejected_by[check];
    }
  }
  std::string summary = std::to_string(loaded) + " loaded";
  for (const auto& [check, n] : rejected_by) summary += "; " + check + ": " + std::to_string(n);
  // Any exception other than vimoe::Error escapes the loop and fails the test.
  EXPECT_GT(loaded, 0) << summary;  // some mutants load, so get() is fuzzed too
  EXPECT_LT(loaded, kFiles / 2) << summary;
  for (const auto& [name, text] : checks)
    EXPECT_GT(rejected_by[name], 0) << "the " << name << " check never fired: " << summary;
  std::cout << summary << "\n";
}
