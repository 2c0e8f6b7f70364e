// vimoe-study: a grid of vimoe-train runs from a study file, run resumably, and its report
// (tables, accuracy against the MoE layers, curves, routing specialisation, the efficient
// ViMoE's layers). See `vimoe-study --help` and README's "Studies".
#include <cstdio>
#include <filesystem>

#include "apps/common/config_file.h"
#include "apps/common/main_guard.h"
#include "apps/common/run_config.h"
#include "apps/common/study_report.h"
#include "apps/common/study_runner.h"
#include "apps/common/study_spec.h"

namespace {

// vimoe-train's long option names, which a study's keys must be.
std::vector<std::string> train_option_names() {
  CLI::App app;
  vimoe::app::RunConfig cfg;
  vimoe::app::add_options(app, cfg);
  return vimoe::app::option_names(app);
}

void print_report(const vimoe::app::StudyReport& r, const std::string& dir) {
  std::printf("%lld cells done, %lld failed, %lld unfinished; report in %s:\n", static_cast<long long>(r.done),
              static_cast<long long>(r.failed), static_cast<long long>(r.unfinished), dir.c_str());
  for (const std::string& f : r.files) std::printf("  %s\n", (std::filesystem::path(dir) / f).c_str());
  if (!r.efficient.empty()) std::printf("efficient ViMoE (keep the specialised MoE layers):\n%s", r.efficient.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vimoe-study: run a grid of vimoe-train runs (a study file's axes x seeds) and report on it"};
  app.require_subcommand(1);

  auto* run = app.add_subcommand("run", "run a study's cells that are not done (resuming interrupted ones), then "
                                 "write its report");
  std::string study_file, out;
  vimoe::app::StudyRunOptions ro;
  bool no_retry = false;
  run->add_option("study", study_file, "a study file (studies/*.toml)")->required()->check(CLI::ExistingFile);
  run->add_option("--out", out, "the study's directory (default: the file's `out`, else runs/studies/<name>)");
  run->add_option("--parallel", ro.parallel, "cells at once (several GPUs: one per GPU in turn; the CPU: its cores "
                  "shared)")->capture_default_str();
  run->add_flag("--no-retry-failed", no_retry, "leave cells that failed before as they are");
  run->add_flag("--dry-run", ro.dry_run, "list the cells and their states; run nothing");

  auto* report = app.add_subcommand("report", "tables (CSV, Markdown) and plots (PNG) of a study's directory, and "
                                    "the MoE layers an efficient ViMoE keeps");
  std::string dir;
  vimoe::app::StudyReportOptions rep;
  report->add_option("dir", dir, "a study's directory")->required()->check(CLI::ExistingDirectory);
  report->add_option("--from", rep.from, "the groups (cell names without _seed<s>) whose MoE layers are ranked "
                     "(default: those with the most MoE layers)");
  report->add_option("--keep-threshold", rep.keep_threshold, "keep the MoE layers whose class-expert NMI is at least "
                     "this fraction of the group's largest")->capture_default_str()->check(CLI::Range(0.0, 1.0));

  return vimoe::app::guarded_main("vimoe-study", [&] {
    CLI11_PARSE(app, argc, argv);
    if (run->parsed()) {
      vimoe::app::StudySpec spec = vimoe::app::read_study(study_file, train_option_names());
      if (!out.empty()) spec.out = out;
      ro.retry_failed = !no_retry;
      const int status = vimoe::app::run_study(spec, ro);
      if (ro.dry_run || status > 1) return status;  // nothing ran, or interrupted: no report yet
      print_report(vimoe::app::write_study_report(spec.out), spec.out);
      return status;
    }
    print_report(vimoe::app::write_study_report(dir, rep), dir);
    return 0;
  });
}
