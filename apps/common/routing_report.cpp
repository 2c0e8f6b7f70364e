#include "apps/common/routing_report.h"

#include <filesystem>

#include "engine/error.h"
#include "plot/overlay.h"
#include "plot/plot.h"

namespace vimoe::app {

namespace fs = std::filesystem;

namespace {

// "tokens" -> "token", "pixels" -> "pixel".
std::string routing_name(const std::string& unit) { return unit.substr(0, unit.size() - 1); }

std::vector<std::string> expert_names(int64_t experts) {
  std::vector<std::string> names;
  for (int64_t e = 0; e < experts; ++e) names.push_back(std::to_string(e));
  return names;
}

void write_similarity(const models::ImageExpertCounts& counts, const std::string& block, const std::string& unit,
                      const std::string& out_dir, std::vector<std::string>& files) {
  const std::vector<double> s = models::expert_pair_similarity(counts);
  const std::vector<std::string> names = expert_names(counts.experts);
  std::vector<std::vector<std::string>> rows;
  for (int64_t i = 0; i < counts.experts; ++i) {
    std::vector<std::string> line{names[i]};
    for (int64_t j = 0; j < counts.experts; ++j) line.push_back(plot::csv_number(s[i * counts.experts + j]));
    rows.push_back(line);
  }
  std::vector<std::string> header{"expert"};
  for (const std::string& n : names) header.push_back("expert_" + n);
  const std::string stem = "expert_similarity_block" + block;
  plot::csv_write((fs::path(out_dir) / (stem + ".csv")).string(), header, rows);
  plot::HeatmapOptions o;
  o.row_order = plot::RowOrder::kGiven;
  o.vmin = 0.0;
  o.vmax = 1.0;
  o.row_title = "expert";
  plot::heatmap_png((fs::path(out_dir) / (stem + ".png")).string(), s, names, names,
                    "Block " + block + ": expert-pair similarity of " + unit + " per image", o);
  files.push_back(stem + ".csv");
  files.push_back(stem + ".png");
}

void write_cdf(const models::ImageExpertCounts& counts, int64_t rows_per_image, const std::string& block,
               const std::string& unit, const std::string& out_dir, std::vector<std::string>& files) {
  const std::vector<std::vector<double>> cdf = models::rows_per_expert_cdf(counts, rows_per_image);
  std::vector<std::string> header{unit};
  std::vector<plot::Series> series;
  for (int64_t e = 0; e < counts.experts; ++e) {
    header.push_back("expert_" + std::to_string(e));
    plot::Series s{"expert " + std::to_string(e), {}, {}};
    for (int64_t x = 0; x <= rows_per_image; ++x) {
      s.xs.push_back(static_cast<double>(x));
      s.ys.push_back(cdf[e][x]);
    }
    series.push_back(std::move(s));
  }
  std::vector<std::vector<std::string>> rows;
  for (int64_t x = 0; x <= rows_per_image; ++x) {
    std::vector<std::string> line{std::to_string(x)};
    for (int64_t e = 0; e < counts.experts; ++e) line.push_back(plot::csv_number(cdf[e][x]));
    rows.push_back(line);
  }
  const std::string stem = "rows_per_expert_cdf_block" + block;
  plot::csv_write((fs::path(out_dir) / (stem + ".csv")).string(), header, rows);
  plot::LineChartOptions o;
  o.markers_up_to = 0;
  plot::line_chart_png((fs::path(out_dir) / (stem + ".png")).string(), series,
                       "Block " + block + ": CDF over images of each expert's " + unit + " per image",
                       unit + " of an image routed to the expert", "fraction of images", o);
  files.push_back(stem + ".csv");
  files.push_back(stem + ".png");
}

void write_routing_map(const EvalResult& r, size_t layer, const std::vector<std::string>& classes, int64_t experts,
                       const std::string& block, const std::string& unit, const std::string& out_dir,
                       std::vector<std::string>& files) {
  const models::RoutingGrid& grid = r.routing_grids[layer];
  std::vector<plot::OverlayTile> tiles;
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < r.routed_images.size(); ++i) {
    const EvalResult::RoutedImage& m = r.routed_images[i];
    const auto C = static_cast<int>(m.image.size(0)), H = static_cast<int>(m.image.size(1)),
               W = static_cast<int>(m.image.size(2));
    plot::OverlayTile t;
    t.width = W;
    t.height = H;
    t.rgb = plot::display_rgb(m.image.to_vector<float>(), C, H, W);
    t.grid_width = static_cast<int>(grid.width);
    t.grid_height = static_cast<int>(grid.height);
    t.labels.assign(m.top_expert[layer].begin(), m.top_expert[layer].end());
    t.caption = classes[m.label];
    tiles.push_back(std::move(t));
    for (int64_t p = 0; p < grid.height * grid.width; ++p)
      rows.push_back({std::to_string(i), classes[m.label], std::to_string(p / grid.width),
                      std::to_string(p % grid.width), std::to_string(m.top_expert[layer][p])});
  }
  std::vector<std::string> legend;
  for (int64_t e = 0; e < experts; ++e) legend.push_back("expert " + std::to_string(e));
  const std::string stem = "routing_map_block" + block;
  plot::csv_write((fs::path(out_dir) / (stem + ".csv")).string(), {"image", "class", "row", "col", "expert"}, rows);
  plot::overlay_tiles_png((fs::path(out_dir) / (stem + ".png")).string(), tiles, legend,
                          "Block " + block + ": each patch's top expert (" + routing_name(unit) + " routing)");
  files.push_back(stem + ".csv");
  files.push_back(stem + ".png");
}

}  // namespace

nlohmann::json write_routing_analyses(const EvalResult& r, const std::vector<std::string>& classes,
                                      const models::ImageModel& model, const std::string& out_dir,
                                      std::vector<std::string>& files) {
  nlohmann::json out = {{"layers", nlohmann::json::array()}};
  if (r.expert_counts.empty()) return out;
  VIMOE_CHECK(r.expert_counts.size() == r.moe_blocks.size() && r.routing_grids.size() == r.moe_blocks.size(),
              "write_routing_analyses: ", r.expert_counts.size(), " layers of expert counts and ",
              r.routing_grids.size(), " routing grids for ", r.moe_blocks.size(), " MoE layers");
  fs::create_directories(out_dir);
  const std::string unit = model.routing_unit();
  const bool spatial = unit != "images";
  const int64_t top_k = model.moe_config().top_k;
  std::vector<double> mean_distinct;
  for (size_t l = 0; l < r.expert_counts.size(); ++l) {
    const models::ImageExpertCounts& counts = r.expert_counts[l];
    const std::string block = std::to_string(r.moe_blocks[l]);
    mean_distinct.push_back(models::mean_distinct_experts(counts));
    out["layers"].push_back({{"block", r.moe_blocks[l]}, {"mean_distinct_experts", mean_distinct.back()}});
    if (spatial || top_k > 1) write_similarity(counts, block, unit, out_dir, files);
    if (!spatial) continue;
    write_cdf(counts, r.routing_grids[l].rows_per_image, block, unit, out_dir, files);
    if (!r.routed_images.empty()) write_routing_map(r, l, classes, counts.experts, block, unit, out_dir, files);
  }
  if (!spatial) return out;

  // Per image: the experts each layer's tokens reached, and what that activates.
  const std::vector<int64_t> active = models::activated_params_per_image(r.expert_counts, model.size());
  std::vector<std::vector<int64_t>> distinct;
  for (const models::ImageExpertCounts& c : r.expert_counts) distinct.push_back(models::distinct_experts(c));
  std::vector<std::string> header{"image", "class"};
  for (int64_t b : r.moe_blocks) header.push_back("experts_block" + std::to_string(b));
  header.push_back("routed_experts");
  header.push_back("activated_params");
  std::vector<std::vector<std::string>> rows;
  double routed_sum = 0, active_sum = 0;
  for (size_t i = 0; i < active.size(); ++i) {
    std::vector<std::string> line{std::to_string(i), classes[r.image_labels[i]]};
    int64_t routed = 0;
    for (const std::vector<int64_t>& d : distinct) {
      line.push_back(std::to_string(d[i]));
      routed += d[i];
    }
    line.push_back(std::to_string(routed));
    line.push_back(std::to_string(active[i]));
    rows.push_back(std::move(line));
    routed_sum += static_cast<double>(routed);
    active_sum += static_cast<double>(active[i]);
  }
  plot::csv_write((fs::path(out_dir) / "experts_per_image.csv").string(), header, rows);
  std::vector<std::string> labels;
  for (int64_t b : r.moe_blocks) labels.push_back("block " + std::to_string(b));
  plot::BarChartOptions o;
  o.reference = static_cast<double>(model.moe_config().experts);
  o.reference_label = "all experts";
  o.x_label = "MoE layer";
  plot::bar_chart_png((fs::path(out_dir) / "experts_per_image.png").string(), mean_distinct, labels,
                      "Distinct experts an image's " + unit + " reach, mean over images", "experts", o);
  files.push_back("experts_per_image.csv");
  files.push_back("experts_per_image.png");
  const auto images = static_cast<double>(std::max<size_t>(1, active.size()));
  out["routed_experts_per_image"] = routed_sum / images;
  out["activated_params_per_image"] = active_sum / images;
  return out;
}

}  // namespace vimoe::app
