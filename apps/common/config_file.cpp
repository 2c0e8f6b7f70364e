#include "apps/common/config_file.h"

#include <algorithm>
#include <cctype>
#include <toml++/toml.h>

#include "engine/error.h"

namespace vimoe::app {

namespace {

void collect_names(const CLI::App& app, std::vector<std::string>& out) {
  for (const CLI::Option* opt : app.get_options())
    for (const std::string& n : opt->get_lnames()) out.push_back(n);
  // Option groups are nameless subcommands whose options the parent parses.
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return s->get_name().empty(); }))
    collect_names(*sub, out);
}

std::string normalised(const std::string& s) {
  std::string out = s;
  for (char& c : out) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string suggestion(const std::string& key, const std::vector<std::string>& options) {
  const std::string near = closest_option(key, options);
  return near.empty() ? "" : "; did you mean \"" + near + "\"?";
}

}  // namespace

std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> out;
  collect_names(app, out);
  return out;
}

std::string closest_option(const std::string& key, const std::vector<std::string>& candidates) {
  const std::string k = normalised(key);
  std::string best;
  size_t best_distance = std::max<size_t>(2, k.size() / 3) + 1;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(k, normalised(c));
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

void check_config_file(const std::string& path, const std::vector<std::string>& options) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    if (at.line == 0) VIMOE_FAIL("config ", path, ": ", e.description());  // unreadable file
    VIMOE_FAIL("config ", path, ", line ", at.line, ", column ", at.column, ": ", e.description());
  }
  for (const auto& [key, value] : root) {
    const std::string name(key.str());
    const toml::source_position& at = key.source().begin;
    if (value.is_table() || value.is_array_of_tables())
      VIMOE_FAIL("config ", path, ", line ", at.line, ": [", name, "] is a table; options are written at the "
                 "top level of the file, without tables (e.g. experts = 8, not [model] experts = 8)");
    if (std::find(options.begin(), options.end(), name) == options.end())
      VIMOE_FAIL("config ", path, ", line ", at.line, ": unknown option \"", name, "\"", suggestion(name, options),
                 " (`--help` lists them; the file uses their long names without the dashes)");
  }
}

void check_config_strictly(CLI::App& app) {
  CLI::Option* config = app.get_config_ptr();
  VIMOE_CHECK(config != nullptr, "check_config_strictly: the program has no --config option");
  // A validator of --config runs when CLI11 handles that option's value, before the options
  // declared after it (all of them) convert the values the file gave them.
  config->check(CLI::Validator(
      [&app](std::string& path) -> std::string {
        if (path.empty()) return "";
        try {
          check_config_file(path, option_names(app));
        } catch (const Error& e) {
          return e.what();
        }
        return "";
      },
      "TOML", "strict TOML"));
}

}  // namespace vimoe::app
