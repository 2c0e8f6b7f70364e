// vimoe-study: study files read into cells (names, order, overlays, errors), and the shipped
// tiny study run end to end as a user runs it: the built program started as a child process,
// interrupted in the middle of a cell, run again, its report checked.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/common/config_file.h"
#include "apps/common/run_config.h"
#include "apps/common/study_runner.h"
#include "apps/common/study_spec.h"
#include "tests/process_util.h"
#include "tests/test_data_util.h"

namespace fs = std::filesystem;
using namespace vimoe;
using namespace vimoe::app;
using namespace std::chrono_literals;
using vimoe::testing::error_of;
using vimoe::testing::read_text;

namespace {

std::vector<std::string> train_options() {
  CLI::App app;
  RunConfig cfg;
  add_options(app, cfg);
  return option_names(app);
}

std::string write(const vimoe::testing::TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir / name;
  std::ofstream(path) << text;
  return path;
}

StudySpec read_text_study(const vimoe::testing::TempDir& dir, const std::string& text) {
  return read_study(write(dir, "study.toml", text), train_options());
}

std::string option(const StudyCell& c, const std::string& key) {
  for (const StudyOption& o : c.options)
    if (o.key == key) return o.value;
  return "<unset>";
}

nlohmann::json json_file(const fs::path& p) { return nlohmann::json::parse(read_text(p.string())); }

std::vector<std::string> csv_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST(StudySpec, AxesMultiplyInFileOrderWithSeedsInnermostAndExplicitCellsLast) {
  vimoe::testing::TempDir dir;
  write(dir, "base.toml", "model = \"vit_tiny\"\nexperts = 4\nlr = 0.003\nseed = 9\n");
  const StudySpec spec = read_text_study(dir, "name = \"scan\"\nconfig = \"" + (dir / "base.toml") +
                                                  "\"\nseeds = [3, 5]\n[base]\nlr = 0.001\nepochs = 2\n"
                                                  "[axes]\nshared-expert = [false, true]\nmoe-last = [1, 2]\n"
                                                  "[[cells]]\nname = \"dense\"\nexperts = 0\n");
  EXPECT_EQ(spec.name, "scan");
  EXPECT_EQ(spec.out, "runs/studies/scan");
  ASSERT_EQ(spec.axes.size(), 2u);
  EXPECT_EQ(spec.axes[0].key, "shared-expert");  // the file's order, not toml++'s sorted one
  const std::vector<StudyCell> cells = expand_cells(spec);
  std::vector<std::string> names;
  for (const StudyCell& c : cells) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"no-shared_L1_seed3", "no-shared_L1_seed5", "no-shared_L2_seed3",
                                             "no-shared_L2_seed5", "shared_L1_seed3", "shared_L1_seed5",
                                             "shared_L2_seed3", "shared_L2_seed5", "dense_seed3", "dense_seed5"}));
  const StudyCell& c = cells[6];
  EXPECT_EQ(c.group, "shared_L2");
  EXPECT_EQ(c.seed, 3u);
  // The config file's options, overlaid by [base] in place, then the axes, then the seed
  // (the config file's seed is the study's to set).
  EXPECT_EQ(option(c, "lr"), "0.001");
  EXPECT_EQ(option(c, "experts"), "4");
  EXPECT_EQ(option(c, "epochs"), "2");
  EXPECT_EQ(option(c, "shared-expert"), "true");
  EXPECT_EQ(option(c, "moe-last"), "2");
  EXPECT_EQ(c.options.back().key, "seed");
  EXPECT_EQ(c.options.back().value, "3");
  EXPECT_EQ(c.options.front().key, "model");
  EXPECT_EQ(option(cells[8], "experts"), "0");
  EXPECT_EQ(option(cells[8], "moe-last"), "<unset>");
  EXPECT_TRUE(cells[8].extra);
  const std::string toml = cell_config_toml(spec, c);
  EXPECT_NE(toml.find("\nmoe-last = 2\n"), std::string::npos) << toml;
  EXPECT_NE(toml.find("\nseed = 3\n"), std::string::npos) << toml;
  const nlohmann::json j = study_json(spec, cells);
  EXPECT_EQ(j["axes"], nlohmann::json({"shared-expert", "moe-last"}));
  EXPECT_EQ(j["cells"][6]["values"]["moe-last"], "2");
  EXPECT_EQ(j["cells"][6]["labels"]["shared-expert"], "shared");
}

TEST(StudySpec, BundlesListsStringsAndLabels) {
  vimoe::testing::TempDir dir;
  const StudySpec spec = read_text_study(
      dir, "[axes]\nrouter = [{ name = \"tok en\", routing = \"token\", top-k = 2 }, { routing = \"image\" }]\n"
           "moe-blocks = [[2, 3], [3]]\nlr = [0.5, 1e-3, 2.0]\n[labels]\nlr = \"lr\"\n");
  const std::vector<StudyCell> cells = expand_cells(spec);
  ASSERT_EQ(cells.size(), 12u);
  EXPECT_EQ(cells[0].name, "tok-en_moe-blocks=2+3_lr0.5_seed0");  // a bundle's name, sanitised
  EXPECT_EQ(option(cells[0], "routing"), "\"token\"");
  EXPECT_EQ(option(cells[0], "top-k"), "2");
  EXPECT_EQ(option(cells[0], "moe-blocks"), "[2, 3]");
  EXPECT_EQ(option(cells[1], "lr"), "0.001");
  EXPECT_EQ(option(cells[2], "lr"), "2.0");  // stays a TOML float
  EXPECT_EQ(cells[6].group, "image_moe-blocks=2+3_lr0.5");  // an unnamed bundle: its values' labels
}

TEST(StudySpec, ErrorsNameTheFileLineAndKey) {
  vimoe::testing::TempDir dir;
  auto error = [&](const std::string& text) { return error_of([&] { expand_cells(read_text_study(dir, text)); }); };
  EXPECT_NE(error("[axes]\nexpertz = [2, 4]\n").find("line 2 ([axes]): unknown vimoe-train option \"expertz\" (did "
                                                       "you mean \"experts\"?)"), std::string::npos);
  EXPECT_NE(error("[base]\nseed = 1\n[axes]\nexperts = [2]\n").find("seeds = [0, 1"), std::string::npos);
  EXPECT_NE(error("[base]\nout = \"x\"\n[axes]\nexperts = [2]\n").find("\"out\" is the study's"), std::string::npos);
  EXPECT_NE(error("[axes]\nexperts = []\n").find("must be a non-empty list"), std::string::npos);
  EXPECT_NE(error("sedes = [1]\n[axes]\nexperts = [2]\n").find("unknown study key \"sedes\" (did you mean \"seeds\"?)"),
            std::string::npos);
  EXPECT_NE(error("name = \"x\"\n").find("no cells"), std::string::npos);
  EXPECT_NE(error("[axes]\nexperts = [2, 4]\n[[cells]]\nexperts = 2\n").find("two cells are both named \"N2_seed0\""),
            std::string::npos);
  EXPECT_NE(error("seeds = [1, 1]\n[axes]\nexperts = [2]\n").find("seed 1 is listed twice"), std::string::npos);
  EXPECT_NE(error("config = \"" + write(dir, "bad.toml", "widht = 3\n") + "\"\n[axes]\nexperts = [2]\n")
                .find("unknown option \"widht\""), std::string::npos);
  EXPECT_NE(error("[axes]\nexperts = [2\n").find("study.toml, line 2"), std::string::npos);
}

TEST(StudySpec, CellsVimoeTrainWouldRefuseStopTheStudyBeforeAnythingRuns) {
  vimoe::testing::TempDir dir;
  StudySpec spec = read_text_study(dir, "[base]\nexperts = 2\nmoe-last = 1\n[axes]\ntop-k = [1, 3]\n");
  spec.out = dir / "out";
  StudyRunOptions o;
  o.programs_dir = fs::path(VIMOE_TRAIN_BIN).parent_path().string();
  const std::string e = error_of([&] { run_study(spec, o); });
  EXPECT_NE(e.find("1 of its 2 cells would be refused by vimoe-train (nothing was run)"), std::string::npos) << e;
  EXPECT_NE(e.find("k3_seed0: "), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir / "out/k1_seed0"));
}

// The shipped tiny study (plus a cell that fails), interrupted with SIGTERM in the middle of
// its second cell and run again.
TEST(Study, TinyStudyResumesAfterAnInterruptionAndReports) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"))
    GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  vimoe::testing::TempDir dir;
  const std::string study = write(dir, "tiny.toml", read_text(VIMOE_SOURCE_DIR "/studies/tiny.toml") +
                                                        "\n[[cells]]\nname = \"broken\"\nexperts = 0\ninit = \"" +
                                                        (dir / "missing.safetensors") + "\"\n");
  const fs::path out = dir / "study";
  const std::vector<std::string> args = {"run", study, "--out", out.string()};
  const pid_t pid = vimoe::testing::spawn_program(VIMOE_STUDY_BIN, args, dir / "log1.txt");
  ASSERT_GT(pid, 0);
  // Wait until the second cell has a checkpoint and a few steps, then interrupt the study.
  const fs::path second = out / "L1_seed1";
  bool mid_cell = false;
  for (auto t = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t < 180s;) {
    if (fs::exists(second / "last.safetensors") && fs::exists(second / "metrics.jsonl")) {
      const std::string m = read_text((second / "metrics.jsonl").string());
      if (std::count(m.begin(), m.end(), '\n') >= 3) {
        mid_cell = true;
        break;
      }
    }
    if (waitpid(pid, nullptr, WNOHANG) == pid) break;
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(mid_cell) << read_text(dir / "log1.txt");
  kill(pid, SIGTERM);
  EXPECT_EQ(vimoe::testing::exit_status(pid), 128 + SIGTERM) << read_text(dir / "log1.txt");
  EXPECT_EQ(json_file(out / "L1_seed0/status.json")["state"], "done");
  const nlohmann::json interrupted = json_file(second / "status.json");
  ASSERT_EQ(interrupted["state"], "interrupted") << interrupted.dump() << read_text(dir / "log1.txt");
  EXPECT_FALSE(fs::exists(second / "final.safetensors"));
  EXPECT_FALSE(fs::exists(out / "L2_seed0"));
  const auto first_done = fs::last_write_time(out / "L1_seed0/final.safetensors");

  // Again: the done cell is skipped, the interrupted one resumes, the broken one fails alone.
  std::string log;
  EXPECT_EQ(vimoe::testing::run_program(VIMOE_STUDY_BIN, args, dir / "log2.txt", log), 1) << log;
  EXPECT_EQ(log.find("L1_seed0: "), std::string::npos) << "a done cell ran again:\n" << log;
  EXPECT_NE(log.find("L1_seed1: resuming from its checkpoint at step"), std::string::npos) << log;
  EXPECT_NE(log.find("broken_seed0: FAILED"), std::string::npos) << log;
  EXPECT_EQ(fs::last_write_time(out / "L1_seed0/final.safetensors"), first_done);
  EXPECT_EQ(json_file(out / "L1_seed0/status.json")["attempts"], 1);
  const nlohmann::json resumed = json_file(second / "status.json");
  EXPECT_EQ(resumed["state"], "done");
  EXPECT_EQ(resumed["attempts"], 2);
  EXPECT_GE(resumed["resumed_from_step"].get<int>(), 2);
  // One record per step, 1..40, with no step logged twice across the two attempts.
  std::vector<int> steps;
  for (const std::string& line : csv_lines(second / "metrics.jsonl")) {
    const nlohmann::json r = nlohmann::json::parse(line);
    if (r.contains("loss_avg")) steps.push_back(r["step"].get<int>());
  }
  ASSERT_EQ(steps.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(steps[i], i + 1);
  const nlohmann::json broken = json_file(out / "broken_seed0/status.json");
  EXPECT_EQ(broken["state"], "failed");
  EXPECT_NE(broken["error"].get<std::string>().find("missing.safetensors"), std::string::npos) << broken.dump();
  for (const char* cell : {"L2_seed0", "L2_seed1", "dense_seed0", "dense_seed1"})
    EXPECT_EQ(json_file(out / cell / "status.json")["state"], "done") << cell;

  // The report: a row per cell, a row per group, the plots.
  EXPECT_EQ(csv_lines(out / "runs.csv").size(), 1u + 8u);
  const std::vector<std::string> table = csv_lines(out / "table.csv");
  ASSERT_EQ(table.size(), 1u + 4u);
  EXPECT_EQ(table[1].rfind("L1,", 0), 0u) << table[1];
  EXPECT_EQ(table[4].rfind("broken,", 0), 0u) << table[4];
  for (const char* png : {"accuracy_vs_layers.png", "curves_loss.png", "specialization.png"}) {
    std::ifstream in(out / png, std::ios::binary);
    char sig[8] = {};
    in.read(sig, 8);
    EXPECT_EQ(std::string(sig + 1, 3), "PNG") << png;
  }
  EXPECT_NE(log.find("keep --moe-blocks"), std::string::npos) << log;

  // Once more without retrying the failed cell: nothing runs.
  EXPECT_EQ(vimoe::testing::run_program(VIMOE_STUDY_BIN, {"run", study, "--out", out.string(), "--no-retry-failed"},
                                        dir / "log3.txt", log), 1) << log;
  EXPECT_NE(log.find("8 cells (6 done, 2 failed before and left so, 0 to run)"), std::string::npos) << log;
  EXPECT_EQ(json_file(out / "broken_seed0/status.json")["attempts"], 1);

  // A cell whose options changed since it ran is refused, naming it.
  write(dir, "tiny.toml", read_text(study).replace(read_text(study).find("lr = 0.003"), 10, "lr = 0.002"));
  EXPECT_EQ(vimoe::testing::run_program(VIMOE_STUDY_BIN, args, dir / "log4.txt", log), 1);
  EXPECT_NE(log.find("differ from what the study now gives them"), std::string::npos) << log;
  EXPECT_NE(log.find("L1_seed0"), std::string::npos) << log;
}
