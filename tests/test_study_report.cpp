// The vimoe-study report over a hand-written study directory: per-cell and per-group tables
// (means and sample stds worked out by hand), accuracy against MoE depth per series, curves
// averaged at the steps every seed logged, the efficient-ViMoE block choice, and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/common/study_report.h"
#include "tests/test_data_util.h"
#include "tests/test_util.h"

using namespace vimoe;
namespace fs = std::filesystem;

namespace {

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A CSV file as rows of fields (RFC 4180 quoting, as plot::csv_write writes it), header first.
std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  const std::string text = read_text(path);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field), field.clear();
    } else if (c == '\n') {
      row.push_back(field), field.clear();
      rows.push_back(row), row.clear();
    } else {
      field += c;
    }
  }
  return rows;
}

// Rows as maps from column name to field.
std::vector<std::map<std::string, std::string>> read_table(const std::string& path) {
  const auto rows = read_csv(path);
  std::vector<std::map<std::string, std::string>> out;
  if (rows.empty()) return out;
  for (size_t r = 1; r < rows.size(); ++r) {
    EXPECT_EQ(rows[r].size(), rows[0].size()) << path << " row " << r;
    std::map<std::string, std::string> m;
    for (size_t i = 0; i < rows[0].size() && i < rows[r].size(); ++i) m[rows[0][i]] = rows[r][i];
    out.push_back(m);
  }
  return out;
}

std::map<std::string, std::string> row_where(const std::vector<std::map<std::string, std::string>>& rows,
                                             const std::string& key, const std::string& value) {
  for (const auto& r : rows)
    if (r.count(key) && r.at(key) == value) return r;
  ADD_FAILURE() << "no row with " << key << " = " << value;
  return {};
}

double num(const std::string& s) { return s.empty() ? NAN : std::stod(s); }

bool is_png(const std::string& path) {
  const std::string head = read_text(path).substr(0, 8);
  return head == std::string("\x89PNG\r\n\x1a\n", 8);
}

// One cell of the synthetic study: what study.json says about it and what its run left.
struct CellSpec {
  std::string group;
  int seed = 0;
  std::string state;  // "" : no directory at all (pending, never started)
  double top1 = NAN;
  std::vector<std::pair<int, double>> nmi;  // block, NMI (NaN: null)
  int experts = 4;
  std::string metrics;  // metrics.jsonl; "" for the default three records
  std::string error;
};

// The default metrics: progress at steps 10, 20, 30 and validation at 30 (final).
std::string default_metrics(double top1) {
  return "{\"step\": 10, \"epoch\": 0, \"loss_avg\": 2.0, \"images_per_s\": 400}\n"
         "{\"step\": 20, \"epoch\": 0, \"loss_avg\": 1.5, \"images_per_s\": 800}\n"
         "{\"step\": 30, \"epoch\": 1, \"loss_avg\": 1.0, \"images_per_s\": 1000}\n"
         "{\"step\": 30, \"epoch\": 1, \"val_loss\": 1.0, \"val_top1\": " +
         std::to_string(top1) + ", \"val_top5\": 0.9, \"final\": true}\n";
}

void write_cell(const std::string& dir, const std::string& name, const CellSpec& c) {
  if (c.state.empty()) return;
  const std::string d = dir + "/" + name;
  nlohmann::json status = {{"state", c.state}, {"seconds", 12.5}};
  if (!c.error.empty()) status["error"] = c.error, status["exit_status"] = 1;
  write_text(d + "/status.json", status.dump());
  write_text(d + "/config.json", nlohmann::json{{"experts", c.experts}, {"top_k", 1}, {"seed", c.seed}}.dump());
  if (c.state != "done") return;
  write_text(d + "/metrics.jsonl", c.metrics.empty() ? default_metrics(c.top1) : c.metrics);
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& [block, v] : c.nmi)
    layers.push_back({{"block", block}, {"load", {0.5, 0.5}},
                      {"class_expert_nmi", std::isfinite(v) ? nlohmann::json(v) : nlohmann::json()}});
  nlohmann::json summary = {{"top1", c.top1}, {"top5", 0.95}, {"loss", 1.0}, {"images", 1000},
                            {"model", {{"total_params", 1320000}, {"active_params", 1000000}, {"macs", 2.1e8}}},
                            {"moe_layers", layers}};
  if (!c.nmi.empty()) {
    summary["routing_degree"] = std::pow(4.0, static_cast<double>(c.nmi.size()));
    summary["distinct_paths_used"] = 3 + c.seed;
    summary["routed_experts_per_image"] = static_cast<double>(c.nmi.size());
  }
  write_text(d + "/eval/summary.json", summary.dump(2));
}

// study.json over cells named <group>_seed<seed>; groups named L<l>_<shared|plain> set the
// axes moe-last and shared-expert, any other group is an extra cell setting experts = 0.
void write_study(const std::string& dir, const std::vector<CellSpec>& cells) {
  nlohmann::json j = {{"name", "tiny"}, {"study_file", "/abs/tiny.toml"},
                      {"axes", {"moe-last", "shared-expert"}}, {"seeds", {0, 1}}};
  j["cells"] = nlohmann::json::array();
  for (const CellSpec& c : cells) {
    const std::string name = c.group + "_seed" + std::to_string(c.seed);
    nlohmann::json cj = {{"name", name}, {"group", c.group}, {"seed", c.seed}};
    if (c.group[0] == 'L') {
      const std::string l = c.group.substr(1, c.group.find('_') - 1);
      const bool shared = c.group.find("shared") != std::string::npos;
      cj["values"] = {{"moe-last", l}, {"shared-expert", shared ? "true" : "false"}};
      cj["labels"] = {{"moe-last", "L" + l}, {"shared-expert", shared ? "shared" : "plain"}};
      cj["extra"] = false;
    } else {
      cj["values"] = {{"experts", "0"}};
      cj["labels"] = {{"experts", "dense"}};
      cj["extra"] = true;
    }
    j["cells"].push_back(cj);
    write_cell(dir, name, c);
  }
  write_text(dir + "/study.json", j.dump(2));
}

// Two MoE series (shared / plain) over L in {1, 2}, two seeds each; one failed and one
// pending seed among the plain ones; a dense extra cell.
std::vector<CellSpec> tiny_study() {
  const std::string nan_metrics_seed1 =
      "{\"step\": 10, \"epoch\": 0, \"loss_avg\": 2.2, \"images_per_s\": 600}\n"
      "{\"step\": 20, \"epoch\": 0, \"loss_avg\": 1.7, \"images_per_s\": 900}\n"
      "{\"step\": 20, \"epoch\": 1, \"val_loss\": 1.3, \"val_top1\": 0.54}\n"
      "{\"step\": 30, \"epoch\": 2, \"val_loss\": 1.0, \"val_top1\": 0.64, \"final\": true}\n"
      "{\"step\": 40, \"loss_a";  // cut short by a kill
  const std::string metrics_seed0 =
      "{\"step\": 10, \"epoch\": 0, \"loss_avg\": 2.0, \"aux_loss\": 0.01, \"images_per_s\": 500}\n"
      "{\"step\": 20, \"epoch\": 0, \"loss_avg\": 1.5, \"images_per_s\": 1000}\n"
      "{\"step\": 20, \"epoch\": 1, \"val_loss\": 1.4, \"val_top1\": 0.5, \"val_top5\": 0.9}\n"
      "{\"step\": 30, \"epoch\": 1, \"loss_avg\": 1.0, \"images_per_s\": 1200}\n"
      "{\"step\": 30, \"epoch\": 2, \"val_loss\": 1.0, \"val_top1\": 0.6, \"val_top5\": 0.95, \"final\": true}\n";
  return {
      {"L1_shared", 0, "done", 0.60, {{3, 0.20}}, 4, metrics_seed0, ""},
      {"L1_shared", 1, "done", 0.64, {{3, 0.24}}, 4, nan_metrics_seed1, ""},
      {"L2_shared", 0, "done", 0.70, {{2, 0.10}, {3, 0.40}}, 4, "", ""},
      {"L2_shared", 1, "done", 0.74, {{2, 0.14}, {3, 0.44}}, 4, "", ""},
      {"L1_plain", 0, "done", 0.58, {{3, 0.25}}, 4, "", ""},
      {"L1_plain", 1, "failed", NAN, {}, 4, "", "CUDA out of memory\n  at train_step.cpp:12"},
      {"L2_plain", 0, "done", 0.66, {{2, 0.30}, {3, 0.35}}, 4, "", ""},
      {"L2_plain", 1, "", NAN, {}, 4, "", ""},
      {"dense", 0, "done", 0.55, {}, 0, "", ""},
  };
}

}  // namespace

TEST(StudyReport, TablesHoldEveryCellAndGroupMeansOverDoneSeeds) {
  vimoe::testing::TempDir dir;
  write_study(dir.path(), tiny_study());
  const app::StudyReport rep = app::write_study_report(dir.path());
  EXPECT_EQ(rep.done, 7);
  EXPECT_EQ(rep.failed, 1);
  EXPECT_EQ(rep.unfinished, 1);

  const auto runs = read_table(dir / "runs.csv");
  ASSERT_EQ(runs.size(), 9u);
  EXPECT_EQ(runs[0].at("cell"), "L1_shared_seed0");  // study.json's order
  EXPECT_EQ(runs[8].at("cell"), "dense_seed0");
  EXPECT_EQ(row_where(runs, "cell", "L1_plain_seed1").at("state"), "failed");
  EXPECT_EQ(row_where(runs, "cell", "L1_plain_seed1").at("error"), "CUDA out of memory\n  at train_step.cpp:12");
  EXPECT_EQ(row_where(runs, "cell", "L1_plain_seed1").at("score"), "");
  EXPECT_EQ(row_where(runs, "cell", "L2_plain_seed1").at("state"), "pending");
  const auto l1s0 = row_where(runs, "cell", "L1_shared_seed0");
  EXPECT_EQ(l1s0.at("moe-last"), "1");
  EXPECT_EQ(l1s0.at("shared-expert"), "true");
  EXPECT_DOUBLE_EQ(num(l1s0.at("score")), 0.60);
  EXPECT_DOUBLE_EQ(num(l1s0.at("params")), 1320000);
  EXPECT_DOUBLE_EQ(num(l1s0.at("macs")), 2.1e8);
  EXPECT_DOUBLE_EQ(num(l1s0.at("train_images_per_s")), 1100);  // (1000 + 1200) / 2: the first window left out
  EXPECT_DOUBLE_EQ(num(row_where(runs, "cell", "L1_shared_seed1").at("train_images_per_s")), 900);
  EXPECT_DOUBLE_EQ(num(l1s0.at("routing_degree")), 4);
  EXPECT_DOUBLE_EQ(num(l1s0.at("seconds")), 12.5);
  EXPECT_EQ(row_where(runs, "cell", "dense_seed0").at("routing_degree"), "");

  const auto table = read_table(dir / "table.csv");
  ASSERT_EQ(table.size(), 5u);
  const std::vector<std::string> order{"L1_shared", "L2_shared", "L1_plain", "L2_plain", "dense"};
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(table[i].at("group"), order[i]);
  const auto g = row_where(table, "group", "L1_shared");
  EXPECT_EQ(g.at("seeds_done"), "2");
  EXPECT_EQ(g.at("seeds_planned"), "2");
  EXPECT_NEAR(num(g.at("top1")), 0.62, 1e-12);
  EXPECT_NEAR(num(g.at("top1_std")), std::sqrt(2 * 0.02 * 0.02 / 1), 1e-12);  // sample std, n - 1 = 1
  EXPECT_NEAR(num(g.at("train_images_per_s")), 1000, 1e-9);
  EXPECT_NEAR(num(g.at("distinct_paths")), 3.5, 1e-12);
  EXPECT_EQ(g.at("notes"), "");
  const auto plain = row_where(table, "group", "L1_plain");
  EXPECT_EQ(plain.at("seeds_done"), "1");
  EXPECT_NEAR(num(plain.at("top1")), 0.58, 1e-12);
  EXPECT_EQ(plain.at("top1_std"), "");  // one seed: no spread
  EXPECT_EQ(plain.at("notes"), "1 failed: CUDA out of memory");
  EXPECT_EQ(row_where(table, "group", "L2_plain").at("notes"), "1 pending");
  EXPECT_EQ(row_where(table, "group", "dense").at("notes"), "sets experts=0");  // the extra cell's options

  const std::string md = read_text(dir / "table.md");
  EXPECT_NE(md.find("top-1 accuracy on the validation set"), std::string::npos) << md;
  EXPECT_NE(md.find("62.00 \xC2\xB1 2.83 %"), std::string::npos) << md;
  EXPECT_NE(md.find("58.00 %"), std::string::npos) << md;
  EXPECT_NE(md.find("1.32M"), std::string::npos) << md;
  EXPECT_NE(md.find("0.21G"), std::string::npos) << md;
  EXPECT_NE(md.find("| L1_plain | 1 | false | 1/2 |"), std::string::npos) << md;
}

TEST(StudyReport, AccuracyAgainstMoELayersHasOneLinePerSeriesAndAFlatDenseLine) {
  vimoe::testing::TempDir dir;
  write_study(dir.path(), tiny_study());
  const app::StudyReport rep = app::write_study_report(dir.path());
  const auto rows = read_table(dir / "accuracy_vs_layers.csv");
  ASSERT_EQ(rows.size(), 5u);
  // Sorted by depth; series: the labels without the placement axis moe-last.
  EXPECT_EQ(rows[0].at("series"), "dense");
  EXPECT_EQ(rows[0].at("moe_layers"), "0");
  EXPECT_NEAR(num(rows[0].at("score_mean")), 0.55, 1e-12);
  EXPECT_EQ(rows[0].at("score_std"), "");
  std::map<std::string, std::vector<std::pair<std::string, double>>> series;
  for (const auto& r : rows) series[r.at("series")].emplace_back(r.at("moe_layers"), num(r.at("score_mean")));
  ASSERT_EQ(series.size(), 3u);
  ASSERT_EQ(series["shared"].size(), 2u);
  EXPECT_EQ(series["shared"][0].first, "1");
  EXPECT_NEAR(series["shared"][0].second, 0.62, 1e-12);
  EXPECT_EQ(series["shared"][1].first, "2");
  EXPECT_NEAR(series["shared"][1].second, 0.72, 1e-12);
  ASSERT_EQ(series["plain"].size(), 2u);
  EXPECT_NEAR(series["plain"][0].second, 0.58, 1e-12);
  EXPECT_NEAR(series["plain"][1].second, 0.66, 1e-12);
  EXPECT_EQ(row_where(rows, "series", "shared").at("seeds"), "2");

  for (const char* png : {"accuracy_vs_layers.png", "curves_loss.png", "curves_val.png", "specialization.png"}) {
    EXPECT_TRUE(is_png(dir / png)) << png;
    EXPECT_NE(std::find(rep.files.begin(), rep.files.end(), png), rep.files.end()) << png;
  }
  for (const std::string& f : rep.files) EXPECT_TRUE(fs::exists(dir / f)) << f;
  const std::string report = read_text(dir / "report.md");
  EXPECT_NE(report.find("(accuracy_vs_layers.png)"), std::string::npos) << report;
  EXPECT_NE(report.find("(specialization.png)"), std::string::npos) << report;
  EXPECT_NE(report.find("| L1_shared |"), std::string::npos) << report;
  EXPECT_NE(report.find("-> keep --moe-blocks"), std::string::npos) << report;
}

TEST(StudyReport, CurvesAverageSeedsAtTheStepsAllOfThemLogged) {
  vimoe::testing::TempDir dir;
  write_study(dir.path(), tiny_study());
  app::write_study_report(dir.path());
  std::vector<std::map<std::string, std::string>> l1;
  for (const auto& r : read_table(dir / "curves.csv"))
    if (r.at("group") == "L1_shared") l1.push_back(r);
  // Loss at 10 and 20 (seed 1 logged none at 30, and its cut-short line at 40 is skipped);
  // validation at 20 and 30.
  ASSERT_EQ(l1.size(), 3u);
  EXPECT_EQ(l1[0].at("step"), "10");
  EXPECT_NEAR(num(l1[0].at("loss_avg")), 2.1, 1e-12);
  EXPECT_EQ(l1[0].at("val_top1"), "");
  EXPECT_EQ(l1[1].at("step"), "20");
  EXPECT_NEAR(num(l1[1].at("loss_avg")), 1.6, 1e-12);
  EXPECT_NEAR(num(l1[1].at("val_top1")), 0.52, 1e-12);
  EXPECT_EQ(l1[2].at("step"), "30");
  EXPECT_EQ(l1[2].at("loss_avg"), "");
  EXPECT_NEAR(num(l1[2].at("val_top1")), 0.62, 1e-12);
  EXPECT_EQ(l1[2].at("seeds"), "2");

  const auto spec = read_table(dir / "specialization.csv");
  EXPECT_EQ(spec.size(), 9u);  // per done seed and MoE layer: 1 + 1 + 2 + 2 + 1 + 2
}

TEST(StudyReport, EfficientViMoEDefaultsToTheDeepestGroupsAndKeepsBlocksNearTheMostSpecialised) {
  vimoe::testing::TempDir dir;
  write_study(dir.path(), tiny_study());
  const app::StudyReport rep = app::write_study_report(dir.path());
  // L2_shared and L2_plain tie at 2 MoE layers. L2_shared: block 3 mean 0.42, block 2 mean
  // 0.12 < 0.5 x 0.42; L2_plain: 0.35 and 0.30 >= 0.175.
  EXPECT_NE(rep.efficient.find("L2_shared: block 3 0.420, block 2 0.120 -> keep --moe-blocks 3 (NMI >= 0.50 x 0.420)"),
            std::string::npos)
      << rep.efficient;
  EXPECT_NE(rep.efficient.find("L2_plain: block 3 0.350, block 2 0.300 -> keep --moe-blocks 2,3 (NMI >= 0.50 x 0.350)"),
            std::string::npos)
      << rep.efficient;
  EXPECT_EQ(rep.efficient.find("L1_shared"), std::string::npos) << rep.efficient;
  const auto rows = read_table(dir / "efficient_vimoe.csv");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].at("group"), "L2_shared");
  EXPECT_EQ(rows[0].at("block"), "3");
  EXPECT_EQ(rows[0].at("rank"), "1");
  EXPECT_EQ(rows[0].at("kept"), "true");
  EXPECT_NEAR(num(rows[0].at("nmi")), 0.42, 1e-12);
  EXPECT_EQ(rows[1].at("block"), "2");
  EXPECT_EQ(rows[1].at("rank"), "2");
  EXPECT_EQ(rows[1].at("kept"), "false");
  EXPECT_EQ(rows[3].at("kept"), "true");
}

TEST(StudyReport, EfficientViMoEThresholdIsRelativeToTheGroupsLargestNMI) {
  // One four-layer group; block 0's second seed recorded no decisions (null NMI).
  // Means over seeds: block 0 0.05, block 1 0.20, block 2 0.40, block 3 0.70.
  vimoe::testing::TempDir dir;
  std::vector<CellSpec> cells = {
      {"L4_shared", 0, "done", 0.7, {{0, 0.05}, {1, 0.30}, {2, 0.50}, {3, 0.80}}, 4, "", ""},
      {"L4_shared", 1, "done", 0.7, {{0, NAN}, {1, 0.10}, {2, 0.30}, {3, 0.60}}, 4, "", ""},
      {"L1_shared", 0, "done", 0.6, {{3, NAN}}, 4, "", ""},
  };
  write_study(dir.path(), cells);
  const std::string half = app::write_study_report(dir.path(), {{"L4_shared"}, 0.5}).efficient;
  EXPECT_NE(half.find("L4_shared: block 3 0.700, block 2 0.400, block 1 0.200, block 0 0.050 -> keep --moe-blocks "
                      "2,3 (NMI >= 0.50 x 0.700)"),
            std::string::npos)
      << half;
  // A lower threshold reaches block 1 (0.20 >= 0.175) but not block 0.
  const std::string quarter = app::write_study_report(dir.path(), {{"L4_shared"}, 0.25}).efficient;
  EXPECT_NE(quarter.find("-> keep --moe-blocks 1,2,3 (NMI >= 0.25 x 0.700)"), std::string::npos) << quarter;
  // A group whose only layer has no finite NMI is noted, not an error.
  const std::string none = app::write_study_report(dir.path(), {{"L1_shared"}, 0.5}).efficient;
  EXPECT_NE(none.find("L1_shared: no finite class-expert NMI"), std::string::npos) << none;
  const auto rows = read_table(dir / "efficient_vimoe.csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("kept"), "false");
}

TEST(StudyReport, AStudyWithNoDoneCellWritesTheTablesAndSaysThePlotsAreSkipped) {
  vimoe::testing::TempDir dir;
  write_study(dir.path(), {{"L1_shared", 0, "running", NAN, {}, 4, "", ""},
                           {"L1_shared", 1, "failed", NAN, {}, 4, "", "diverged"},
                           {"L2_shared", 0, "", NAN, {}, 4, "", ""}});
  const app::StudyReport rep = app::write_study_report(dir.path());
  EXPECT_EQ(rep.done, 0);
  EXPECT_EQ(rep.failed, 1);
  EXPECT_EQ(rep.unfinished, 2);
  EXPECT_NE(rep.efficient.find("no cell is done"), std::string::npos) << rep.efficient;
  const auto runs = read_table(dir / "runs.csv");
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].at("state"), "running");
  EXPECT_EQ(runs[2].at("state"), "pending");
  const auto table = read_table(dir / "table.csv");
  ASSERT_EQ(table.size(), 2u);
  EXPECT_EQ(table[0].at("notes"), "1 failed: diverged; 1 running");
  EXPECT_TRUE(fs::exists(dir / "report.md"));
  EXPECT_FALSE(fs::exists(dir / "accuracy_vs_layers.png"));
  EXPECT_FALSE(fs::exists(dir / "curves_loss.png"));
}

TEST(StudyReport, SegmentationStudiesAreScoredByMIoU) {
  vimoe::testing::TempDir dir;
  write_study(dir.path(), {{"L1_shared", 0, "done", NAN, {{3, 0.2}}, 4, "", ""}});
  // Replace the classification summary with a segmentation one.
  write_text(dir / "L1_shared_seed0/eval/summary.json",
             R"({"miou": 0.41, "mean_accuracy": 0.5, "pixel_accuracy": 0.8, "model": {"total_params": 10},
                 "moe_layers": [{"block": 3, "class_expert_nmi": 0.2}]})");
  write_text(dir / "L1_shared_seed0/metrics.jsonl",
             "{\"step\": 10, \"loss_avg\": 2.0, \"images_per_s\": 10}\n"
             "{\"step\": 10, \"val_loss\": 1.5, \"val_miou\": 0.40, \"val_macc\": 0.5, \"val_aacc\": 0.8, "
             "\"final\": true}\n");
  app::write_study_report(dir.path());
  const auto table = read_table(dir / "table.csv");
  ASSERT_EQ(table.size(), 1u);
  EXPECT_NEAR(num(table[0].at("miou")), 0.41, 1e-12);
  EXPECT_EQ(table[0].count("top1"), 0u);
  EXPECT_NEAR(num(read_table(dir / "curves.csv")[0].at("val_miou")), 0.40, 1e-12);
  EXPECT_NE(read_text(dir / "table.md").find("mIoU"), std::string::npos);
}

TEST(StudyReport, ADoneCellWithoutAnEvalSummaryIsScoredFromItsFinalValidation) {
  vimoe::testing::TempDir dir;
  write_study(dir.path(), {{"L1_shared", 0, "done", 0.6, {{3, 0.2}}, 4, "", ""},
                           {"L1_shared", 1, "done", 0.7, {{3, 0.2}}, 4, "", ""}});
  fs::remove(dir / "L1_shared_seed1/eval/summary.json");
  // A validation record after the final one (never written by vimoe-train) must not win.
  write_text(dir / "L1_shared_seed1/metrics.jsonl",
             "{\"step\": 10, \"loss_avg\": 2.0, \"images_per_s\": 10}\n"
             "{\"step\": 10, \"val_loss\": 1.5, \"val_top1\": 0.50}\n"
             "{\"step\": 20, \"val_loss\": 1.2, \"val_top1\": 0.66, \"final\": true}\n"
             "{\"step\": 30, \"val_loss\": 1.2, \"val_top1\": 0.10}\n");
  app::write_study_report(dir.path());
  const auto runs = read_table(dir / "runs.csv");
  EXPECT_NEAR(num(runs[1].at("score")), 0.66, 1e-12);
  EXPECT_EQ(runs[1].at("params"), "");
  const auto table = read_table(dir / "table.csv");
  EXPECT_NEAR(num(table[0].at("top1")), 0.63, 1e-12);
  EXPECT_EQ(table[0].at("notes"), "1 done without eval/summary.json (score from metrics.jsonl)");
}

TEST(StudyReport, ErrorsNameTheFileOrTheGroups) {
  vimoe::testing::TempDir dir;
  EXPECT_VIMOE_ERROR(app::write_study_report(dir.path()), "study.json", "no such file", dir.path().c_str());
  write_text(dir / "study.json", "{\"cells\": [");
  EXPECT_VIMOE_ERROR(app::write_study_report(dir.path()), "study.json", "not valid JSON");

  write_study(dir.path(), tiny_study());
  EXPECT_VIMOE_ERROR(app::write_study_report(dir.path(), {{"L9_shared"}, 0.5}), "--from", "L9_shared",
                     "L1_shared, L2_shared, L1_plain, L2_plain, dense");
  EXPECT_FALSE(fs::exists(dir / "runs.csv"));  // checked before anything is written
  EXPECT_VIMOE_ERROR(app::write_study_report(dir.path(), {{}, 1.5}), "threshold", "1.5");

  write_text(dir / "L2_plain_seed0/eval/summary.json", "{\"top1\": 0.6, \"model\": ");
  EXPECT_VIMOE_ERROR(app::write_study_report(dir.path()), "L2_plain_seed0/eval/summary.json", "not valid JSON");
}
