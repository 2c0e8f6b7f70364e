#!/usr/bin/env bash
# Builds vimoe-bench, then times every kernel family and its PyTorch peer on this host's GPU
# in one run and prints the Markdown table for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j "$(nproc)" --target vimoe-bench
out=$(mktemp -d)
build-release/apps/vimoe-bench kernels --json "$out/ours.json" "$@"
python3 bench/peer_kernels.py --json "$out/peer.json" "$@"
python3 bench/compare.py "$out/ours.json" "$out/peer.json"
