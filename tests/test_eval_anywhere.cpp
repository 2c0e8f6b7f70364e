// A run is evaluated from any directory: vimoe-train stores absolute data paths, and
// vimoe-eval run takes --data-dir / --val-dir when the data has moved; its evaluation ends
// the curves of a run trained without a final one (checked by running
// the built programs from different working directories).
#include <gtest/gtest.h>
#include <stb_image_write.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include "tests/process_util.h"
#include "tests/test_data_util.h"

namespace fs = std::filesystem;
using vimoe::testing::run_program;

namespace {

// Two classes of 4 tiny PNGs under root/<split>/<class>.
void write_folder(const fs::path& root) {
  for (const char* split : {"train", "val"})
    for (int cls = 0; cls < 2; ++cls)
      for (int i = 0; i < 4; ++i) {
        const fs::path f = root / split / std::string("c").append(std::to_string(cls)) / (std::to_string(i) + ".png");
        fs::create_directories(f.parent_path());
        std::vector<uint8_t> px(8 * 8 * 3);
        for (size_t k = 0; k < px.size(); ++k) px[k] = static_cast<uint8_t>((k * 29 + i * 7 + cls * 90) % 256);
        ASSERT_NE(stbi_write_png(f.string().c_str(), 8, 8, 3, px.data(), 8 * 3), 0) << f;
      }
}

}  // namespace

TEST(EvalAnywhere, StoredPathsAreAbsoluteAndMovedDataIsGivenOnTheCommandLine) {
  vimoe::testing::TempDir tmp;
  const fs::path dir = tmp.path();
  write_folder(dir / "project" / "data");
  std::string out;
  // Trained from the project directory with relative paths.
  ASSERT_EQ(run_program(VIMOE_TRAIN_BIN,
                        {"--dataset", "folder", "--data-dir", "data/train", "--val-dir", "data/./val", "--image-size",
                         "8", "--patch-size", "4", "--width", "16", "--depth", "1", "--heads", "2", "--epochs", "1",
                         "--batch-size", "4", "--no-final-eval", "--out", "run"},
                        (dir / "train.log").string(), out, (dir / "project").string()),
            0)
      << out;
  const nlohmann::json config = nlohmann::json::parse(std::ifstream(dir / "project/run/config.json"));
  EXPECT_EQ(config.at("data_dir"), (dir / "project/data/train").string());
  EXPECT_EQ(config.at("val_dir"), (dir / "project/data/val").string());

  // Evaluated from elsewhere.
  const std::string checkpoint = (dir / "project/run/final.safetensors").string();
  EXPECT_EQ(run_program(VIMOE_EVAL_BIN, {"run", checkpoint, "--out", (dir / "eval1").string()}, (dir / "eval.log").string(), out, "/"), 0)
      << out;
  EXPECT_NE(out.find("on 8 images"), std::string::npos) << out;
  // Trained without a final evaluation, the run's curves end with this one: the last row of
  // curves.csv is a validation at the final step (2 steps of 4 images).
  std::ifstream csv(dir / "eval1/curves.csv");
  std::string line, last_row;
  while (std::getline(csv, line))
    if (!line.empty()) last_row = line;
  std::vector<std::string> fields;
  std::stringstream row(last_row);
  for (std::string f; std::getline(row, f, ',');) fields.push_back(f);
  // step, loss_avg, aux_loss, lr, val_loss, val_top1, val_top5, val_miou, val_aacc
  ASSERT_EQ(fields.size(), 9u) << last_row;
  EXPECT_EQ(fields[0], "2") << last_row;
  EXPECT_NE(fields[5], "nan") << last_row;
  EXPECT_EQ(fields[7], "nan") << last_row << ": a classification run has no mIoU";

  // The data moved: the error names where it was looked for and the options; the options work.
  fs::rename(dir / "project/data", dir / "moved");
  std::string err;
  EXPECT_EQ(run_program(VIMOE_EVAL_BIN, {"run", checkpoint, "--out", (dir / "eval2").string()}, (dir / "eval.log").string(), err), 1) << err;
  EXPECT_NE(err.find((dir / "project/data/train").string()), std::string::npos) << err;
  EXPECT_NE(err.find("give --data-dir / --val-dir"), std::string::npos) << err;
  EXPECT_EQ(run_program(VIMOE_EVAL_BIN,
                        {"run", checkpoint, "--data-dir", (dir / "moved/train").string(), "--val-dir", (dir / "moved/val").string(), "--out",
                         (dir / "eval3").string()},
                        (dir / "eval.log").string(), out),
            0)
      << out;
  EXPECT_NE(out.find("on 8 images"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir / "eval3/summary.json"));
}
