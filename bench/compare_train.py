#!/usr/bin/env python3
"""Sets two training setups side by side from their runs' metrics.jsonl (vimoe-train's format,
which bench/peer_train.py writes too): per epoch the validation top-1 of each and the
difference, and each one's training images/s (the mean of its progress records in that epoch,
so validation time is not counted). Each side may be several runs (seeds), comma-separated:
the table then gives their mean, and each run's value in brackets. Prints a Markdown table;
with --png also draws the accuracy curves in one picture (needs matplotlib); with --max-gap
fails when the means of an epoch differ by more.

Usage: python3 bench/compare_train.py ENGINE/metrics.jsonl[,...] PEER/metrics.jsonl[,...] \
           [--names engine,PyTorch] [--png curves.png] [--max-gap 1.0]
"""
import argparse
import json
import math
import sys


def read(path):
    val, speed = {}, {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if "val_top1" in r:  # per epoch; the last epoch's is the final evaluation
                val[r["epoch"]] = 100 * r["val_top1"]
            elif "images_per_s" in r and r["images_per_s"]:
                # Progress records carry the epoch they are in (0-based).
                speed.setdefault(r["epoch"] + 1, []).append(r["images_per_s"])
    return val, {e: sum(v) / len(v) for e, v in speed.items()}


def read_side(paths):
    """Per epoch: the list of the runs' top-1 values and the mean of their images/s."""
    runs = [read(p) for p in paths.split(",")]
    epochs = set.intersection(*(set(v) for v, _ in runs))
    top1 = {e: [v[e] for v, _ in runs] for e in epochs}
    speed = {e: sum(s[e] for _, s in runs if e in s) / max(1, sum(e in s for _, s in runs)) for e in epochs}
    return top1, speed


def mean(xs):
    return sum(xs) / len(xs)


def cell(xs):
    return f"{mean(xs):.2f}" + (" (" + ", ".join(f"{x:.2f}" for x in xs) + ")" if len(xs) > 1 else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--names", default="engine,PyTorch")
    ap.add_argument("--png")
    ap.add_argument("--max-gap", type=float, help="fail when |top-1 difference| exceeds this (points)")
    args = ap.parse_args()
    na, nb = args.names.split(",")
    (va, sa), (vb, sb) = read_side(args.a), read_side(args.b)
    epochs = sorted(set(va) & set(vb))
    if not epochs:
        sys.exit("compare_train: the two runs share no validated epoch")
    print(f"| epoch | {na} top-1 % | {nb} top-1 % | difference (points) | {na} img/s | {nb} img/s |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for e in epochs:
        d = mean(va[e]) - mean(vb[e])
        worst = max(worst, abs(d))
        print(f"| {e} | {cell(va[e])} | {cell(vb[e])} | {d:+.2f} | {sa.get(e, math.nan):.0f} | {sb.get(e, math.nan):.0f} |")
    print(f"\nlargest difference: {worst:.2f} points")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
        for name, v in ((na, va), (nb, vb)):
            xs = sorted(v)
            ax.plot(xs, [mean(v[x]) for x in xs], marker="o", label=name)
            for x in xs:
                ax.scatter([x] * len(v[x]), v[x], s=8, alpha=0.5, color=ax.lines[-1].get_color())
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation top-1 (%)")
        ax.set_xticks(sorted(set(va) | set(vb)))
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png)
        print(f"wrote {args.png}")
    if args.max_gap is not None and worst > args.max_gap:
        sys.exit(f"compare_train: the runs differ by {worst:.2f} points, more than {args.max_gap}")


if __name__ == "__main__":
    main()
