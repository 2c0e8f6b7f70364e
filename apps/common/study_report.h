// The report over a vimoe-study directory: one table of the grid, the ViMoE paper's figures
// (accuracy against the number of MoE layers, training curves, per-layer specialisation) and
// the "efficient ViMoE" recommendation of which blocks to keep as MoE layers.
//
// Input, as the study runner leaves it (every file but study.json may be missing or partial:
// a pending, running or failed cell):
//   DIR/study.json                 name, axes (in the study's order), cells (name, group,
//                                  seed, values / labels per option, extra)
//   DIR/<cell>/status.json         state done|failed|interrupted|running|pending, error, seconds
//   DIR/<cell>/config.json         vimoe-train's resolved configuration (experts, ...)
//   DIR/<cell>/metrics.jsonl       training progress and validation records; lines that do not
//                                  parse (a last line cut short) are skipped
//   DIR/<cell>/eval/summary.json   vimoe-eval run's summary; read for done cells only
// A cell without status.json is pending; one whose status.json does not parse is "unknown"
// and counted unfinished. Only done cells enter means, figures and the recommendation.
//
// The score is top-1 (classification; when any done cell's summary has top1) or mIoU
// (segmentation), taken from eval/summary.json, or for a done cell without one from its last
// validation record in metrics.jsonl (the final one when marked). Seeds of a group are
// aggregated as mean and sample standard deviation (n - 1; none for a single seed).
//
// Output, into DIR (CSV scores are fractions, as in summary.json; PNG and Markdown show
// percent; an absent or non-finite value is an empty CSV field):
//   runs.csv                 one row per cell of study.json, in its order
//   table.csv, table.md      one row per group, in first-appearance order; notes: the
//                            options an extra cell sets, and seeds failed (with the first
//                            line of the first error) or unfinished, per state
//   accuracy_vs_layers.{png,csv}   score against the number of MoE layers, one line per
//                            series (the group's labels without the placement axes moe-last,
//                            moe-blocks, moe-every-second, moe-placement); dense groups as a
//                            flat line named "dense <labels>" (ViMoE Figure 2 / Table 7)
//   curves_loss.png, curves_val.png, curves.csv   per group the training loss and the
//                            validation score against step, averaged over the done seeds at
//                            the steps all of them logged (ViMoE Figure 3)
//   specialization.{png,csv} per MoE group the class-expert NMI against the block index
//   efficient_vimoe.csv      the recommendation below, per chosen group and block
//   report.md                the table, the recommendation and links to the pictures
// A study with no done cell writes runs.csv and the tables (with the states) and skips the
// rest, saying so in StudyReport::efficient.
//
// Efficient ViMoE: for each chosen group (StudyReportOptions::from, by default the done groups
// with the most MoE layers, all of them when tied), the MoE blocks are ranked by their mean
// class-expert NMI over the group's done seeds, and those with
//   NMI >= keep_threshold x (the group's largest NMI)
// are kept, as the `--moe-blocks` list of a smaller model: the layers whose routing follows
// the classes are those where experts earn their parameters (ViMoE, Section 4). The threshold
// is relative to the group's most specialised layer because NMI's scale depends on the number
// of experts and of classes (the entropies it is normalised by), so an absolute cut-off would
// not carry from one study to another. Blocks without a finite NMI are listed but never kept;
// a group with no finite NMI at all is noted, not an error.
//
// Errors (vimoe::Error): study.json missing, unreadable or malformed (naming the path); a done
// cell's eval/summary.json that exists but does not parse; a `from` name that is not a group
// of the study (listing the groups); keep_threshold outside [0, 1].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vimoe::app {

struct StudyReportOptions {
  std::vector<std::string> from;  // groups to recommend from; empty: the deepest done groups
  double keep_threshold = 0.5;    // keep blocks with NMI >= this x the group's largest NMI
};

struct StudyReport {
  std::vector<std::string> files;  // written, relative to the study directory, in order
  std::string efficient;           // the recommendation, one line per chosen group, and notes
                                   // on what was skipped
  int64_t done = 0, failed = 0, unfinished = 0;  // cells (unfinished: any other state)
};

StudyReport write_study_report(const std::string& study_dir, const StudyReportOptions& options = {});

}  // namespace vimoe::app
