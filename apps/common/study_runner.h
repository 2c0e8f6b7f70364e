// Running a study's cells (study_spec.h): each cell is a vimoe-train run in its own directory
// under the study's, then a vimoe-eval run of its final checkpoint into <cell>/eval.
//
// The programs run as child processes, found beside the running program: a cell that
// crashes, aborts or diverges fails alone, and its log says why. Per cell directory:
//   cell.toml    the run's options (vimoe-train --config)
//   train.log    vimoe-train's and vimoe-eval's output, every attempt, each after a header
//   status.json  state (pending, running, done, failed, interrupted), attempts, the seconds
//                spent, the step a resume started from, a failure's exit status and error
//   and vimoe-train's own files (metrics.jsonl, config.json, last/final.safetensors, eval/).
//
// Resumable: a done cell (status done, final.safetensors and eval/summary.json present) is
// skipped; a cell with a checkpoint continues from it (vimoe-train --resume, step for step
// the same run); one without starts over (--overwrite clears what a kill before its first
// checkpoint left); a failed cell is retried unless told not to. A cell whose cell.toml
// differs from what the study now gives it is an error before anything runs: its results
// would no longer be the cell's.
//
// Interrupted (SIGINT, SIGTERM): the running cells are sent SIGTERM, write their checkpoints
// and are recorded as interrupted; the study returns 128 + the signal. If the study itself is
// killed, each child still gets SIGTERM (the kernel's parent-death signal) and checkpoints.
// The study directory is locked (flock on <out>/.lock, held by the cells' processes too) so a
// second vimoe-study cannot run there while any of them does.
#pragma once
#include <string>
#include <vector>

#include "apps/common/study_spec.h"

namespace vimoe::app {

struct StudyRunOptions {
  int parallel = 1;           // cells run at once; on a host with several GPUs, one per GPU in turn
  bool retry_failed = true;   // rerun cells that failed before
  bool dry_run = false;       // list the cells and their states, run nothing
  std::string programs_dir;   // where vimoe-train and vimoe-eval are ("": beside this program)
};

// Checks every cell's options as vimoe-train would (before any runs), writes study.json, runs
// the cells that are not done and returns the exit status: 0 all done, 1 some failed (each
// recorded, the rest ran), 128 + the signal when interrupted. The report is the caller's
// (study_report.h). Throws vimoe::Error for a study that cannot run
// (a cell vimoe-train would refuse, a changed cell, a locked directory, missing programs).
int run_study(const StudySpec& spec, const StudyRunOptions& options);

}  // namespace vimoe::app
