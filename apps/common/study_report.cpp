#include "apps/common/study_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/io/atomic_file.h"
#include "plot/plot.h"

namespace vimoe::app {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

// The options that say where the MoE layers go: a series of accuracy_vs_layers is what is
// left of a group's labels without them, so that its points differ only in MoE depth.
static const std::set<std::string> kPlacementAxes = {"moe-last", "moe-blocks", "moe-every-second", "moe-placement"};

static const char* kNone = "\xE2\x80\x93";  // "–": no value, in Markdown

// A file's bytes; nullopt when it is not a regular file. Throws when it is one that cannot be
// read, since a permission problem should not pass for a cell that has not run yet.
static std::optional<std::string> read_text(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  VIMOE_CHECK(in.good(), "study report: cannot read ", path.string(), " (it exists but does not open)");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A JSON object from a file the runner may be rewriting or may have left cut short: nullopt
// for a missing file and for one that does not parse.
static std::optional<json> read_object_lenient(const fs::path& path) {
  const std::optional<std::string> text = read_text(path);
  if (!text) return std::nullopt;
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// The objects of a JSON-lines file, skipping lines that do not parse (the last line of a run
// killed mid-write) or are not objects; empty for a missing file.
static std::vector<json> read_jsonl(const fs::path& path) {
  std::vector<json> out;
  const std::optional<std::string> text = read_text(path);
  if (!text) return out;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

// j[key] as a double; NaN when absent, null (how JSON holds a diverged run's NaN) or not a number.
static double number(const json& j, const char* key) {
  if (!j.is_object()) return NAN;
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}

static std::string string_of(const json& j, const char* key) {
  if (!j.is_object()) return "";
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// An option value as the study writes it (text), tolerating numbers and booleans.
static std::string as_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

struct MeanStd {
  double mean = NAN, std = NAN;  // std: sample standard deviation, NaN below two values
  int64_t n = 0;                 // finite values seen
};

// Over the finite values only: a missing value is not a zero.
static MeanStd mean_std(const std::vector<double>& values) {
  MeanStd r;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v)) sum += v, ++r.n;
  if (r.n == 0) return r;
  r.mean = sum / static_cast<double>(r.n);
  if (r.n < 2) return r;
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(ss / static_cast<double>(r.n - 1));
  return r;
}

template <typename... Args>
static std::string format(const char* fmt, Args... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

// CSV fields: an absent or non-finite value is empty, so a spreadsheet reads it as missing.
static std::string csv_num(double v) { return std::isfinite(v) ? plot::csv_number(v) : ""; }

// Markdown numbers.
static std::string md_percent(const MeanStd& s) {
  if (!std::isfinite(s.mean)) return kNone;
  if (!std::isfinite(s.std)) return format("%.2f %%", 100 * s.mean);
  return format("%.2f \xC2\xB1 %.2f %%", 100 * s.mean, 100 * s.std);  // "±"
}
static std::string md_count(double v) {
  if (!std::isfinite(v)) return kNone;
  const double a = std::fabs(v);
  if (a >= 1e9) return format("%.2fG", v / 1e9);
  if (a >= 1e6) return format("%.2fM", v / 1e6);
  if (a >= 1e3) return format("%.2fK", v / 1e3);
  return format("%.0f", v);
}
// Multiply-adds in G, as the papers quote them, down to 0.01G; smaller models in M.
static std::string md_macs(double v) {
  if (!std::isfinite(v)) return kNone;
  return std::fabs(v) >= 1e7 ? format("%.2fG", v / 1e9) : format("%.2fM", v / 1e6);
}
static std::string md_number(double v, const char* fmt) { return std::isfinite(v) ? format(fmt, v) : kNone; }
// A table cell: one line, no column separators.
static std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

static std::string first_line(const std::string& s) {
  const size_t end = s.find('\n');
  return end == std::string::npos ? s : s.substr(0, end);
}

static std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// ---------------------------------------------------------------------------------------
// What one cell left behind
// ---------------------------------------------------------------------------------------

namespace {

struct Cell {
  std::string name, group;
  int64_t seed = -1;  // -1: not given
  // Per option the cell sets: the study's axes in its order, then (explicit extra cells)
  // other options by name.
  std::vector<std::pair<std::string, std::string>> values, labels;
  std::vector<std::string> other_options;  // "option=value" for options that are not axes

  std::string state = "pending", error;  // status.json; no file: not started
  double seconds = NAN;
  int64_t experts = -1;  // config.json; -1: unknown

  // eval/summary.json (done cells only)
  bool has_summary = false, summary_has_top1 = false, summary_has_miou = false;
  double top1 = NAN, miou = NAN;
  double params = NAN, active_params = NAN, macs = NAN;
  double routing_degree = NAN, distinct_paths = NAN, routed_experts_per_image = NAN;
  int64_t moe_layers = -1;                       // -1: unknown
  std::vector<std::pair<int64_t, double>> nmi;  // per MoE layer: block, class-expert NMI (NaN: null)

  // metrics.jsonl
  double images_per_s = NAN;
  std::map<int64_t, double> loss, val_top1, val_miou;  // by step; a resumed run's re-logged step wins
  double last_val_top1 = NAN, last_val_miou = NAN;     // the final validation record, else the last
  bool logged_top1 = false, logged_miou = false;

  double score = NAN;  // top-1 or mIoU as the study's task says (set once that is known)

  bool done() const { return state == "done"; }
  std::string value(const std::string& key) const {
    for (const auto& [k, v] : values)
      if (k == key) return v;
    return "";
  }
};

struct Group {
  std::string name;
  std::vector<const Cell*> cells, done;
};

}  // namespace

// The keys of `obj` with the study's axes first, in the study's order.
static std::vector<std::pair<std::string, std::string>> ordered(const json& obj, const std::vector<std::string>& axes) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!obj.is_object()) return out;
  for (const std::string& a : axes)
    if (obj.contains(a)) out.emplace_back(a, as_text(obj[a]));
  for (const auto& [k, v] : obj.items())
    if (std::find(axes.begin(), axes.end(), k) == axes.end()) out.emplace_back(k, as_text(v));
  return out;
}

static void read_status(Cell& c, const fs::path& dir) {
  const fs::path path = dir / "status.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) return;  // pending
  const std::optional<json> s = read_object_lenient(path);
  if (!s) {
    c.state = "unknown";  // being rewritten, or cut short: neither done nor failed
    return;
  }
  c.state = string_of(*s, "state");
  if (c.state.empty()) c.state = "unknown";
  c.error = string_of(*s, "error");
  c.seconds = number(*s, "seconds");
}

static void read_summary(Cell& c, const fs::path& path) {
  const std::optional<std::string> text = read_text(path);
  if (!text) return;
  json s;
  try {
    s = json::parse(*text);
  } catch (const json::exception& e) {
    VIMOE_FAIL("study report: ", path.string(), " (cell ", c.name, ") is not valid JSON (", e.what(),
               "); rerun `vimoe-eval run` for the cell or remove the file");
  }
  VIMOE_CHECK(s.is_object(), "study report: ", path.string(), " (cell ", c.name,
              ") should hold a JSON object as vimoe-eval writes it, found ", s.type_name());
  c.has_summary = true;
  c.summary_has_top1 = s.contains("top1");
  c.summary_has_miou = s.contains("miou");
  c.top1 = number(s, "top1");
  c.miou = number(s, "miou");
  if (s.contains("model")) {
    c.params = number(s["model"], "total_params");
    c.active_params = number(s["model"], "active_params");
    c.macs = number(s["model"], "macs");
  }
  c.routing_degree = number(s, "routing_degree");
  c.distinct_paths = number(s, "distinct_paths_used");
  c.routed_experts_per_image = number(s, "routed_experts_per_image");
  if (s.contains("moe_layers") && s["moe_layers"].is_array()) {
    const json& layers = s["moe_layers"];
    c.moe_layers = static_cast<int64_t>(layers.size());
    for (size_t l = 0; l < layers.size(); ++l) {
      const double block = number(layers[l], "block");
      c.nmi.emplace_back(std::isfinite(block) ? static_cast<int64_t>(block) : static_cast<int64_t>(l),
                         number(layers[l], "class_expert_nmi"));
    }
  }
}

static void read_metrics(Cell& c, const fs::path& path) {
  std::vector<double> throughput;
  bool final_seen = false;
  for (const json& r : read_jsonl(path)) {
    const double step_value = number(r, "step");
    const bool has_step = std::isfinite(step_value);
    const int64_t step = has_step ? static_cast<int64_t>(step_value) : 0;
    if (r.contains("images_per_s")) throughput.push_back(number(r, "images_per_s"));
    if (has_step && r.contains("loss_avg")) c.loss[step] = number(r, "loss_avg");
    const bool validation = r.contains("val_top1") || r.contains("val_miou");
    if (!validation) continue;
    if (r.contains("val_top1")) {
      c.logged_top1 = true;
      if (has_step) c.val_top1[step] = number(r, "val_top1");
    }
    if (r.contains("val_miou")) {
      c.logged_miou = true;
      if (has_step) c.val_miou[step] = number(r, "val_miou");
    }
    if (!final_seen) {
      c.last_val_top1 = number(r, "val_top1");
      c.last_val_miou = number(r, "val_miou");
      const auto fin = r.find("final");
      final_seen = fin != r.end() && fin->is_boolean() && fin->get<bool>();
    }
  }
  // The first window includes start-up (allocation, the loader filling up): leave it out.
  if (throughput.size() > 1) throughput.erase(throughput.begin());
  c.images_per_s = mean_std(throughput).mean;
}

// ---------------------------------------------------------------------------------------
// study.json
// ---------------------------------------------------------------------------------------

namespace {
struct Study {
  std::string name;
  std::vector<std::string> axes;
  std::vector<Cell> cells;
};
}  // namespace

static Study read_study(const fs::path& dir) {
  const fs::path path = dir / "study.json";
  std::error_code ec;
  VIMOE_CHECK(fs::is_regular_file(path, ec), "study report: cannot read ", path.string(), ": ",
              fs::exists(path, ec) ? "not a regular file" : "no such file",
              " (a study directory holds the study.json that vimoe-study writes)");
  const std::string text = *read_text(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    VIMOE_FAIL("study report: ", path.string(), " is not valid JSON (", e.what(), ")");
  }
  VIMOE_CHECK(j.is_object() && j.contains("cells") && j["cells"].is_array(), "study report: ", path.string(),
              " should be an object with a \"cells\" array, found ",
              j.is_object() ? "an object without one" : j.type_name());
  Study st;
  st.name = string_of(j, "name");
  if (j.contains("axes")) {
    VIMOE_CHECK(j["axes"].is_array(), "study report: ", path.string(), ": \"axes\" should be an array of option "
                "names, found ", j["axes"].type_name());
    for (const json& a : j["axes"]) {
      VIMOE_CHECK(a.is_string(), "study report: ", path.string(), ": \"axes\" should hold option names, found ",
                  a.dump());
      st.axes.push_back(a.get<std::string>());
    }
  }
  std::set<std::string> names;
  for (size_t i = 0; i < j["cells"].size(); ++i) {
    const json& cj = j["cells"][i];
    Cell c;
    c.name = string_of(cj, "name");
    // The name is a directory under DIR: nothing that could point outside it.
    VIMOE_CHECK(!c.name.empty() && c.name != "." && c.name != ".." && c.name.find('/') == std::string::npos,
                "study report: ", path.string(), ": cells[", i, "] should have a \"name\" that is a directory "
                "name, found ", cj.is_object() && cj.contains("name") ? cj["name"].dump() : "none");
    VIMOE_CHECK(names.insert(c.name).second, "study report: ", path.string(), ": cell \"", c.name,
                "\" appears twice");
    c.group = string_of(cj, "group");
    if (c.group.empty()) c.group = c.name;
    const double seed = number(cj, "seed");
    if (std::isfinite(seed)) c.seed = static_cast<int64_t>(seed);
    if (cj.contains("values")) c.values = ordered(cj["values"], st.axes);
    for (const auto& [k, v] : c.values)
      if (std::find(st.axes.begin(), st.axes.end(), k) == st.axes.end()) c.other_options.push_back(k + "=" + v);
    if (cj.contains("labels")) c.labels = ordered(cj["labels"], st.axes);
    // A value without a label shows as itself.
    for (const auto& [k, v] : c.values) {
      const bool labelled = std::any_of(c.labels.begin(), c.labels.end(), [&](const auto& l) { return l.first == k; });
      if (!labelled) c.labels.emplace_back(k, v);
    }
    st.cells.push_back(std::move(c));
  }
  return st;
}

// ---------------------------------------------------------------------------------------
// Per group
// ---------------------------------------------------------------------------------------

namespace {
struct GroupStats {
  MeanStd score;
  double params = NAN, active_params = NAN, macs = NAN, images_per_s = NAN;
  double routing_degree = NAN, distinct_paths = NAN;
  int64_t moe_layers = -1;  // of the first done seed with a summary; -1: unknown
  bool dense = false;
  std::string notes;
};
}  // namespace

static GroupStats group_stats(const Group& g) {
  GroupStats s;
  std::vector<double> score, params, active, macs, ips, degree, paths;
  for (const Cell* c : g.done) {
    score.push_back(c->score);
    params.push_back(c->params);
    active.push_back(c->active_params);
    macs.push_back(c->macs);
    ips.push_back(c->images_per_s);
    degree.push_back(c->routing_degree);
    paths.push_back(c->distinct_paths);
    if (s.moe_layers < 0 && c->moe_layers >= 0) s.moe_layers = c->moe_layers;
  }
  s.score = mean_std(score);
  s.params = mean_std(params).mean;
  s.active_params = mean_std(active).mean;
  s.macs = mean_std(macs).mean;
  s.images_per_s = mean_std(ips).mean;
  s.routing_degree = mean_std(degree).mean;
  s.distinct_paths = mean_std(paths).mean;
  for (const Cell* c : g.cells)
    if (c->experts == 0) s.dense = true;
  if (s.moe_layers == 0) s.dense = true;

  // What keeps the group from being complete: per state, in order of seriousness, then any
  // state this report does not know by its own name.
  std::vector<std::string> order{"failed", "interrupted", "running", "pending", "unknown"};
  for (const Cell* c : g.cells)
    if (!c->done() && std::find(order.begin(), order.end(), c->state) == order.end()) order.push_back(c->state);
  std::vector<std::string> notes;
  for (const std::string& state : order) {
    int64_t n = 0;
    const Cell* first = nullptr;
    for (const Cell* c : g.cells)
      if (c->state == state) ++n, first = first ? first : c;
    if (n == 0) continue;
    std::string note = std::to_string(n) + " " + state;
    if (state == "failed" && !first->error.empty()) note += ": " + first_line(first->error);
    notes.push_back(note);
  }
  int64_t no_summary = 0;
  for (const Cell* c : g.cells) no_summary += c->done() && !c->has_summary;
  if (no_summary)
    notes.push_back(std::to_string(no_summary) + " done without eval/summary.json (score from metrics.jsonl)");
  // An explicit extra cell sets options the axis columns cannot show.
  if (const Cell& first = *g.cells.front(); !first.other_options.empty())
    notes.insert(notes.begin(), "sets " + join(first.other_options, " "));
  s.notes = join(notes, "; ");
  return s;
}

// Labels without the placement axes, space-separated: the series a group's point belongs to.
static std::string series_name(const Cell& first) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : first.labels)
    if (!kPlacementAxes.count(k) && !v.empty()) parts.push_back(v);
  return join(parts, " ");
}

// Mean over seeds at the steps every seed logged; NaN where a seed's value is missing.
static std::map<int64_t, double> mean_over_seeds(const std::vector<const std::map<int64_t, double>*>& runs) {
  std::map<int64_t, double> out;
  if (runs.empty()) return out;
  for (const auto& [step, v0] : *runs[0]) {
    double sum = v0;
    bool everywhere = true;
    for (size_t i = 1; i < runs.size() && everywhere; ++i) {
      const auto it = runs[i]->find(step);
      if (it == runs[i]->end()) everywhere = false;
      else sum += it->second;
    }
    if (everywhere) out[step] = sum / static_cast<double>(runs.size());
  }
  return out;
}

static bool drawable(const plot::Series& s) {
  for (size_t i = 0; i < s.xs.size(); ++i)
    if (std::isfinite(s.xs[i]) && std::isfinite(s.ys[i])) return true;
  return false;
}

// ---------------------------------------------------------------------------------------
// The outputs
// ---------------------------------------------------------------------------------------

namespace {
// What every output reads, and what they report back.
struct Report {
  fs::path dir;
  Study study;
  std::vector<Group> groups;       // first-appearance order
  std::vector<GroupStats> stats;   // per group
  bool top1_task = true;
  std::string score_key, score_title, score_line;
  StudyReport out;
  std::vector<std::string> notes;     // what was skipped, for StudyReport::efficient
  std::vector<std::string> pictures;  // PNGs written, for report.md
  std::string md_table;

  std::string title() const { return study.name.empty() ? dir.filename().string() : study.name; }
  // The path of an output file, recorded as written.
  std::string path(const std::string& name) {
    out.files.push_back(name);
    return (dir / name).string();
  }
  void line_chart(const std::string& name, const std::vector<plot::Series>& series, const std::string& chart_title,
                  const std::string& x_label, const std::string& y_label, const std::string& why_none,
                  const plot::LineChartOptions& options = {}) {
    if (series.empty()) {
      notes.push_back("no " + name + ": " + why_none);
      return;
    }
    plot::line_chart_png(path(name), series, chart_title, x_label, y_label, options);
    pictures.push_back(name);
  }
};
}  // namespace

static void write_runs(Report& r) {
  std::vector<std::string> header{"cell", "group", "seed", "state", "error"};
  header.insert(header.end(), r.study.axes.begin(), r.study.axes.end());
  for (const char* h : {"score", "params", "active_params", "macs", "train_images_per_s", "routing_degree",
                        "distinct_paths", "routed_experts_per_image", "seconds"})
    header.push_back(h);
  std::vector<std::vector<std::string>> rows;
  for (const Cell& c : r.study.cells) {
    std::vector<std::string> row{c.name, c.group, c.seed >= 0 ? std::to_string(c.seed) : "", c.state, c.error};
    for (const std::string& a : r.study.axes) row.push_back(c.value(a));
    for (double v : {c.score, c.params, c.active_params, c.macs, c.images_per_s, c.routing_degree, c.distinct_paths,
                     c.routed_experts_per_image, c.seconds})
      row.push_back(csv_num(v));
    rows.push_back(row);
  }
  plot::csv_write(r.path("runs.csv"), header, rows);
}

static void write_tables(Report& r) {
  const std::vector<std::string>& axes = r.study.axes;
  std::vector<std::string> header{"group"};
  header.insert(header.end(), axes.begin(), axes.end());
  for (const std::string& h : {std::string("seeds_done"), std::string("seeds_planned"), r.score_key,
                               r.score_key + "_std", std::string("params"), std::string("active_params"),
                               std::string("macs"), std::string("train_images_per_s"), std::string("routing_degree"),
                               std::string("distinct_paths"), std::string("notes")})
    header.push_back(h);
  std::vector<std::string> md_header{"group"};
  md_header.insert(md_header.end(), axes.begin(), axes.end());
  for (const std::string& h : {std::string("seeds"), r.score_title, std::string("params"), std::string("active"),
                               std::string("MACs"), std::string("img/s"), std::string("routing degree"),
                               std::string("distinct paths"), std::string("notes")})
    md_header.push_back(h);
  // Names and values left-aligned, numbers right-aligned.
  std::string& md = r.md_table;
  md = "| " + join(md_header, " | ") + " |\n|";
  for (size_t i = 0; i < md_header.size(); ++i)
    md += i <= axes.size() || i + 1 == md_header.size() ? " :--- |" : " ---: |";
  md += "\n";

  std::vector<std::vector<std::string>> rows;
  for (size_t gi = 0; gi < r.groups.size(); ++gi) {
    const Group& g = r.groups[gi];
    const GroupStats& s = r.stats[gi];
    const Cell& first = *g.cells.front();
    std::vector<std::string> row{g.name}, cells{md_cell(g.name)};
    for (const std::string& a : axes) {
      row.push_back(first.value(a));
      cells.push_back(first.value(a).empty() ? kNone : md_cell(first.value(a)));
    }
    row.push_back(std::to_string(g.done.size()));
    row.push_back(std::to_string(g.cells.size()));
    for (double v : {s.score.mean, s.score.std, s.params, s.active_params, s.macs, s.images_per_s, s.routing_degree,
                     s.distinct_paths})
      row.push_back(csv_num(v));
    row.push_back(s.notes);
    rows.push_back(row);
    for (const std::string& v :
         {std::to_string(g.done.size()) + "/" + std::to_string(g.cells.size()), md_percent(s.score), md_count(s.params),
          md_count(s.active_params), md_macs(s.macs), md_number(s.images_per_s, "%.0f"),
          md_number(s.routing_degree, "%.4g"), md_number(s.distinct_paths, "%.1f"), md_cell(s.notes)})
      cells.push_back(v);
    md += "| " + join(cells, " | ") + " |\n";
  }
  plot::csv_write(r.path("table.csv"), header, rows);
  io::write_file_atomic(r.path("table.md"),
                        "# Study " + r.title() + ": results by group\n\n" + r.score_line + "\n\n" + md, "study report");
}

// Score against MoE depth. A dense model has no depth: its score is drawn flat across the
// range as the bar the MoE lines are read against.
static void write_accuracy_vs_layers(Report& r) {
  struct Point {
    std::string series;
    int64_t layers;
    MeanStd score;
    bool dense;
  };
  std::vector<Point> points;
  for (size_t gi = 0; gi < r.groups.size(); ++gi) {
    const GroupStats& s = r.stats[gi];
    if (!std::isfinite(s.score.mean)) continue;
    std::string name = series_name(*r.groups[gi].cells.front());
    if (s.dense) {
      if (name.find("dense") == std::string::npos) name = name.empty() ? "dense" : "dense " + name;
      points.push_back({name, 0, s.score, true});
    } else if (s.moe_layers > 0) {
      points.push_back({name.empty() ? "ViMoE" : name, s.moe_layers, s.score, false});
    }
  }
  std::stable_sort(points.begin(), points.end(), [](const Point& a, const Point& b) { return a.layers < b.layers; });
  double lo = INFINITY, hi = -INFINITY;
  for (const Point& p : points)
    if (!p.dense) lo = std::min(lo, static_cast<double>(p.layers)), hi = std::max(hi, static_cast<double>(p.layers));
  if (!std::isfinite(lo)) lo = hi = 0;
  std::vector<std::vector<std::string>> rows;
  std::vector<plot::Series> series;
  for (const Point& p : points) {
    rows.push_back({p.series, std::to_string(p.layers), csv_num(p.score.mean), csv_num(p.score.std),
                    std::to_string(p.score.n)});
    auto it = std::find_if(series.begin(), series.end(), [&](const plot::Series& s) { return s.name == p.series; });
    if (it == series.end()) it = series.insert(series.end(), plot::Series{p.series, {}, {}});
    if (p.dense) {
      it->xs = {lo, hi};
      it->ys = {100 * p.score.mean, 100 * p.score.mean};
    } else {
      it->xs.push_back(static_cast<double>(p.layers));
      it->ys.push_back(100 * p.score.mean);
    }
  }
  plot::csv_write(r.path("accuracy_vs_layers.csv"), {"series", "moe_layers", "score_mean", "score_std", "seeds"}, rows);
  r.line_chart("accuracy_vs_layers.png", series, r.score_title + " against the number of MoE layers (mean over seeds)",
               "MoE layers", r.score_title + " (%)",
               "no done group has both a score and a known number of MoE layers", {.integer_x = true});
}

// Training loss and validation score per group, averaged over its done seeds.
static void write_group_curves(Report& r) {
  std::vector<plot::Series> losses, vals;
  std::vector<std::vector<std::string>> rows;
  for (const Group& g : r.groups) {
    if (g.done.empty()) continue;
    std::vector<const std::map<int64_t, double>*> loss_runs, val_runs;
    for (const Cell* c : g.done) {
      loss_runs.push_back(&c->loss);
      val_runs.push_back(r.top1_task ? &c->val_top1 : &c->val_miou);
    }
    const std::map<int64_t, double> loss = mean_over_seeds(loss_runs), val = mean_over_seeds(val_runs);
    plot::Series ls{g.name, {}, {}}, vs{g.name, {}, {}};
    for (const auto& [step, v] : loss) ls.xs.push_back(static_cast<double>(step)), ls.ys.push_back(v);
    for (const auto& [step, v] : val) vs.xs.push_back(static_cast<double>(step)), vs.ys.push_back(100 * v);
    if (drawable(ls)) losses.push_back(ls);
    if (drawable(vs)) vals.push_back(vs);
    std::set<int64_t> steps;
    for (const auto& kv : loss) steps.insert(kv.first);
    for (const auto& kv : val) steps.insert(kv.first);
    for (int64_t step : steps) {
      const auto l = loss.find(step), v = val.find(step);
      rows.push_back({g.name, std::to_string(g.done.size()), std::to_string(step),
                      l == loss.end() ? "" : csv_num(l->second), v == val.end() ? "" : csv_num(v->second)});
    }
  }
  plot::csv_write(r.path("curves.csv"), {"group", "seeds", "step", "loss_avg", "val_" + r.score_key}, rows);
  r.line_chart("curves_loss.png", losses, "Training loss (mean over seeds)", "step", "loss",
               "no done cell logged a finite training loss");
  r.line_chart("curves_val.png", vals, "Validation " + r.score_title + " (mean over seeds)", "step",
               r.score_title + " (%)", "no done cell logged a finite validation " + r.score_title);
}

// Per MoE block, the mean class-expert NMI over a group's done seeds (NaN: none finite).
static std::map<int64_t, double> block_nmi(const Group& g) {
  std::map<int64_t, std::vector<double>> per_block;
  for (const Cell* c : g.done)
    for (const auto& [block, nmi] : c->nmi) per_block[block].push_back(nmi);
  std::map<int64_t, double> out;
  for (const auto& [block, v] : per_block) out[block] = mean_std(v).mean;
  return out;
}

static void write_specialization(Report& r) {
  std::vector<std::vector<std::string>> rows;
  std::vector<plot::Series> series;
  for (const Group& g : r.groups) {
    for (const Cell* c : g.done)
      for (const auto& [block, nmi] : c->nmi)
        rows.push_back({g.name, c->seed >= 0 ? std::to_string(c->seed) : "", std::to_string(block), csv_num(nmi)});
    plot::Series s{g.name, {}, {}};
    for (const auto& [block, nmi] : block_nmi(g)) s.xs.push_back(static_cast<double>(block)), s.ys.push_back(nmi);
    if (drawable(s)) series.push_back(s);
  }
  plot::csv_write(r.path("specialization.csv"), {"group", "seed", "block", "class_expert_nmi"}, rows);
  r.line_chart("specialization.png", series, "Class-expert NMI per MoE layer (mean over seeds)", "block", "NMI",
               "no done cell has an MoE layer with a finite class-expert NMI",
               {.integer_x = true, .y_include_lo = 0, .y_include_hi = 1});
}

// The rule is in the header. Returns one line per chosen group.
static std::vector<std::string> write_efficient(Report& r, const StudyReportOptions& options) {
  std::vector<size_t> chosen;
  if (!options.from.empty()) {
    for (const std::string& f : options.from)
      for (size_t gi = 0; gi < r.groups.size(); ++gi)
        if (r.groups[gi].name == f && std::find(chosen.begin(), chosen.end(), gi) == chosen.end()) chosen.push_back(gi);
  } else {
    int64_t most = 0;
    for (size_t gi = 0; gi < r.groups.size(); ++gi)
      if (!r.groups[gi].done.empty()) most = std::max(most, r.stats[gi].moe_layers);
    for (size_t gi = 0; gi < r.groups.size(); ++gi)
      if (most > 0 && !r.groups[gi].done.empty() && r.stats[gi].moe_layers == most) chosen.push_back(gi);
    if (chosen.empty()) r.notes.push_back("no efficient-ViMoE recommendation: no done group has an MoE layer");
  }
  std::vector<std::string> lines;
  std::vector<std::vector<std::string>> rows;
  for (size_t gi : chosen) {
    const Group& g = r.groups[gi];
    if (g.done.empty()) {
      lines.push_back(g.name + ": no done seed, nothing to rank");
      continue;
    }
    if (r.stats[gi].moe_layers < 0) {
      lines.push_back(g.name + ": no done seed has an eval/summary.json, nothing to rank");
      continue;
    }
    const std::map<int64_t, double> nmi = block_nmi(g);
    if (nmi.empty()) {
      lines.push_back(g.name + ": no MoE layer (dense), nothing to rank");
      continue;
    }
    std::vector<std::pair<int64_t, double>> ranked(nmi.begin(), nmi.end());
    // Most specialised first (ties: lower block first); blocks without a finite NMI last.
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      const bool fa = std::isfinite(a.second), fb = std::isfinite(b.second);
      if (fa != fb) return fa;
      return fa && a.second > b.second;
    });
    const double best = ranked.front().second;
    if (!std::isfinite(best)) {
      lines.push_back(g.name + ": no finite class-expert NMI in its " + std::to_string(nmi.size()) +
                      " MoE layer(s) (no routing decisions recorded), nothing to recommend");
      for (const auto& kv : ranked) rows.push_back({g.name, std::to_string(kv.first), "", "", "false"});
      continue;
    }
    const double cut = options.keep_threshold * best;
    std::vector<std::string> listed, kept_text;
    std::vector<int64_t> kept;
    for (size_t i = 0; i < ranked.size(); ++i) {
      const auto [block, v] = ranked[i];
      const bool finite = std::isfinite(v), keep = finite && v >= cut;
      listed.push_back("block " + std::to_string(block) + " " + (finite ? format("%.3f", v) : std::string("-")));
      if (keep) kept.push_back(block);
      rows.push_back({g.name, std::to_string(block), csv_num(v), finite ? std::to_string(i + 1) : "",
                      keep ? "true" : "false"});
    }
    std::sort(kept.begin(), kept.end());  // as vimoe-train's --moe-blocks lists them
    for (int64_t b : kept) kept_text.push_back(std::to_string(b));
    lines.push_back(g.name + ": " + join(listed, ", ") + " -> keep --moe-blocks " + join(kept_text, ",") +
                    format(" (NMI >= %.2f x %.3f)", options.keep_threshold, best));
  }
  plot::csv_write(r.path("efficient_vimoe.csv"), {"group", "block", "nmi", "rank", "kept"}, rows);
  return lines;
}

static void write_report_md(Report& r, const std::vector<std::string>& efficient, double keep_threshold) {
  std::string md = "# Study " + r.title() + "\n\n" + r.score_line + "\n\n" +
                   format("Cells: %lld done, %lld failed, %lld unfinished, of %lld.\n\n",
                          static_cast<long long>(r.out.done), static_cast<long long>(r.out.failed),
                          static_cast<long long>(r.out.unfinished), static_cast<long long>(r.study.cells.size())) +
                   "## Results by group\n\n" + r.md_table +
                   "\nPer cell: [runs.csv](runs.csv); this table: [table.csv](table.csv).\n\n## Efficient ViMoE\n\n" +
                   format("Per chosen group, its MoE blocks ranked by mean class-expert NMI over the done seeds; kept: "
                          "the blocks with NMI >= %.2f x the group's largest (relative, since NMI's scale depends on "
                          "the numbers of experts and classes).\n\n",
                          keep_threshold);
  md += efficient.empty() ? std::string("(none)\n") : "```\n" + join(efficient, "\n") + "\n```\n";
  if (!r.notes.empty()) {
    md += "\n";
    for (const std::string& n : r.notes) md += "- " + n + "\n";
  }
  if (!r.pictures.empty()) {
    md += "\n## Figures\n\n";
    for (const std::string& p : r.pictures) md += "![" + fs::path(p).stem().string() + "](" + p + ")\n\n";
  }
  io::write_file_atomic(r.path("report.md"), md, "study report");
}

// ---------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------

StudyReport write_study_report(const std::string& study_dir, const StudyReportOptions& options) {
  VIMOE_CHECK(std::isfinite(options.keep_threshold) && options.keep_threshold >= 0 && options.keep_threshold <= 1,
              "study report: the keep threshold is a fraction of the group's largest NMI, in [0, 1]; found ",
              options.keep_threshold);
  Report r;
  r.dir = fs::path(study_dir);
  r.study = read_study(r.dir);
  for (Cell& c : r.study.cells) {
    const fs::path cdir = r.dir / c.name;
    read_status(c, cdir);
    if (const std::optional<json> cfg = read_object_lenient(cdir / "config.json")) {
      const double e = number(*cfg, "experts");
      if (std::isfinite(e)) c.experts = static_cast<int64_t>(e);
    }
    // Only a done cell's evaluation describes its final model; others may hold a stale one.
    if (c.done()) read_summary(c, cdir / "eval" / "summary.json");
    read_metrics(c, cdir / "metrics.jsonl");
  }

  // The task, from what the done cells were scored with: top-1 unless only mIoU is there.
  bool top1 = false, miou = false, logged_top1 = false, logged_miou = false;
  for (const Cell& c : r.study.cells) {
    if (!c.done()) continue;
    top1 |= c.summary_has_top1, miou |= c.summary_has_miou;
    logged_top1 |= c.logged_top1, logged_miou |= c.logged_miou;
  }
  r.top1_task = top1 || (!miou && (logged_top1 || !logged_miou));
  for (Cell& c : r.study.cells) {
    if (c.has_summary) c.score = r.top1_task ? c.top1 : c.miou;
    else c.score = r.top1_task ? c.last_val_top1 : c.last_val_miou;
  }
  r.score_key = r.top1_task ? "top1" : "miou";
  r.score_title = r.top1_task ? "top-1" : "mIoU";
  r.score_line = std::string("Score: ") +
                 (r.top1_task ? "top-1 accuracy on the validation set"
                              : "mIoU (mean intersection over union) on the validation set") +
                 " (vimoe-eval), mean \xC2\xB1 sample standard deviation over the done seeds.";

  // The cells are not touched from here on: groups point into them.
  for (const Cell& c : r.study.cells) {
    auto it = std::find_if(r.groups.begin(), r.groups.end(), [&](const Group& g) { return g.name == c.group; });
    if (it == r.groups.end()) it = r.groups.insert(r.groups.end(), Group{c.group, {}, {}});
    it->cells.push_back(&c);
    if (c.done()) it->done.push_back(&c);
    if (c.done()) ++r.out.done;
    else if (c.state == "failed") ++r.out.failed;
    else ++r.out.unfinished;
  }
  for (const Group& g : r.groups) r.stats.push_back(group_stats(g));

  // Checked before anything is written, so a typo leaves the directory as it was.
  std::vector<std::string> names;
  for (const Group& g : r.groups) names.push_back(g.name);
  for (const std::string& f : options.from)
    VIMOE_CHECK(std::find(names.begin(), names.end(), f) != names.end(), "study report: --from names \"", f,
                "\", which is not a group of ", (r.dir / "study.json").string(), "; its groups are: ",
                names.empty() ? "(none)" : join(names, ", "));

  write_runs(r);
  write_tables(r);
  std::vector<std::string> efficient;
  if (r.out.done == 0) {
    r.notes.push_back("no cell is done: the figures and the efficient-ViMoE recommendation are skipped");
  } else {
    write_accuracy_vs_layers(r);
    write_group_curves(r);
    write_specialization(r);
    efficient = write_efficient(r, options);
  }
  write_report_md(r, efficient, options.keep_threshold);

  std::vector<std::string> text = efficient;
  text.insert(text.end(), r.notes.begin(), r.notes.end());
  r.out.efficient = text.empty() ? "" : join(text, "\n") + "\n";
  return r.out;
}

}  // namespace vimoe::app
