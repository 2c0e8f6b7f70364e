// The TOML files that --config reads, checked strictly before a run starts.
//
// CLI11 reads the file itself and drops what it does not recognise, so a misspelt key
// ("expertz"), a key under a table ("[model]") or the underscore spelling of an option
// ("max_steps") used to train a different run without a word. Here the file is parsed with
// toml++ first: a syntax error names the file, line and column; every key must be an option
// of the program, written at the top level, or the error names the key, its line and the
// closest option.
#pragma once
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace vimoe::app {

// Every long option name `app` accepts, without the leading "--", its option groups
// included (not its subcommands').
std::vector<std::string> option_names(const CLI::App& app);

// The candidate closest to `key` by edit distance, with '_' read as '-' and case ignored;
// "" when none is within a third of the key's length (at least 2 edits).
std::string closest_option(const std::string& key, const std::vector<std::string>& candidates);

// Throws vimoe::Error when the file cannot be read or parsed, holds a table, or holds a key
// that is not one of `options`.
void check_config_file(const std::string& path, const std::vector<std::string>& options);

// Makes `app` (which has a --config option) check the file it is given that way before any
// value from it is used; a problem is a CLI::ValidationError, which CLI11_PARSE prints as
// "--config: ..." before exiting non-zero.
void check_config_strictly(CLI::App& app);

}  // namespace vimoe::app
