#include "apps/common/superclass_report.h"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "engine/error.h"
#include "models/confusion_graph.h"
#include "plot/plot.h"

namespace vimoe::app {

namespace fs = std::filesystem;

void write_confusion(const std::vector<std::vector<int64_t>>& confusion, const std::vector<std::string>& classes,
                     const std::string& out_dir, const std::string& title) {
  fs::create_directories(out_dir);
  const size_t K = classes.size();
  VIMOE_CHECK(confusion.size() == K, "write_confusion: ", confusion.size(), " rows for ", K, " classes");
  std::vector<double> rates;
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < K; ++i) {
    const double total = static_cast<double>(std::accumulate(confusion[i].begin(), confusion[i].end(), int64_t{0}));
    std::vector<std::string> line{classes[i]};
    for (size_t j = 0; j < K; ++j) {
      const double v = total > 0 ? static_cast<double>(confusion[i][j]) / total : 0.0;
      rates.push_back(v);
      line.push_back(plot::csv_number(v));
    }
    rows.push_back(line);
  }
  std::vector<std::string> header{"class"};
  for (const std::string& c : classes) header.push_back("predicted_" + c);
  plot::csv_write((fs::path(out_dir) / "confusion.csv").string(), header, rows);
  plot::HeatmapOptions o;
  o.row_order = plot::RowOrder::kGiven;
  o.vmin = 0.0;
  o.vmax = 1.0;
  o.row_title = "true class";
  o.col_title = "predicted";
  o.show_values = K <= 20;
  plot::heatmap_png((fs::path(out_dir) / "confusion.png").string(), rates, classes, classes, title, o);
}

data::SuperclassMap write_superclass_report(const std::vector<std::vector<int64_t>>& confusion,
                                            const std::vector<std::string>& classes, int64_t groups,
                                            const std::string& out_dir, uint64_t seed) {
  const size_t K = classes.size();
  write_confusion(confusion, classes, out_dir, "Confusion matrix: share of each class's images by prediction");
  const models::Matrix graph = models::confusion_graph(confusion);
  data::SuperclassMap map;
  map.group_of = models::spectral_clusters(graph, groups, seed);
  for (int64_t g = 0; g < groups; ++g) map.group_names.push_back("group " + std::to_string(g));
  data::write_superclasses((fs::path(out_dir) / "superclasses.json").string(), map, classes);

  // The grouping: classes by group (then by index), the graph's weights in that order.
  std::vector<size_t> order(K);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return map.group_of[a] < map.group_of[b]; });
  std::vector<std::string> labels;
  std::vector<double> weights;
  std::vector<std::vector<std::string>> rows;
  for (size_t a : order) {
    labels.push_back(std::to_string(map.group_of[a]) + ": " + classes[a]);
    for (size_t b : order) weights.push_back(graph[a][b]);
    std::string members;
    for (size_t c = 0; c < K; ++c)
      if (map.group_of[c] == map.group_of[a]) members += (members.empty() ? "" : " ") + classes[c];
    rows.push_back({classes[a], std::to_string(map.group_of[a]), members});
  }
  plot::csv_write((fs::path(out_dir) / "superclasses.csv").string(), {"class", "group", "group_classes"}, rows);
  plot::HeatmapOptions o;
  o.row_order = plot::RowOrder::kGiven;
  o.vmin = 0.0;
  o.row_title = "group: class";
  o.col_title = "group: class";
  o.show_values = K <= 20;
  plot::heatmap_png((fs::path(out_dir) / "superclasses.png").string(), weights, labels, labels,
                    "Confusion graph (mutual confusion rate), classes ordered by their " + std::to_string(groups) +
                        " super-classes",
                    o);
  return map;
}

}  // namespace vimoe::app
