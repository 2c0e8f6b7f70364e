// A study file (studies/*.toml) and the grid of runs it names: what `vimoe-study run` trains.
//
//   name  = "cifar10_layer_scan"            # default: the file's stem
//   out   = "runs/studies/cifar10_layer_scan"  # default: runs/studies/<name>
//   config = "configs/cifar10_vimoe.toml"   # optional: a vimoe-train config file, the base
//   seeds = [0, 1]                          # default [0]; every cell runs once per seed
//   [base]                                  # vimoe-train options over the config file's
//   epochs = 10
//   [axes]                                  # lists of values, combined as a product,
//   moe-last = [1, 2, 4, 8]                 # in the order the file writes them
//   shared-expert = [false, true]
//   variant = [{ name = "token", routing = "token", top-k = 2 }, { name = "image" }]
//   [labels]                                # optional: how an axis shows in cell names
//   moe-last = "L"
//   [[cells]]                               # optional explicit cells beside the product:
//   name = "dense"                          # base + these options (no axis values)
//   experts = 0
//   moe-last = 0
//
// Keys are vimoe-train's long option names as its config files spell them (moe-last, not
// moe_last), checked against the program's options; `out`, `resume`, `overwrite` and
// `config` belong to the study, and a seed is given by `seeds`. An axis whose values are
// inline tables sets several options per value (a bundle; `name` names the value). Relative
// paths (the config file, data directories) are read against the working directory, as
// vimoe-train reads them.
//
// Each cell is one run: the base config file's options, then [base], then the cell's axis
// values (or explicit options), then its seed, written out as a cell.toml that vimoe-train
// reads. Its name joins each axis' label and value ("N8_L2_shared_seed0"): built-in short
// labels for the usual axes (experts N, moe-last L, top-k k, shared-expert shared, no label
// for routing, gate, balance and placement names), `key=` for the rest; a boolean with a
// label shows as the label or "no-<label>".
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vimoe::app {

// One option set by the study: its key (vimoe-train's long name) and value as TOML text.
struct StudyOption {
  std::string key, value;
};

// One value of an axis: the options it sets (one, or a bundle's) and how it shows in names.
struct AxisValue {
  std::vector<StudyOption> options;
  std::string label;    // the cell-name piece ("L2", "shared", "token")
  std::string display;  // the value as the report's tables show it ("2", "true", "token")
};

struct StudyAxis {
  std::string key;  // an option, or a bundle's name
  std::vector<AxisValue> values;
};

struct StudySpec {
  std::string file;         // the study file, absolute
  std::string name, out;    // out: the study's directory
  std::string base_config;  // a vimoe-train config file, absolute; "" for none
  std::vector<StudyOption> base;  // the config file's options overlaid with [base], in order
  std::vector<StudyAxis> axes;
  struct ExplicitCell {
    std::string label;  // its group name: `name`, or its options' labels joined
    std::vector<StudyOption> options;
    std::vector<std::string> labels, displays;  // per option
    bool named = false;                         // `name` given
  };
  std::vector<ExplicitCell> extra_cells;
  std::vector<uint64_t> seeds = {0};
};

struct StudyCell {
  std::string name;   // the directory name: group + "_seed<s>"
  std::string group;  // the configuration without its seed (seeds of a group are aggregated)
  uint64_t seed = 0;
  bool extra = false;  // one of [[cells]]
  // Per axis it sets (explicit cells: per option), in order: its display value and label; a
  // named explicit cell has empty labels and its name under "cell".
  std::vector<std::pair<std::string, std::string>> values, labels;
  std::vector<StudyOption> options;  // everything the run is given, base included, seed last
};

// Reads and checks a study file. `train_options`: vimoe-train's long option names (for the
// keys). Throws vimoe::Error naming the file, line and key for a syntax error, an unknown key
// (with the closest option), a key the study owns, an empty axis, a value that is not a
// scalar or list of scalars, or a base config file that does not pass vimoe-train's check.
StudySpec read_study(const std::string& path, const std::vector<std::string>& train_options);

// The product of the axes (in the file's order, the last axis varying fastest), then the
// explicit cells, each once per seed (seeds innermost). Throws when two cells get the same
// name (a label or bundle name that does not tell them apart).
std::vector<StudyCell> expand_cells(const StudySpec& spec);

// The cell's vimoe-train config file: a header comment, then `key = value` lines.
std::string cell_config_toml(const StudySpec& spec, const StudyCell& cell);

// study.json, what `vimoe-study report` reads: the study's name and file, its axes, seeds
// and cells (name, group, seed, extra, values and labels by axis).
nlohmann::json study_json(const StudySpec& spec, const std::vector<StudyCell>& cells);

}  // namespace vimoe::app
