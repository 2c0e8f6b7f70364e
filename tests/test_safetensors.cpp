#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

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

// Mutated files (bit flips, byte overwrites, truncation, extension) either load or raise
// vimoe::Error: never a crash, hang or other exception. AddressSanitizer builds run it too.
TEST_F(SafetensorsTest, FuzzedFilesNeverCrash) {
  const std::string seed_path = file("seed.safetensors");
  io::save_safetensors(seed_path,
                       {{"a", uniform({3, 4}, 3)}, {"b", Tensor::ones({5}, DType::I64)},
                        {"c", Tensor::zeros({2, 2}, DType::BF16)}},
                       {{"k", "v"}});
  const std::string seed = read_bytes(seed_path);
  std::mt19937_64 rng(12345);
  const std::string p = file("fuzz.safetensors");
  int loaded = 0, rejected = 0;
  for (int i = 0; i < 1200; ++i) {
    std::string m = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 5) {
        case 0: m[rng() % m.size()] ^= static_cast<char>(1u << (rng() % 8)); break;
        case 1: m[rng() % std::min<size_t>(m.size(), 8)] = static_cast<char>(rng()); break;  // length
        case 2:  // a JSON-significant character somewhere in the header or data
          if (m.size() > 8) m[8 + rng() % (m.size() - 8)] = "{}[]\":,0123456789-e"[rng() % 19];
          break;
        case 3: m.resize(rng() % m.size()); break;
        default: m.resize(m.size() + rng() % 16, static_cast<char>(rng())); break;
      }
      if (m.empty()) m.push_back('x');
    }
    write_bytes(p, m);
    try {
      const io::SafetensorsFile f = io::SafetensorsFile::open(p);
      for (const std::string& n : f.names()) f.get(n).to_vector<double>();
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_EQ(loaded + rejected, 1200);
  EXPECT_GT(rejected, 600);  // most mutations break the header
}
