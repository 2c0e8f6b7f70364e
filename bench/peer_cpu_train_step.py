#!/usr/bin/env python3
"""The PyTorch peer of bench/cpu_train_step: the same vit_tiny ViMoE training step on the CPU.

Model: 28x28x1 images in 4x4 patches (49 + CLS tokens), width 64, 4 blocks of 4 heads, FFN
128, LayerScale, pre-norm; the last 2 blocks' FFN is an MoE (4 experts, top-1 on the CLS row,
a shared expert; bench/peer_moe.py); head on the final-norm CLS row. One step: zero_grad,
forward, cross-entropy + aux loss, backward, AdamW (weight decay 0.05 on matrices). Eager
PyTorch with the same number of threads as the engine uses.

Usage: python3 bench/peer_cpu_train_step.py [--steps 20 --warmup 3 --batch 128 --threads 2]
Needs only torch.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_moe import Attention, MoEFFN, Mlp  # noqa: E402

IMAGE, PATCH, CHANNELS, WIDTH, DEPTH, HEADS, HIDDEN, CLASSES = 28, 4, 1, 64, 4, 4, 128, 10
EXPERTS, MOE_LAST, LAYER_SCALE = 4, 2, 0.1


class Block(nn.Module):
    def __init__(self, moe):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH, eps=1e-6), nn.LayerNorm(WIDTH, eps=1e-6)
        self.attn = Attention(WIDTH, HEADS)
        self.ls1 = nn.Parameter(torch.full((WIDTH,), LAYER_SCALE))
        self.ls2 = nn.Parameter(torch.full((WIDTH,), LAYER_SCALE))
        self.ffn = MoEFFN(WIDTH, HIDDEN, EXPERTS) if moe else Mlp(WIDTH, HIDDEN)

    def forward(self, x):
        x = x + self.ls1 * self.attn(self.norm1(x))
        y = self.ffn(self.norm2(x))
        y, aux = y if isinstance(y, tuple) else (y, None)
        return x + self.ls2 * y, aux


class TinyViMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Linear(CHANNELS * PATCH * PATCH, WIDTH)  # stride = kernel: a GEMM
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, 1 + (IMAGE // PATCH) ** 2, WIDTH))
        self.blocks = nn.ModuleList([Block(i >= DEPTH - MOE_LAST) for i in range(DEPTH)])
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, images):
        b, g = images.shape[0], IMAGE // PATCH
        patches = images.view(b, CHANNELS, g, PATCH, g, PATCH).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, -1)
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.patch(patches)], dim=1) + self.pos_embed
        aux = 0.0
        for blk in self.blocks:
            x, a = blk(x)
            if a is not None:
                aux = aux + a
        return self.head(self.norm(x)[:, 0]), aux


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TinyViMoE().train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "token" not in n and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "token" not in n and "pos_embed" not in n)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.05), dict(params=no_decay, weight_decay=0.0)])
    images = torch.randn(args.batch, CHANNELS, IMAGE, IMAGE)
    labels = torch.randint(0, CLASSES, (args.batch,))

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits, aux = model(images)
        loss = F.cross_entropy(logits, labels) + aux
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        step()
    times = sorted(step() for _ in range(args.steps))
    params = sum(p.numel() for p in model.parameters())
    print(f"PyTorch {torch.__version__} eager, {args.threads} thread(s): vit_tiny ViMoE, {params} parameters, "
          f"batch {args.batch}")
    print(f"ms/step: best {1e3 * times[0]:.1f}, median {1e3 * statistics.median(times):.1f}")
    print(f"images/s: {args.batch / times[0]:.0f} (best step), {args.batch / statistics.median(times):.0f} (median step)")


if __name__ == "__main__":
    main()
