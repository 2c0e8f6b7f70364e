#!/usr/bin/env python3
"""Merges `vimoe-bench kernels --json` and `bench/peer_kernels.py --json` into a Markdown table
of times and ratios (peer time / our time: above 1 means we are faster).

Usage: python3 bench/compare.py ours.json peer.json
"""
import json
import sys


def main():
    with open(sys.argv[1]) as f:
        ours = {r["name"]: r for r in json.load(f)}
    with open(sys.argv[2]) as f:
        peer = json.load(f)
    print(f"Device: {peer['device']}, PyTorch {peer['torch']}\n")
    print("| kernel | shape | vimoe ms | vimoe rate | peer | peer ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for p in peer["results"]:
        base = p["name"].split(" [")[0]
        o = ours.get(base)
        if o is None:
            continue
        rate = f"{o['tflops']:.1f} TFLOP/s" if o["tflops"] else f"{o['gbps']:.0f} GB/s"
        label = p["name"][len(base):].strip(" []") or "PyTorch"
        print(f"| {base} | {o['shape']} | {o['ms']:.3f} | {rate} | {label} | {p['ms']:.3f} | {p['ms'] / o['ms']:.2f}x |")


if __name__ == "__main__":
    main()
