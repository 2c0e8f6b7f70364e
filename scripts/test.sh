#!/usr/bin/env bash
# Installs what is missing, builds (CUDA too when nvcc is present) and runs the test suite.
# then fuzzes every file reader for VIMOE_FUZZ_SECONDS each (default 30; 0 skips it).
# Exits non-zero on any failure. Usage: scripts/test.sh [--debug] [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

build_type=Release
if [[ "${1:-}" == "--debug" ]]; then build_type=Debug; shift; fi

scripts/install_deps.sh

build_dir="build-${build_type,,}"
jobs=$(nproc)
echo "== configuring ($build_type) in $build_dir"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type"
echo "== building with $jobs jobs"
cmake --build "$build_dir" -j "$jobs"
echo "== testing"
cd "$build_dir"
ctest --output-on-failure -j "$jobs" --timeout 600 "$@"
cd ..
# The GPU check's dry run: the CUDA build configures, and every script, target and input the
# GPU stages need is in the repository (tools only a GPU host has are listed, not required).
echo "== GPU check, dry run"
scripts/gpu_check.sh --dry-run --build-dir "$build_dir" "$build_dir/gpu_check_dry"
# Coverage-guided fuzzing of the readers (libFuzzer + ASan + UBSan): any finding fails.
fuzz_seconds=${VIMOE_FUZZ_SECONDS:-30}
if ((fuzz_seconds > 0)); then
  echo "== fuzzing each reader for $fuzz_seconds s"
  scripts/fuzz.sh "$fuzz_seconds"
fi
