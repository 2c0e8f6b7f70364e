#include "apps/common/study_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "apps/common/config_file.h"
#include "engine/error.h"
#include "plot/plot.h"

namespace vimoe::app {

namespace fs = std::filesystem;

namespace {

// Where a key was written, for messages: "studies/x.toml, line 7".
std::string at(const std::string& file, const toml::key& key) {
  return file + ", line " + std::to_string(key.source().begin.line);
}

// A table's entries in the order the file writes them (toml++ keeps tables sorted by key).
std::vector<std::pair<const toml::key*, const toml::node*>> in_file_order(const toml::table& t) {
  std::vector<std::pair<const toml::key*, const toml::node*>> out;
  for (const auto& [key, value] : t) out.emplace_back(&key, &value);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    const toml::source_position &pa = a.first->source().begin, &pb = b.first->source().begin;
    return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
  });
  return out;
}

// A float as TOML text: the shortest that reads back as `v`, with a fraction or exponent so
// TOML keeps it a float (2.0, not 2).
std::string float_text(double v) {
  std::string s = plot::csv_number(v);
  if (std::isfinite(v) && s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out + "\"";
}

// A scalar as TOML text, and as the report / cell names show it; false for a non-scalar.
bool scalar_text(const toml::node& n, std::string& toml_text, std::string& display) {
  if (const auto* s = n.as_string()) {
    toml_text = quoted(s->get());
    display = s->get();
  } else if (const auto* i = n.as_integer()) {
    toml_text = display = std::to_string(i->get());
  } else if (const auto* f = n.as_floating_point()) {
    toml_text = display = float_text(f->get());
  } else if (const auto* b = n.as_boolean()) {
    toml_text = display = b->get() ? "true" : "false";
  } else {
    return false;
  }
  return true;
}

// An option's value: a scalar or a list of scalars (moe-blocks = [6, 7]). `display` joins a
// list's items with '+'.
void option_value(const std::string& where, const std::string& key, const toml::node& n, std::string& toml_text,
                  std::string& display) {
  if (scalar_text(n, toml_text, display)) return;
  const toml::array* a = n.as_array();
  VIMOE_CHECK(a != nullptr, where, ": the value of \"", key, "\" must be a string, number, boolean or a list of them");
  toml_text = "[";
  display.clear();
  for (size_t i = 0; i < a->size(); ++i) {
    std::string t, d;
    VIMOE_CHECK(scalar_text(*a->get(i), t, d), where, ": \"", key, "\" holds a list whose item ", i,
                " is not a string, number or boolean");
    toml_text += (i ? ", " : "") + t;
    display += (i ? "+" : "") + d;
  }
  toml_text += "]";
}

const std::map<std::string, std::string>& builtin_labels() {
  static const std::map<std::string, std::string> labels = {
      {"experts", "N"},  {"moe-last", "L"},      {"top-k", "k"},   {"shared-expert", "shared"},
      {"routing", ""},   {"gate", ""},           {"balance", ""},  {"moe-placement", ""},
      {"model", ""},     {"single-router", "single-router"}, {"bpr", "bpr"}};
  return labels;
}

// A name piece: only letters, digits and . + - = stay; the rest become '-'.
std::string sanitized(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-' || c == '=' ? c : '-';
  return out;
}

std::string piece(const std::map<std::string, std::string>& labels, const std::string& key, const toml::node& n,
                  const std::string& display) {
  const auto it = labels.find(key);
  if (n.is_boolean()) {
    if (it == labels.end() || it->second.empty()) return sanitized(key + "=" + display);
    return (n.as_boolean()->get() ? "" : "no-") + sanitized(it->second);
  }
  const std::string prefix = it == labels.end() ? key + "=" : it->second;
  return sanitized(prefix + display);
}

// Overlays `add` on `into`: a key already there takes the new value in place, a new key goes last.
void overlay(std::vector<StudyOption>& into, const std::vector<StudyOption>& add) {
  for (const StudyOption& o : add) {
    auto it = std::find_if(into.begin(), into.end(), [&](const StudyOption& x) { return x.key == o.key; });
    if (it != into.end()) it->value = o.value;
    else into.push_back(o);
  }
}

class StudyReader {
 public:
  StudyReader(std::string file, const std::vector<std::string>& options) : file_(std::move(file)), options_(options) {}

  // An option key of vimoe-train that the study may set.
  void check_option_key(const toml::key& key, const std::string& table) const {
    const std::string k(key.str());
    const std::string where = at(file_, key) + (table.empty() ? "" : " ([" + table + "])");
    if (k == "seed")
      VIMOE_FAIL(where, ": a study sets its runs' seeds with the top-level `seeds = [0, 1, ...]`, not \"seed\"");
    if (k == "out" || k == "resume" || k == "overwrite" || k == "config")
      VIMOE_FAIL(where, ": \"", k, "\" is the study's to set (each cell runs in its own directory under the study's "
                 "`out`, resumes and restarts there; a base config file is the top-level `config`)");
    if (std::find(options_.begin(), options_.end(), k) == options_.end()) {
      const std::string near = closest_option(k, options_);
      VIMOE_FAIL(where, ": unknown vimoe-train option \"", k, "\"", near.empty() ? "" : " (did you mean \"" + near + "\"?)",
                 "; keys are the long option names as config files write them (moe-last = 2)");
    }
  }

  StudyOption option(const toml::key& key, const toml::node& value, const std::string& table,
                     std::string* display = nullptr) const {
    check_option_key(key, table);
    StudyOption o{std::string(key.str()), ""};
    std::string d;
    option_value(at(file_, key), o.key, value, o.value, d);
    if (display) *display = d;
    return o;
  }

  StudySpec read() {
    toml::table root;
    try {
      root = toml::parse_file(file_);
    } catch (const toml::parse_error& e) {
      const toml::source_position& p = e.source().begin;
      if (p.line == 0) VIMOE_FAIL("study ", file_, ": ", e.description());
      VIMOE_FAIL("study ", file_, ", line ", p.line, ", column ", p.column, ": ", e.description());
    }
    StudySpec spec;
    spec.file = fs::absolute(file_).lexically_normal().string();
    spec.name = fs::path(file_).stem().string();
    std::map<std::string, std::string> labels = builtin_labels();
    const toml::table* axes = nullptr;
    const toml::table* base = nullptr;
    const toml::array* cells = nullptr;
    static const std::vector<std::string> top = {"name", "out", "config", "seeds", "base", "axes", "labels", "cells"};
    for (const auto& [key, value] : in_file_order(root)) {
      const std::string k(key->str());
      const std::string where = at(file_, *key);
      if (k == "name" || k == "out" || k == "config") {
        VIMOE_CHECK(value->is_string() && !value->as_string()->get().empty(), where, ": \"", k,
                    "\" must be a non-empty string");
        const std::string v = value->as_string()->get();
        if (k == "name") spec.name = v;
        else if (k == "out") spec.out = v;
        else spec.base_config = v;
      } else if (k == "seeds") {
        const toml::array* a = value->as_array();
        VIMOE_CHECK(a && !a->empty(), where, ": \"seeds\" must be a non-empty list of integers (seeds = [0, 1])");
        spec.seeds.clear();
        for (const toml::node& s : *a) {
          VIMOE_CHECK(s.is_integer() && s.as_integer()->get() >= 0, where, ": \"seeds\" holds ", s.type(),
                      " where a non-negative integer was expected");
          const auto seed = static_cast<uint64_t>(s.as_integer()->get());
          VIMOE_CHECK(std::find(spec.seeds.begin(), spec.seeds.end(), seed) == spec.seeds.end(), where,
                      ": seed ", seed, " is listed twice");
          spec.seeds.push_back(seed);
        }
      } else if (k == "base" || k == "axes" || k == "labels") {
        VIMOE_CHECK(value->is_table(), where, ": \"", k, "\" must be a table ([", k, "])");
        if (k == "base") base = value->as_table();
        else if (k == "axes") axes = value->as_table();
        else
          for (const auto& [lk, lv] : *value->as_table()) {
            VIMOE_CHECK(lv.is_string(), at(file_, lk), ": a label must be a string ([labels] ", lk.str(), " = \"L\")");
            labels[std::string(lk.str())] = lv.as_string()->get();
          }
      } else if (k == "cells") {
        VIMOE_CHECK(value->is_array_of_tables(), where, ": \"cells\" must be an array of tables ([[cells]])");
        cells = value->as_array();
      } else {
        const std::string near = closest_option(k, top);
        VIMOE_FAIL(where, ": unknown study key \"", k, "\"", near.empty() ? "" : " (did you mean \"" + near + "\"?)",
                   "; a study has name, out, config, seeds, [base], [axes], [labels] and [[cells]], and vimoe-train "
                   "options go under [base]");
      }
    }
    if (spec.out.empty()) spec.out = (fs::path("runs") / "studies" / spec.name).string();
    VIMOE_CHECK(std::all_of(spec.name.begin(), spec.name.end(),
                            [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("._+-=", c); }),
                "study ", file_, ": its name \"", spec.name, "\" names a folder: use letters, digits and . _ + - = only");

    if (!spec.base_config.empty()) {
      VIMOE_CHECK(fs::is_regular_file(spec.base_config), "study ", file_, ": the base config file \"",
                  spec.base_config, "\" does not exist (relative paths are read from the working directory, ",
                  fs::current_path().string(), ")");
      spec.base_config = fs::absolute(spec.base_config).lexically_normal().string();
      check_config_file(spec.base_config, options_);
      const toml::table cfg = toml::parse_file(spec.base_config);
      for (const auto& [key, value] : in_file_order(cfg)) {
        const std::string k(key->str());
        if (k == "seed" || k == "out" || k == "resume" || k == "overwrite") continue;  // the study's to set
        StudyOption o{k, ""};
        std::string display;
        option_value(at(spec.base_config, *key), k, *value, o.value, display);
        spec.base.push_back(o);
      }
    }
    if (base) {
      std::vector<StudyOption> opts;
      for (const auto& [key, value] : in_file_order(*base)) opts.push_back(option(*key, *value, "base"));
      overlay(spec.base, opts);
    }
    if (axes)
      for (const auto& [key, value] : in_file_order(*axes)) spec.axes.push_back(axis(*key, *value, labels));
    if (cells)
      for (const toml::node& c : *cells) spec.extra_cells.push_back(explicit_cell(*c.as_table(), labels));
    VIMOE_CHECK(!spec.axes.empty() || !spec.extra_cells.empty(), "study ", file_,
                ": no cells: give [axes] (lists of option values) or [[cells]]");
    return spec;
  }

 private:
  StudyAxis axis(const toml::key& key, const toml::node& value, const std::map<std::string, std::string>& labels) {
    const std::string k(key.str());
    const std::string where = at(file_, key) + " ([axes])";
    const toml::array* a = value.as_array();
    VIMOE_CHECK(a && !a->empty(), where, ": the axis \"", k, "\" must be a non-empty list of values (", k,
                " = [1, 2, 4])");
    StudyAxis ax{k, {}};
    if (a->is_array_of_tables()) {
      // A bundle: each value sets several options.
      for (size_t i = 0; i < a->size(); ++i) {
        const toml::table& t = *a->get(i)->as_table();
        AxisValue v;
        std::vector<std::string> pieces;
        for (const auto& [ok, ov] : in_file_order(t)) {
          if (ok->str() == "name") {
            VIMOE_CHECK(ov->is_string(), at(file_, *ok), ": a bundle's name must be a string");
            v.label = sanitized(ov->as_string()->get());
            v.display = ov->as_string()->get();
            continue;
          }
          std::string display;
          v.options.push_back(option(*ok, *ov, "axes." + k, &display));
          pieces.push_back(piece(labels, std::string(ok->str()), *ov, display));
        }
        if (v.label.empty()) {
          for (const std::string& p : pieces) v.label += (v.label.empty() ? "" : "-") + p;
          if (v.label.empty()) v.label = k + "=default";
          v.display = v.label;
        }
        ax.values.push_back(v);
      }
    } else {
      check_option_key(key, "axes");
      for (size_t i = 0; i < a->size(); ++i) {
        const toml::node& n = *a->get(i);
        VIMOE_CHECK(!n.is_table(), where, ": the axis \"", k, "\" mixes tables and values");
        AxisValue v;
        StudyOption o{k, ""};
        option_value(where, k, n, o.value, v.display);
        v.options.push_back(o);
        v.label = piece(labels, k, n, v.display);
        ax.values.push_back(v);
      }
    }
    std::set<std::string> seen;
    for (const AxisValue& v : ax.values)
      VIMOE_CHECK(seen.insert(v.label).second, where, ": the axis \"", k, "\" has two values named \"", v.label,
                  "\" (give bundles distinct names)");
    return ax;
  }

  StudySpec::ExplicitCell explicit_cell(const toml::table& t,
                                        const std::map<std::string, std::string>& labels) {
    StudySpec::ExplicitCell c;
    std::string name;
    for (const auto& [key, value] : in_file_order(t)) {
      if (key->str() == "name") {
        VIMOE_CHECK(value->is_string() && !value->as_string()->get().empty(), at(file_, *key),
                    ": a cell's name must be a non-empty string");
        name = value->as_string()->get();
        continue;
      }
      std::string display;
      c.options.push_back(option(*key, *value, "cells", &display));
      c.labels.push_back(piece(labels, std::string(key->str()), *value, display));
      c.displays.push_back(display);
      c.label += (c.label.empty() ? "" : "_") + c.labels.back();
    }
    if (!name.empty()) c.label = sanitized(name);
    c.named = !name.empty();
    if (c.label.empty()) c.label = "base";
    return c;
  }

  std::string file_;
  const std::vector<std::string>& options_;
};

}  // namespace

StudySpec read_study(const std::string& path, const std::vector<std::string>& train_options) {
  return StudyReader(path, train_options).read();
}

std::vector<StudyCell> expand_cells(const StudySpec& spec) {
  std::vector<StudyCell> cells;
  auto add = [&](const std::string& group, std::vector<std::pair<std::string, std::string>> values,
                 std::vector<std::pair<std::string, std::string>> labels, const std::vector<StudyOption>& options,
                 bool extra) {
    for (uint64_t seed : spec.seeds) {
      StudyCell c;
      c.group = group.empty() ? "base" : group;
      c.seed = seed;
      c.name = c.group + "_seed" + std::to_string(seed);
      c.extra = extra;
      c.values = values;
      c.labels = labels;
      c.options = spec.base;
      overlay(c.options, options);
      overlay(c.options, {{"seed", std::to_string(seed)}});
      cells.push_back(std::move(c));
    }
  };
  if (!spec.axes.empty()) {
    std::vector<size_t> index(spec.axes.size(), 0);
    for (;;) {
      std::string group;
      std::vector<std::pair<std::string, std::string>> values, labels;
      std::vector<StudyOption> options;
      for (size_t a = 0; a < spec.axes.size(); ++a) {
        const AxisValue& v = spec.axes[a].values[index[a]];
        group += (group.empty() ? "" : "_") + v.label;
        values.emplace_back(spec.axes[a].key, v.display);
        labels.emplace_back(spec.axes[a].key, v.label);
        overlay(options, v.options);
      }
      add(group, values, labels, options, false);
      // The last axis varies fastest.
      size_t a = spec.axes.size();
      while (a > 0 && ++index[a - 1] == spec.axes[a - 1].values.size()) index[--a] = 0;
      if (a == 0) break;
    }
  }
  for (const StudySpec::ExplicitCell& e : spec.extra_cells) {
    std::vector<std::pair<std::string, std::string>> values, labels;
    for (size_t i = 0; i < e.options.size(); ++i) {
      values.emplace_back(e.options[i].key, e.displays[i]);
      labels.emplace_back(e.options[i].key, e.named ? "" : e.labels[i]);
    }
    // A named cell shows by its name (the dense twin as "dense", not "N0").
    if (e.named) labels.emplace_back("cell", e.label);
    add(e.label, values, labels, e.options, true);
  }
  std::set<std::string> names;
  for (const StudyCell& c : cells)
    VIMOE_CHECK(names.insert(c.name).second, "study ", spec.file, ": two cells are both named \"", c.name,
                "\" (an explicit cell's name or options repeat a grid cell's: give it a distinct `name`)");
  return cells;
}

std::string cell_config_toml(const StudySpec& spec, const StudyCell& cell) {
  std::ostringstream os;
  os << "# Cell " << cell.name << " of the study " << spec.name << " (" << spec.file << "), written by vimoe-study.\n";
  if (!spec.base_config.empty()) os << "# Base: " << spec.base_config << ", then the study's [base] and the cell's values.\n";
  for (const StudyOption& o : cell.options) os << o.key << " = " << o.value << "\n";
  return os.str();
}

nlohmann::json study_json(const StudySpec& spec, const std::vector<StudyCell>& cells) {
  nlohmann::json j = {{"name", spec.name}, {"study_file", spec.file}, {"base_config", spec.base_config},
                      {"seeds", spec.seeds}};
  j["axes"] = nlohmann::json::array();
  for (const StudyAxis& a : spec.axes) j["axes"].push_back(a.key);
  j["cells"] = nlohmann::json::array();
  for (const StudyCell& c : cells) {
    nlohmann::json values = nlohmann::json::object(), labels = nlohmann::json::object();
    for (const auto& [k, v] : c.values) values[k] = v;
    for (const auto& [k, v] : c.labels) labels[k] = v;
    j["cells"].push_back({{"name", c.name}, {"group", c.group}, {"seed", c.seed}, {"extra", c.extra},
                          {"values", values}, {"labels", labels}});
  }
  return j;
}

}  // namespace vimoe::app
