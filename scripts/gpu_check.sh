#!/usr/bin/env bash
# The whole CUDA half of the engine checked in one short, prepared run on any host with an
# NVIDIA GPU, CUDA 12.1+ and the build dependencies (scripts/install_deps.sh), and PyTorch
# (with transformers and timm) for the peers and the DINOv2 fixture. Stages, in order:
#   1 build      configure and build Release with all cores
#   2 tests      the `gpu` test label (ctest), with the GPU's name, driver and CUDA version
#   3 sanitizer  compute-sanitizer memcheck and racecheck over the kernel tests (small shapes)
#   4 dinov2     the full ViT-S/14 DINOv2 parity, its fixture made here by transformers
#   5 bench      vimoe-bench kernels / e2e beside the PyTorch peers, as ratio tables
#   6 train      a short real training run in f32 and in bf16: the loss falls, both agree
# After every stage OUTDIR/summary.json is rewritten (atomically), so a run cut short still
# says what it found; read it first. OUTDIR holds at most these 8 files, each capped at
# 16 MiB: summary.json build.log tests.log sanitizer.log dinov2.log bench.log bench.md train.log
#
# Usage: scripts/gpu_check.sh [options] OUTDIR
#   --stages 1,2,3   run only these stages (default: all)
#   --budget-s N     wall-clock cap for the whole run (default 780); a stage that no longer
#                    fits its minimum is skipped and says so, one that does gets what is left
#                    up to its own budget
#   --build-dir DIR  the CUDA build (default build-gpucheck); stages 2-6 use what is there
#   --dry-run        on a machine without a GPU: configure the CUDA build, check that every
#                    stage's tools, binaries, scripts and Python imports exist, and write the
#                    summary with every stage "not run: no GPU". Exits non-zero only when the
#                    repository itself lacks something a stage needs (a script, a target);
#                    tools a GPU host must provide (nvidia-smi, compute-sanitizer, torch) are
#                    listed as missing without failing.
# Exit status: 0 when every selected stage passed (dry run: the repository is complete),
# 1 when a stage failed or timed out, 2 for bad usage or no GPU outside a dry run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
repo=$(pwd)

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

# ---- the stages: name, default budget (s), the least time worth starting it with (s) ------
# Budgets (estimated for a 16-core host, see bench/RESULTS.md "GPU check" for how): stages
# 1-4 add up to 420 s (7 min), stages 5-6 to 300 s (5 min).
names=(_ build tests sanitizer dinov2 bench train)
budgets=(0 180 120 90 30 200 100)
minimums=(0 120 30 30 15 60 40)

stages=1,2,3,4,5,6
budget_s=780
build_dir=build-gpucheck
dry_run=0
out=""
while (($#)); do
  case "$1" in
    --stages) stages=${2:?--stages needs a list like 1,2,3}; shift 2 ;;
    --budget-s) budget_s=${2:?--budget-s needs seconds}; shift 2 ;;
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [[ -z "$out" ]] || { echo "gpu_check: one OUTDIR expected, got '$out' and '$1'" >&2; exit 2; }
       out=$1; shift ;;
  esac
done
[[ -n "$out" ]] || { echo "gpu_check: OUTDIR missing (see --help)" >&2; exit 2; }
[[ "$budget_s" =~ ^[0-9]+$ ]] || { echo "gpu_check: --budget-s expects whole seconds, got '$budget_s'" >&2; exit 2; }
selected=()
IFS=, read -r -a wanted <<<"$stages"
for s in "${wanted[@]}"; do
  [[ "$s" =~ ^[1-6]$ ]] || { echo "gpu_check: --stages expects numbers 1-6 separated by commas, got '$stages'" >&2; exit 2; }
  selected[$s]=1
done
mkdir -p "$out" || { echo "gpu_check: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
[[ "$build_dir" = /* ]] || build_dir="$repo/$build_dir"
jobs=$(nproc)
t_start=$(date +%s)

# ---- summary.json ---------------------------------------------------------------------------
json_str() {  # a JSON string literal of $1 (newlines and tabs become spaces)
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/ }
  s=${s//$'\t'/ }
  printf '"%s"' "$(printf '%s' "$s" | tr -d '\000-\037')"
}
kv() {  # one "key": value pair; numbers (and true/false/null) stay bare unless $3 is "str"
  if [[ "${3:-}" != str ]] && [[ "$2" =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ || "$2" =~ ^(true|false|null)$ ]]; then
    printf '%s: %s' "$(json_str "$1")" "$2"
  else
    printf '%s: %s' "$(json_str "$1")" "$(json_str "$2")"
  fi
}
declare -a st_status st_seconds st_figures
host_figures=""
for i in 1 2 3 4 5 6; do
  if [[ -n "${selected[$i]:-}" ]]; then st_status[$i]="pending"; else st_status[$i]="not selected"; fi
  st_seconds[$i]=0
  st_figures[$i]=""
done
write_summary() {
  local tmp="$out/.summary.json.tmp.$$" i sep=""
  {
    printf '{\n  %s,\n  %s,\n  %s,\n' "$(kv script scripts/gpu_check.sh)" "$(kv dry_run "$([[ $dry_run == 1 ]] && echo true || echo false)")" \
      "$(kv elapsed_s $(($(date +%s) - t_start)))"
    printf '  %s,\n  "host": {%s},\n  "stages": [\n' "$(kv budget_s "$budget_s")" "$host_figures"
    for i in 1 2 3 4 5 6; do
      printf '%s    {%s, %s, %s, %s, "figures": {%s}}' "$sep" "$(kv stage "$i")" "$(kv name "${names[$i]}")" \
        "$(kv status "${st_status[$i]}")" "$(kv seconds "${st_seconds[$i]}")" "${st_figures[$i]}"
      sep=$',\n'
    done
    printf '\n  ]\n}\n'
  } >"$tmp" && mv -f "$tmp" "$out/summary.json"
}
fig() {  # fig STAGE KEY VALUE: adds a key figure to a stage
  local pair
  pair=$(kv "$2" "$3")
  if [[ -n "${st_figures[$1]}" ]]; then st_figures[$1]+=", $pair"; else st_figures[$1]=$pair; fi
}
json_list() {  # a JSON array of strings from the arguments
  local sep="" a
  printf '['
  for a in "$@"; do printf '%s%s' "$sep" "$(json_str "$a")"; sep=", "; done
  printf ']'
}
host_fig() {  # host_fig KEY VALUE [str], or host_fig KEY --list ITEMS...
  local pair
  if [[ "${2:-}" == --list ]]; then pair="$(json_str "$1"): $(json_list "${@:3}")"; else pair=$(kv "$1" "$2" "${3:-}"); fi
  if [[ -n "$host_figures" ]]; then host_figures+=", $pair"; else host_figures=$pair; fi
}

# ---- logs: OUTDIR's files, none over 16 MiB --------------------------------------------------
max_bytes=$((16 * 1024 * 1024))
cap_file() {  # keeps the first 1 MiB and the last 14 MiB of an oversized log
  local f=$1 size
  [[ -f "$f" ]] || return 0
  size=$(stat -c %s "$f")
  ((size > max_bytes)) || return 0
  { head -c $((1024 * 1024)) "$f"; printf '\n[... %d bytes cut by gpu_check.sh ...]\n' $((size - 15 * 1024 * 1024)); tail -c $((14 * 1024 * 1024)) "$f"; } >"$f.cut"
  mv -f "$f.cut" "$f"
}
log_of() { printf '%s/%s.log' "$out" "${names[$1]}"; }

# Runs "$@" under a time limit, output appended to LOG; returns the command's status (124
# when the limit cut it short).
timed() {
  local limit=$1 log=$2
  shift 2
  ((limit >= 1)) || limit=1  # what is left of a stage's time after its earlier steps
  printf '\n$ %s   (limit %ss)\n' "$*" "$limit" >>"$log"
  timeout --signal=TERM --kill-after=15 "$limit" "$@" >>"$log" 2>&1
}

# ---- what each stage needs -------------------------------------------------------------------
# Repository items (missing: the dry run fails) and host items (missing: listed).
repo_missing=()
host_missing=()
need_repo_file() { [[ -e "$repo/$1" ]] || repo_missing+=("$2: $1"); }
need_tool() { command -v "$1" >/dev/null 2>&1 || host_missing+=("$2: $1 (not on PATH)"); }
need_py() {
  local mod
  for mod in "${@:2}"; do
    if ! command -v python3 >/dev/null 2>&1; then host_missing+=("$1: python3"); return; fi
    python3 -c "import $mod" >/dev/null 2>&1 || host_missing+=("$1: Python module $mod")
  done
}
build_targets=""
need_target() {  # a target the configured CUDA build must offer (stage 1 builds it)
  [[ "$build_targets" == "(no CUDA build)" ]] && return 0
  [[ -f "$build_dir/build.ninja" || -f "$build_dir/Makefile" ]] || return 0
  [[ -n "$build_targets" ]] || build_targets=$(cmake --build "$build_dir" --target help 2>/dev/null)
  grep -qE -- "(^|[[:space:]])$1(:|[[:space:]]|$)" <<<"$build_targets" || repo_missing+=("$2: build target $1")
}
gpu_tests="$build_dir/tests/vimoe_gpu_tests"
parity_bin="$build_dir/tests/vimoe_op_parity"
bench_bin="$build_dir/apps/vimoe-bench"
train_bin="$build_dir/apps/vimoe-train"

# The toolkit's compute-sanitizer when it is not on PATH.
sanitizer=$(command -v compute-sanitizer 2>/dev/null || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
needs_1() { need_tool cmake build; need_tool nvcc build; }
needs_2() {
  need_tool ctest tests
  need_tool nvidia-smi tests
  need_target vimoe_gpu_tests tests
  need_target vimoe_op_parity tests
}
needs_3() {
  [[ -x "$sanitizer" ]] || host_missing+=("sanitizer: compute-sanitizer (neither on PATH nor in \$CUDA_HOME/bin)")
  need_target vimoe_gpu_tests sanitizer
  need_target vimoe_op_parity sanitizer
}
needs_4() {
  need_repo_file tests/fixtures/make_dinov2_fixture.py dinov2
  need_repo_file tests/fixtures/dinov2_reference.py dinov2
  need_py dinov2 torch transformers safetensors
  need_target vimoe_gpu_tests dinov2
}
needs_5() {
  local f
  need_target vimoe-bench bench
  for f in bench/peer_kernels.py bench/compare.py bench/peer_e2e.py bench/compare_e2e.py; do
    need_repo_file "$f" bench
  done
  need_py bench torch timm
}
needs_6() {
  need_target vimoe-train train
  need_repo_file configs/cifar10_vimoe.toml train
  need_repo_file configs/fashion_mnist_vimoe.toml train
}
check_needs() {
  local i
  for i in 1 2 3 4 5 6; do [[ -n "${selected[$i]:-}" ]] && "needs_$i"; done
}

# ---- stage bodies: each sets its status and figures -------------------------------------------
stage_build() {
  local t=$1 log gen=() arch=() t0 rc
  log=$(log_of 1)
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  # Build for the GPU that is here (CMake 3.24+ reads it); else the project's default.
  local arch_doc
  arch_doc=$(cmake --help-property CUDA_ARCHITECTURES 2>/dev/null)
  [[ "$arch_doc" == *native* ]] && arch=(-DCMAKE_CUDA_ARCHITECTURES=native)
  t0=$(date +%s)
  timed "$t" "$log" cmake -S "$repo" -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DVIMOE_ENABLE_CUDA=ON "${arch[@]}"
  rc=$?
  if ((rc == 0)) && ! grep -q "CUDA backend ON" "$log"; then
    echo "gpu_check: the configure step did not enable the CUDA backend (no nvcc?)" >>"$log"; rc=1
  fi
  fig 1 configure_s $(($(date +%s) - t0))
  if ((rc == 0)); then
    local t1
    t1=$(date +%s)
    timed $((t - (t1 - t0))) "$log" cmake --build "$build_dir" -j "$jobs"
    rc=$?
    fig 1 build_s $(($(date +%s) - t1))
  fi
  fig 1 jobs "$jobs"
  fig 1 warnings "$(grep -c 'warning' "$log")"
  stage_verdict 1 $rc
  echo "   build took $(($(date +%s) - t0)) s with $jobs jobs"
}

stage_tests() {
  local t=$1 log rc line
  log=$(log_of 2)
  need_binary 2 "$gpu_tests" || return
  need_binary 2 "$parity_bin" || return
  # -V keeps every test's output: the op-parity entries run hundreds of rows each, and their
  # gtest summaries are what the row counts below add up.
  (cd "$build_dir" && timed "$t" "$log" ctest -L gpu -V -j "$jobs" --timeout 300)
  rc=$?
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$log" | tail -1)
  if [[ "$line" =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
    fig 2 ctest_failed "${BASH_REMATCH[1]}"
    fig 2 ctest_total "${BASH_REMATCH[2]}"
  fi
  # gtest's own counts over every process: "[  PASSED  ] N tests." and the like.
  local what n
  for what in PASSED FAILED SKIPPED; do
    n=$(grep -oE "\[ +$what +\] [0-9]+ tests?" "$log" | awk '{s += $(NF - 1)} END {print s + 0}')
    fig 2 "gtest_${what,,}" "$n"
  done
  fig 2 first_failures "$(grep -oE '\[  FAILED  \] [^ ,]+' "$log" | awk '$NF !~ /^[0-9]+$/ {print $NF}' | sort -u | head -10 | tr '\n' ' ')"
  # Tests skip without a usable GPU: a run where nothing passed proved nothing.
  local passed
  passed=$(grep -oE "\[ +PASSED +\] [0-9]+ tests?" "$log" | awk '{s += $(NF - 1)} END {print s + 0}')
  if ((rc == 0 && passed == 0)); then
    st_status[2]="failed: no test ran on the GPU (all skipped: $(grep -m1 -o 'needs a CUDA GPU: .*' "$log" | cut -c1-160))"
    return
  fi
  stage_verdict 2 $rc
}

# Small shapes only: the real-size rows ("Large": ViT-S/14, ConvNeXt-T) and the full-model tests would take the
# sanitizers' slowdown (10-100x on memory-bound kernels) far past the budget.
stage_sanitizer() {
  local t=$1 log rc1 rc2 rc3 errors hazards t_mem
  log=$(log_of 3)
  need_binary 3 "$gpu_tests" || return
  need_binary 3 "$parity_bin" || return
  local -a tool=("$sanitizer" --error-exitcode 99 --print-limit 20)
  t_mem=$((t * 60 / 100))
  # memcheck: every small op-parity row, then the other kernel tests.
  timed $((t_mem * 3 / 4)) "$log" "${tool[@]}" --tool memcheck "$parity_bin" --gtest_brief=1 --gtest_filter='-*Large*'
  rc1=$?
  timed $((t_mem / 4)) "$log" "${tool[@]}" --tool memcheck "$gpu_tests" --gtest_brief=1 \
    --gtest_filter='-*Large*:Dinov2Parity.*:VitCuda.*'
  rc2=$?
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$log" | awk '{s += $1} END {if (NR) print s}')
  fig 3 memcheck_errors "${errors:-null}"
  fig 3 memcheck_status "$(status_word $rc1) / $(status_word $rc2)"
  # racecheck looks at shared memory only, and is the slower tool: the families whose kernels
  # use shared memory.
  local f filter=""
  for f in reduce softmax layernorm attention routing loss moe_dispatch; do
    filter+="OpParity/Table.CudaMatchesTheCpu/${f}_*:"
  done
  timed $((t - t_mem)) "$log" "${tool[@]}" --tool racecheck "$parity_bin" --gtest_brief=1 \
    --gtest_filter="${filter%:}:-*Large*"
  rc3=$?
  hazards=$(sed -n 's/.*RACECHECK SUMMARY: \([0-9]*\) hazard.*/\1/p' "$log" | tail -1)
  fig 3 racecheck_hazards "${hazards:-null}"
  fig 3 racecheck_status "$(status_word $rc3)"
  local rc
  for rc in $rc1 $rc2 $rc3; do
    if ((rc != 0)); then stage_verdict 3 "$rc"; return; fi
  done
  stage_verdict 3 0
}

stage_dinov2() {
  local t=$1 log rc source=transformers fixtures="$build_dir/dinov2_fixtures" t0
  log=$(log_of 4)
  need_binary 4 "$gpu_tests" || return
  python3 -c "import transformers" >/dev/null 2>&1 || source=torch
  fig 4 fixture_source "$source"
  t0=$(date +%s)
  if [[ ! -f "$fixtures/dinov2_vits14/io.safetensors" && ! -f "$fixtures/dinov2_vits14_torch/io.safetensors" ]]; then
    timed "$t" "$log" python3 "$repo/tests/fixtures/make_dinov2_fixture.py" --full --source "$source" --out "$fixtures"
    rc=$?
    if ((rc != 0)); then fig 4 failed_step fixture; stage_verdict 4 $rc; return; fi
  fi
  fig 4 fixture_s $(($(date +%s) - t0))
  VIMOE_DINOV2_FIXTURES="$fixtures" timed $((t - ($(date +%s) - t0))) "$log" "$gpu_tests" --gtest_filter='Dinov2Parity.*'
  rc=$?
  # "dinov2 parity <fixture> <device> <precision>: max |diff| X, cosine Y (hidden), Z (pooled)"
  local n=0 l
  while IFS= read -r l; do
    n=$((n + 1))
    fig 4 "parity_$n" "${l#dinov2 parity }"
  done < <(grep '^dinov2 parity dinov2_vits14' "$log")
  grep -q '\[  SKIPPED \]' "$log" && ((rc == 0)) && { stage_verdict 4 skip "the parity test skipped (fixture not found)"; return; }
  stage_verdict 4 $rc
}

stage_bench() {
  local t=$1 log md rc t_k tmp
  log=$(log_of 5)
  md="$out/bench.md"
  need_binary 5 "$bench_bin" || return
  tmp=$(mktemp -d)
  t_k=$((t * 35 / 100))
  {
    echo "# GPU check benchmarks ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    echo
  } >"$md"
  timed $((t_k / 2)) "$log" "$bench_bin" kernels --device cuda --json "$tmp/ours_k.json" &&
    timed $((t_k / 2)) "$log" python3 "$repo/bench/peer_kernels.py" --json "$tmp/peer_k.json"
  rc=$?
  if ((rc == 0)); then
    echo "## Kernels (ours / PyTorch, ViT-S/14 training shapes)" >>"$md"
    python3 "$repo/bench/compare.py" "$tmp/ours_k.json" "$tmp/peer_k.json" >>"$md" 2>>"$log" || rc=1
    fig 5 kernel_rows "$(grep -c '^|' "$md")"
  fi
  fig 5 kernels_status "$(status_word $rc)"
  local rc_e t_e=$((t - t_k))
  # Fewer timed steps than the defaults: the ratio, not the last digit, is the point here.
  timed $((t_e * 40 / 100)) "$log" "$bench_bin" e2e --device cuda --steps 10 --warmup 3 --json "$tmp/ours_e.json" &&
    timed $((t_e * 60 / 100)) "$log" python3 "$repo/bench/peer_e2e.py" --steps 10 --warmup 3 --json "$tmp/peer_e.json"
  rc_e=$?
  if ((rc_e == 0)); then
    printf '\n## End to end (ViT-S/14 and ViMoE, images/s; peer: timm eager and torch.compile)\n' >>"$md"
    python3 "$repo/bench/compare_e2e.py" "$tmp/ours_e.json" "$tmp/peer_e.json" >>"$md" 2>>"$log" || rc_e=1
  fi
  fig 5 e2e_status "$(status_word $rc_e)"
  rm -rf "$tmp"
  if ((rc == 124 || rc_e == 124)); then stage_verdict 5 124
  elif ((rc != 0)); then stage_verdict 5 $rc
  else stage_verdict 5 $rc_e; fi
}

# The mean "loss_avg" of the first / last three training records of a metrics.jsonl.
loss_ends() {
  grep -o '"loss_avg":[-0-9.eE+]*' "$1" | cut -d: -f2 |
    awk '{v[NR] = $1} END {if (NR < 4) exit 1; f = 0; l = 0;
         for (i = 1; i <= 3; i++) {f += v[i]; l += v[NR - 3 + i]}; printf "%.6g %.6g\n", f / 3, l / 3}'
}

stage_train() {
  local t=$1 log rc data=() cifar="${VIMOE_CIFAR10_DIR:-$repo/.data/cifar10}" p runs
  log=$(log_of 6)
  need_binary 6 "$train_bin" || return
  if [[ -d "$cifar/train" && -d "$cifar/test" ]]; then
    data=(--config "$repo/configs/cifar10_vimoe.toml" --data-dir "$cifar/train" --val-dir "$cifar/test")
    fig 6 dataset "cifar10 folder $cifar"
  elif [[ -d /usr/share/datasets/fashion-mnist ]]; then
    data=(--config "$repo/configs/fashion_mnist_vimoe.toml")
    fig 6 dataset fashion-mnist
  else
    stage_verdict 6 skip "no data: neither a CIFAR-10 folder at $cifar (VIMOE_CIFAR10_DIR) nor Debian's dataset-fashion-mnist"
    return
  fi
  runs=$(mktemp -d)
  rc=0
  declare -A first last
  for p in f32 bf16; do
    timed $((t / 2)) "$log" "$train_bin" "${data[@]}" --device cuda --precision "$p" --max-steps 150 \
      --log-every 10 --checkpoint-every 1000 --seed 0 --no-final-eval --out "$runs/$p"
    local r=$?
    ((r == 0)) || rc=$r
    local ends
    if ends=$(loss_ends "$runs/$p/metrics.jsonl" 2>/dev/null); then
      read -r first[$p] last[$p] <<<"$ends"
      fig 6 "${p}_loss_first" "${first[$p]}"
      fig 6 "${p}_loss_last" "${last[$p]}"
    else
      ((rc == 0)) && rc=1
      echo "gpu_check: $p run left fewer than 4 training records in metrics.jsonl" >>"$log"
    fi
    local ips
    ips=$(grep -o '"images_per_s":[0-9.eE+]*' "$runs/$p/metrics.jsonl" 2>/dev/null | tail -1 | cut -d: -f2)
    [[ -n "$ips" ]] && fig 6 "${p}_images_per_s" "$ips"
  done
  if ((rc == 0)); then
    # The loss falls by a tenth in 150 steps in each precision, and the two end within 10% of
    # each other (bf16 rounding moves the trajectory, not where it goes).
    local verdict
    verdict=$(awk -v f1="${first[f32]}" -v l1="${last[f32]}" -v f2="${first[bf16]}" -v l2="${last[bf16]}" 'BEGIN {
      d = l1 - l2; if (d < 0) d = -d;
      if (l1 > 0.9 * f1) print "f32 loss did not fall (" f1 " -> " l1 ")";
      else if (l2 > 0.9 * f2) print "bf16 loss did not fall (" f2 " -> " l2 ")";
      else if (d > 0.1 * l1) print "f32 and bf16 end apart (" l1 " vs " l2 ")";
      else print "ok" }')
    fig 6 check "$verdict"
    [[ "$verdict" == ok ]] || rc=1
  fi
  rm -rf "$runs"
  stage_verdict 6 $rc
}

# ---- running a stage --------------------------------------------------------------------------
status_word() {
  case "$1" in
    0) echo passed ;;
    124|137) echo "timed out" ;;
    *) echo "failed (exit $1)" ;;
  esac
}
stage_verdict() {  # stage_verdict STAGE RC|skip [why]
  if [[ "$2" == skip ]]; then st_status[$1]="skipped: $3"; else st_status[$1]=$(status_word "$2"); fi
}
need_binary() {
  [[ -x "$2" ]] && return 0
  stage_verdict "$1" skip "$2 missing (stage 1 builds it)"
  return 1
}

overall=0
run_stage() {
  local i=$1 left t0
  left=$((budget_s - ($(date +%s) - t_start)))
  if ((left < minimums[i])); then
    st_status[$i]="skipped: needs at least ${minimums[$i]} s, ${left} s of the budget left"
  else
    local t=$((left < budgets[i] ? left : budgets[i]))
    echo "== stage $i ${names[$i]} (up to ${t} s)"
    st_status[$i]=running
    write_summary
    : >"$(log_of "$i")"
    t0=$(date +%s)
    "stage_${names[$i]}" "$t"
    st_seconds[$i]=$(($(date +%s) - t0))
    [[ ${names[$i]} == bench ]] && cap_file "$out/bench.md"
    cap_file "$(log_of "$i")"
  fi
  echo "   ${names[$i]}: ${st_status[$i]}"
  [[ "${st_status[$i]}" == passed ]] || overall=1
  write_summary
}

if ((dry_run)); then
  # The CUDA build must configure so that its targets can be listed (nothing is compiled). A
  # build directory that is already configured (scripts/test.sh passes its own) is used as
  # it is, so that its build type stays.
  log=$(log_of 1)
  : >"$log"
  if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v nvcc >/dev/null 2>&1; then
    gen=()
    command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
    timed 300 "$log" cmake -S "$repo" -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DVIMOE_ENABLE_CUDA=ON
  fi
  if [[ -f "$build_dir/CMakeCache.txt" ]] && grep -q '^VIMOE_WITH_CUDA_BUILD:INTERNAL=ON' "$build_dir/CMakeCache.txt"; then
    echo "dry run: the CUDA build in $build_dir is configured" >>"$log"
  elif command -v nvcc >/dev/null 2>&1; then
    repo_missing+=("build: nvcc is here but $build_dir has no CUDA backend (see build.log)")
  else
    build_targets="(no CUDA build)"  # nothing to list without nvcc; needs_1 reports it
  fi
  check_needs
  for i in 1 2 3 4 5 6; do [[ -n "${selected[$i]:-}" ]] && st_status[$i]="not run: no GPU"; done
  # What stage 1 would have built, where it is already there (scripts/test.sh builds it).
  for pair in "2:$gpu_tests" "2:$parity_bin" "3:$gpu_tests" "3:$parity_bin" "4:$gpu_tests" "5:$bench_bin" "6:$train_bin"; do
    i=${pair%%:*} bin=${pair#*:}
    [[ -n "${selected[$i]:-}" ]] || continue
    if [[ -x "$bin" ]]; then fig "$i" "$(basename "$bin")" built; else fig "$i" "$(basename "$bin")" "not built (stage 1 builds it)"; fi
  done
  host_fig repo_missing --list "${repo_missing[@]}"
  host_fig host_missing --list "${host_missing[@]}"
  write_summary
  for m in "${host_missing[@]}"; do echo "dry run: this host lacks (a GPU host needs it) -- $m"; done
  for m in "${repo_missing[@]}"; do echo "dry run: MISSING from the repository -- $m"; done
  echo "dry run: summary in $out/summary.json"
  ((${#repo_missing[@]} == 0))
  exit $?
fi

if ! nvidia-smi -L >/dev/null 2>&1; then
  for i in 1 2 3 4 5 6; do [[ -n "${selected[$i]:-}" ]] && st_status[$i]="not run: no GPU"; done
  write_summary
  echo "gpu_check: no NVIDIA GPU is visible (nvidia-smi -L failed); use --dry-run on a machine without one" >&2
  exit 2
fi
host_fig gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
host_fig driver "$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)" str
host_fig cuda_driver_api "$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)" str
host_fig nvcc "$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')" str
host_fig cores "$jobs"
check_needs
host_fig host_missing --list "${host_missing[@]}"
write_summary
for i in 1 2 3 4 5 6; do
  [[ -n "${selected[$i]:-}" ]] && run_stage "$i"
done
echo "gpu_check: $(($(date +%s) - t_start)) s; summary in $out/summary.json"
exit $overall
