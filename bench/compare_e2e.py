#!/usr/bin/env python3
"""Merges `vimoe-bench e2e --json` and `bench/peer_e2e.py --json` into a Markdown table of
training and inference images/s and peak memory, with ratios against each peer row
(vimoe img/s / peer img/s: above 1 means we are faster; vimoe peak / peer peak: below 1
means we use less memory).

Usage: python3 bench/compare_e2e.py ours.json peer.json
"""
import json
import sys


def gib(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / 2**30:.2f}"


def ratio(a, b, fmt="{:.2f}x"):
    return "n/a" if a is None or b is None or b == 0 else fmt.format(a / b)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        ours = json.load(f)
    with open(sys.argv[2]) as f:
        peer = json.load(f)
    c = ours["config"]
    if any(peer["config"].get(k) != v for k, v in c.items() if k in ("preset", "image_size", "batch", "num_classes", "precision")):
        sys.exit(f"the two runs measured different work: ours {c}, peer {peer['config']}")
    print(f"Device: {peer['device']}; peer: {peer['framework']}")
    print(f"{c['preset']} at {c['image_size']}x{c['image_size']}, batch {c['batch']}, {c['num_classes']} classes, "
          f"{c['precision']}; {c['steps']} timed steps after {c['warmup']} warm-up; ratios are vimoe / peer "
          "(speed above 1: vimoe is faster; memory below 1: vimoe needs less)\n")
    print("| model | implementation | params | train img/s | train peak GiB | inference img/s | inference peak GiB "
          "| train speed ratio | inference speed ratio | train memory ratio | inference memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for o in ours["results"]:
        print(f"| {o['name']} | vimoe | {o['params'] / 1e6:.1f}M | {o['train_images_per_s']:.0f} "
              f"| {gib(o['train_peak_allocated_bytes'])} | {o['infer_images_per_s']:.0f} "
              f"| {gib(o['infer_peak_allocated_bytes'])} | | | | |")
        for p in peer["results"]:
            if p["name"] != o["name"]:
                continue
            print(f"| {p['name']} | PyTorch {p['impl']} | {p['params'] / 1e6:.1f}M | {p['train_images_per_s']:.0f} "
                  f"| {gib(p['train_peak_allocated_bytes'])} | {p['infer_images_per_s']:.0f} "
                  f"| {gib(p['infer_peak_allocated_bytes'])} "
                  f"| {ratio(o['train_images_per_s'], p['train_images_per_s'])} "
                  f"| {ratio(o['infer_images_per_s'], p['infer_images_per_s'])} "
                  f"| {ratio(o['train_peak_allocated_bytes'], p['train_peak_allocated_bytes'])} "
                  f"| {ratio(o['infer_peak_allocated_bytes'], p['infer_peak_allocated_bytes'])} |")
    print()
    for r in ours["results"] + peer["results"]:
        print(f"- {r['name']} ({r['impl']}): {r['description']}")


if __name__ == "__main__":
    main()
