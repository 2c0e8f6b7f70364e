#!/usr/bin/env bash
# Builds vimoe-bench, then measures training-step and inference images/s and peak memory of
# ViT-S/14 and ViMoE (8 experts in the last 2 blocks, shared expert, image-level top-1) on
# this host's GPU, ours and the PyTorch peer (timm, eager and torch.compile) in one run, and
# prints the Markdown table for bench/RESULTS.md. Options both sides understand pass through:
#   --preset --image-size --batch --classes --steps --warmup --precision --models --seed
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j "$(nproc)" --target vimoe-bench
out=$(mktemp -d)
build-release/apps/vimoe-bench e2e --device cuda --json "$out/ours.json" "$@"
python3 bench/peer_e2e.py --json "$out/peer.json" "$@"
python3 bench/compare_e2e.py "$out/ours.json" "$out/peer.json"
