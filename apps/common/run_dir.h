// A run's output directory: what vimoe-train refuses, tidies and trims there before it starts.
//
// One directory holds one run: a second run started into it would interleave its records
// with the first one's in metrics.jsonl and overwrite its checkpoints, so that needs
// --resume (continue it) or --overwrite (start over). A resumed run logs the steps after its
// checkpoint again, so the records after that step are dropped first. Writers killed
// mid-write leave their temporaries (<file>.tmp.<pid>[.<n>]); those of processes that no
// longer exist are removed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vimoe::app {

// The files that make a directory a run's (metrics.jsonl, config.json, last.safetensors,
// final.safetensors) present in `out`.
std::vector<std::string> run_files(const std::string& out);

// Creates `out` if needed and readies it; throws vimoe::Error when it is a file or cannot be
// created, or when it holds a run and neither `resuming` nor `overwrite` is set. With
// `overwrite` (and not resuming) the old run's files and its eval/ folder are removed.
// Returns the stale temporaries it removed.
std::vector<std::string> prepare_run_dir(const std::string& out, bool resuming, bool overwrite);

// Keeps the records of the metrics file at `path` whose step is at most `step` (a final
// evaluation's loses its "final" mark: the resumed run ends with its own) and drops lines
// that do not parse (a record cut short by a kill), rewriting the file atomically. Returns
// how many lines were dropped or rewritten; a missing file changes nothing.
int64_t truncate_metrics(const std::string& path, int64_t step);

}  // namespace vimoe::app
