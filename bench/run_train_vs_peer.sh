#!/usr/bin/env bash
# Trains the same small ViMoE from scratch on the CIFAR-10 image folder twice, with
# vimoe-train and with its PyTorch peer (bench/peer_train.py: the same model, initialisation
# and recipe in plain PyTorch + torchvision), one after the other on this host's CPU, and
# prints the per-epoch top-1 table of the two (bench/compare_train.py) with a PNG of both
# curves. Usage: bench/run_train_vs_peer.sh [OUT (runs/train_vs_peer)] [extra options for both]
# Environment: BUILD_DIR (build-release), VIMOE_CIFAR10_DIR (.data/cifar10), EPOCHS (3), SEED (0),
# ONLY (engine or peer: run that side alone; the table then needs the other side's earlier run).
# The model is the one configs/cifar10_vimoe.toml describes, shrunk for a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/train_vs_peer}
shift || true
build=${BUILD_DIR:-build-release}
data=${VIMOE_CIFAR10_DIR:-.data/cifar10}
[[ -d "$data/train" && -d "$data/test" ]] || { echo "run_train_vs_peer: no CIFAR-10 folder at $data" >&2; exit 1; }
# Every option both programs understand, spelled out so that neither relies on its defaults.
common=(--image-size 32 --patch-size 4 --width 64 --heads 4 --depth 4 --mlp-ratio 2
        --experts 8 --moe-last 2 --aux-alpha 0.01 --layer-scale 0.1 --head cls+mean --drop-path 0.1
        --crop-padding zero --epochs "${EPOCHS:-3}" --batch-size 128 --lr 1e-3 --min-lr 1e-5
        --warmup-epochs 0.5 --weight-decay 0.05 --label-smoothing 0.1 --clip-grad 1.0 --seed "${SEED:-0}"
        --workers 2 --log-every 50 "$@")
mkdir -p "$out"
only=${ONLY:-}
[[ -z "$only" || "$only" == engine || "$only" == peer ]] || { echo "run_train_vs_peer: ONLY must be engine or peer" >&2; exit 1; }
[[ "$only" == peer ]] || "$build/apps/vimoe-train" --model vit_s14 --registers 0 --top-k 1 --shared-expert --routing image \
    --dataset folder --data-dir "$data/train" --val-dir "$data/test" --normalize cifar10 \
    --device cpu --out "$out/engine" "${common[@]}"
[[ "$only" == engine ]] || python3 bench/peer_train.py --data "$data" --threads "$(nproc)" --out "$out/peer" "${common[@]}"
python3 bench/compare_train.py "$out/engine/metrics.jsonl" "$out/peer/metrics.jsonl" --png "$out/top1.png" | tee "$out/table.md"
