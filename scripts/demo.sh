#!/usr/bin/env bash
# The main job: builds the engine, trains a small ViMoE (shared expert, image-level routing)
# on Fashion-MNIST -- on the GPU when one is present, else on the CPU -- evaluates it, and
# says where the routing heatmaps, expert loads and training curves are.
# Extra arguments go to vimoe-train (e.g. --epochs 10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  cuda=ON device=cuda
else
  cuda=OFF device=cpu  # no GPU: skip compiling the CUDA kernels
fi
echo "== building (CUDA $cuda)"
cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIMOE_ENABLE_CUDA=$cuda -DBUILD_TESTING=OFF >/dev/null
cmake --build build-demo -j "$(nproc)" --target vimoe-train vimoe-eval vimoe-study

out="runs/demo-$(date +%Y%m%d-%H%M%S)"
echo "== training on $device into $out"
build-demo/apps/vimoe-train --config configs/fashion_mnist_vimoe.toml --device "$device" --out "$out" \
  --no-final-eval "$@"
echo "== evaluating"
build-demo/apps/vimoe-eval run "$out/final.safetensors" --device "$device"
echo
echo "Open $out/eval/routing_block3.png (which expert each class's images go to), expert_load_block3.png,"
echo "loss_curve.png and accuracy_curve.png; every PNG has a CSV beside it. Metrics: $out/metrics.jsonl"
