#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, clang) of every reader of outside bytes: safetensors,
# IDX, CIFAR, images and --config TOML files, under AddressSanitizer and UBSan. Builds
# fuzz/ into build-fuzz/, then runs each target for SECONDS (default 30) from its committed
# seed corpus (fuzz/corpus/<target>, copied: the committed one is not changed). Any crash,
# sanitizer report, leak, timeout or escaped non-vimoe exception fails the script; the input
# that caused it is kept in build-fuzz/findings/. Prints executions, coverage and corpus
# growth per target. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(safetensors idx cifar image config)

echo "== fuzz: configuring and building build-fuzz (clang, libFuzzer + ASan + UBSan)"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S fuzz -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" >/dev/null
cmake --build build-fuzz -j "$(nproc)"

rm -rf build-fuzz/work build-fuzz/findings
mkdir -p build-fuzz/findings
printf '%-12s %10s %8s %7s %7s %12s  %s\n' target executions exec/s edges features corpus result > build-fuzz/summary.txt
failed=0
for t in "${targets[@]}"; do
  [[ -x build-fuzz/fuzz_$t ]] || { echo "fuzz: no target fuzz_$t"; exit 2; }
  work=build-fuzz/work/$t
  mkdir -p "$work"
  cp fuzz/corpus/"$t"/* "$work"/
  seeds=$(ls "$work" | wc -l)
  log=build-fuzz/fuzz_$t.log
  echo "== fuzz_$t: $seconds s from $seeds seeds"
  status=0
  build-fuzz/fuzz_"$t" "$work" -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix=build-fuzz/findings/"$t"- > "$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # The last status line: "#N  DONE  cov: C ft: F corp: K/...".
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  result=ok
  if ((status != 0)); then
    result="FAILED (status $status; see $log and build-fuzz/findings/)"
    failed=1
    grep -E 'ERROR|SUMMARY|fuzz:|==[0-9]+==' "$log" | head -20 || true
  fi
  printf '%-12s %10s %8s %7s %7s %12s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
      "$seeds->${corp:-?}" "$result" >> build-fuzz/summary.txt
done
cat build-fuzz/summary.txt
exit $failed
