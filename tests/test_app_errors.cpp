// The programs never abort: bad input ends them with one clear line and a non-zero status
// (checked by running the built vimoe-train and vimoe-eval, where an abort shows as a signal).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/io/safetensors.h"
#include "tests/process_util.h"
#include "tests/test_data_util.h"

using namespace vimoe;
namespace fs = std::filesystem;

namespace {

// Runs a program; expects status 1 and an error line holding every part.
void expect_error(const std::string& program, const std::vector<std::string>& args, const vimoe::testing::TempDir& dir,
                  std::initializer_list<const char*> parts) {
  std::string out;
  EXPECT_EQ(vimoe::testing::run_program(program, args, dir / "log.txt", out), 1) << out;
  EXPECT_NE(out.find(": error: "), std::string::npos) << out;
  for (const char* p : parts) EXPECT_NE(out.find(p), std::string::npos) << "'" << out << "' lacks '" << p << "'";
}

void write_checkpoint(const std::string& path, const std::string& config, const std::string& model) {
  io::save_safetensors(path, {{"model.w", Tensor::zeros({2})}}, {{"config", config}, {"model", model}});
}

}  // namespace

TEST(AppErrors, GarbledCheckpointConfiguration) {
  vimoe::testing::TempDir dir;
  write_checkpoint(dir / "bad.safetensors", "{\"experts\": 4,", "{}");
  expect_error(VIMOE_EVAL_BIN, {"run", dir / "bad.safetensors"}, dir, {"bad.safetensors", "\"config\"", "not valid JSON"});
  write_checkpoint(dir / "array.safetensors", "[1, 2]", "{}");
  expect_error(VIMOE_EVAL_BIN, {"run", dir / "array.safetensors"}, dir, {"expected a JSON object", "array"});
  write_checkpoint(dir / "typed.safetensors", "{\"experts\": \"four\"}", "{}");
  expect_error(VIMOE_EVAL_BIN, {"run", dir / "typed.safetensors"}, dir, {"run configuration"});
  // The same for a resume.
  expect_error(VIMOE_TRAIN_BIN, {"--resume", dir / "bad.safetensors", "--out", dir / "run"}, dir, {"not valid JSON"});
}

TEST(AppErrors, DirectoryGivenAsACheckpoint) {
  vimoe::testing::TempDir dir;
  fs::create_directories(dir / "run");
  std::ofstream(dir / "run/last.safetensors") << "x";
  expect_error(VIMOE_EVAL_BIN, {"run", dir / "run"}, dir, {"is a directory", "did you mean", "last.safetensors"});
}

TEST(AppErrors, CurvesOfAnEmptyOrMissingFile) {
  vimoe::testing::TempDir dir;
  std::ofstream(dir / "empty.jsonl").flush();
  expect_error(VIMOE_EVAL_BIN, {"curves", dir / "empty.jsonl", "--out", dir.path()}, dir, {"holds no records"});
  expect_error(VIMOE_EVAL_BIN, {"curves", dir / "missing.jsonl", "--out", dir.path()}, dir, {"no such file"});
  expect_error(VIMOE_EVAL_BIN, {"curves", dir.path(), "--out", dir.path()}, dir, {"is a directory"});
}

// A diverged run logs null: the curves are drawn with gaps, and the program says so.
TEST(AppErrors, CurvesWithNullValuesHaveGaps) {
  vimoe::testing::TempDir dir;
  std::ofstream(dir / "metrics.jsonl") << "{\"step\": 1, \"loss_avg\": 2.0}\n{\"step\": 2, \"loss_avg\": null}\n"
                                          "{\"step\": 3, \"loss_avg\": 1.5, \"val_loss\": null, \"val_top1\": 0.5}\n";
  std::string out;
  EXPECT_EQ(vimoe::testing::run_program(VIMOE_EVAL_BIN, {"curves", dir / "metrics.jsonl", "--out", dir.path()}, dir / "log.txt",
                                 out),
            0)
      << out;
  EXPECT_NE(out.find("2 values are null or not finite"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir / "loss_curve.png"));
  EXPECT_TRUE(fs::exists(dir / "accuracy_curve.png"));
}

TEST(AppErrors, OutThatIsAFile) {
  vimoe::testing::TempDir dir;
  std::ofstream(dir / "taken") << "x";
  expect_error(VIMOE_TRAIN_BIN, {"--model", "vit_tiny", "--max-steps", "1", "--out", dir / "taken"}, dir,
               {"--out", "is a file"});
}
