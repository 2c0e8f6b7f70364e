#!/usr/bin/env python3
"""The PyTorch peer of a vimoe-train run from scratch on an image folder: the same ViMoE, the
same recipe, written the way a PyTorch user would (nn.Module, torchvision's ImageFolder and
transforms, DataLoader, torch.optim.AdamW, clip_grad_norm_), on the CPU or a GPU.

Model (as models/vit.cpp): patches as a GEMM, [CLS, patches] + position table, pre-norm blocks
x += ls1 * attn(norm1(x)); x += ls2 * ffn(norm2(x)) with drop path growing linearly to its rate
at the last block; the last --moe-last FFNs are MoEs (bench/peer_moe.py: --experts experts
routed top-1 per image on the CLS row, a shared expert, the alpha * N * sum f_i P_i loss);
final norm; head on CLS or on [CLS, mean of the patch tokens]. Initialisation as timm's
VisionTransformer (and the engine's): linear weights and the position table trunc_normal
(std 0.02, bounds +-2), biases 0, CLS normal(1e-6), the patch projection PyTorch's Conv2d
default, LayerScale at --layer-scale (none: no LayerScale).

Recipe (as apps/common/trainer.cpp): RandomCrop(size, padding=size/8, zero or reflect) +
RandomHorizontalFlip + Normalize(--mean/--std), evaluation Normalize only; cross-entropy with
label smoothing + the aux loss; AdamW (0.9, 0.999, eps 1e-8) with weight decay only on weights
of two or more dimensions that are not tokens, biases or the position table; lr warm-up
(linear, per step) then a half cosine to --min-lr over all steps; global-norm clipping.

It writes OUT/metrics.jsonl in vimoe-train's format (progress records with loss_avg and
images_per_s, per-epoch validation records with val_top1), so bench/compare_train.py can
set the two runs side by side and vimoe-eval curves can draw either.

Usage (CIFAR-10 as a folder, on 2 CPU threads):
  python3 bench/peer_train.py --data .data/cifar10 --out runs/peer --epochs 3 --width 64 \
      --heads 4 --depth 4 --mlp-ratio 2 --threads 2
Needs torch and torchvision (and Pillow).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision import transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_moe import Attention, MoEFFN, Mlp  # noqa: E402

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def drop_path(x, rate, training):
    if rate == 0 or not training:
        return x
    keep = 1 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class Block(nn.Module):
    def __init__(self, a, moe, dp):
        super().__init__()
        hidden = int(a.mlp_ratio * a.width)
        self.norm1, self.norm2 = nn.LayerNorm(a.width, eps=1e-6), nn.LayerNorm(a.width, eps=1e-6)
        self.attn = Attention(a.width, a.heads)
        self.ffn = MoEFFN(a.width, hidden, a.experts, a.aux_alpha) if moe else Mlp(a.width, hidden)
        self.scaled = a.layer_scale != "none"
        if self.scaled:
            self.ls1 = nn.Parameter(torch.full((a.width,), float(a.layer_scale)))
            self.ls2 = nn.Parameter(torch.full((a.width,), float(a.layer_scale)))
        self.dp = dp

    def forward(self, x):
        y = self.attn(self.norm1(x))
        x = x + drop_path(self.ls1 * y if self.scaled else y, self.dp, self.training)
        y = self.ffn(self.norm2(x))
        y, aux = y if isinstance(y, tuple) else (y, None)
        x = x + drop_path(self.ls2 * y if self.scaled else y, self.dp, self.training)
        return x, aux


class ViMoE(nn.Module):
    def __init__(self, a, classes):
        super().__init__()
        self.patch, self.grid = a.patch_size, a.image_size // a.patch_size
        self.patch_embed = nn.Conv2d(3, a.width, a.patch_size, a.patch_size)  # its default init
        self.cls_token = nn.Parameter(torch.empty(1, 1, a.width))
        self.pos_embed = nn.Parameter(torch.empty(1, 1 + self.grid ** 2, a.width))
        rates = [a.drop_path * i / max(a.depth - 1, 1) for i in range(a.depth)]
        self.blocks = nn.ModuleList([Block(a, i >= a.depth - a.moe_last, rates[i]) for i in range(a.depth)])
        self.norm = nn.LayerNorm(a.width, eps=1e-6)
        self.mean_head = a.head == "cls+mean"
        self.head = nn.Linear(2 * a.width if self.mean_head else a.width, classes)
        self.init_weights()

    def init_weights(self):
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2, b=2)
        nn.init.normal_(self.cls_token, std=1e-6)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2, b=2)
                nn.init.zeros_(m.bias)
            elif isinstance(m, MoEFFN):
                for w in (m.fc1_weight, m.fc2_weight):
                    nn.init.trunc_normal_(w, std=0.02, a=-2, b=2)

    def forward(self, images):
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        aux = x.new_zeros(())
        for blk in self.blocks:
            x, a = blk(x)
            if a is not None:
                aux = aux + a
        x = self.norm(x)
        pooled = torch.cat([x[:, 0], x[:, 1:].mean(1)], dim=1) if self.mean_head else x[:, 0]
        return self.head(pooled), aux


def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        plain = p.ndim <= 1 or "token" in n or n == "pos_embed" or "bias" in n
        (no_decay if plain else decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def lr_at(step, a, warmup, total):
    if step < warmup:
        return a.lr * (step + 1) / warmup
    if step >= total:
        return a.min_lr
    progress = (step - warmup) / max(total - warmup, 1)
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * progress))


def evaluate(model, loader, device):
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits, _ = model(images)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
            total += labels.numel()
    model.train()
    return loss_sum / total, correct / total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with train/<class>/* and test/<class>/*")
    ap.add_argument("--out", required=True)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--width", type=int, default=384)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--mlp-ratio", type=float, default=4.0)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--moe-last", type=int, default=2)
    ap.add_argument("--aux-alpha", type=float, default=0.01)
    ap.add_argument("--layer-scale", default="0.1", help="LayerScale init, or none")
    ap.add_argument("--head", choices=["cls", "cls+mean"], default="cls+mean")
    ap.add_argument("--drop-path", type=float, default=0.1)
    ap.add_argument("--crop-padding", choices=["zero", "reflect"], default="zero")
    ap.add_argument("--mean", type=float, nargs=3, default=CIFAR10_MEAN)
    ap.add_argument("--std", type=float, nargs=3, default=CIFAR10_STD)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-5)
    ap.add_argument("--warmup-epochs", type=float, default=3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--clip-grad", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    norm = T.Normalize(a.mean, a.std)
    pad_mode = "constant" if a.crop_padding == "zero" else "reflect"
    train_tf = T.Compose([T.RandomCrop(a.image_size, padding=a.image_size // 8, padding_mode=pad_mode),
                          T.RandomHorizontalFlip(), T.ToTensor(), norm])
    train_set = torchvision.datasets.ImageFolder(os.path.join(a.data, "train"), train_tf)
    val_set = torchvision.datasets.ImageFolder(os.path.join(a.data, "test"), T.Compose([T.ToTensor(), norm]))
    train_loader = torch.utils.data.DataLoader(train_set, a.batch_size, shuffle=True, drop_last=True,
                                               num_workers=a.workers, persistent_workers=a.workers > 0)
    val_loader = torch.utils.data.DataLoader(val_set, 256, num_workers=a.workers)
    model = ViMoE(a, len(train_set.classes)).to(device).train()
    opt = torch.optim.AdamW(param_groups(model, a.weight_decay), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = len(train_loader)
    total = steps_per_epoch * a.epochs
    warmup = min(total, int(a.warmup_epochs * steps_per_epoch))
    params = sum(p.numel() for p in model.parameters())
    print(f"peer_train: PyTorch {torch.__version__}, {a.threads} thread(s) on {device}: width {a.width}, depth "
          f"{a.depth}, {a.heads} heads, {a.experts} experts in the last {a.moe_last} blocks + shared; {params} "
          f"parameters; {total} steps of {a.batch_size} images", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    log = open(os.path.join(a.out, "metrics.jsonl"), "w")

    def record(**r):
        log.write(json.dumps(r) + "\n")
        log.flush()

    step = 0
    start = time.perf_counter()
    for epoch in range(a.epochs):
        window_loss = window_aux = 0.0
        window_steps = window_images = 0
        window_start = time.perf_counter()
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, a, warmup, total)
            logits, aux = model(images)
            task = F.cross_entropy(logits, labels, label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            (task + aux).backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip_grad if a.clip_grad > 0 else math.inf)
            opt.step()
            step += 1
            window_loss += task.item()
            window_aux += aux.item()
            window_steps += 1
            window_images += labels.numel()
            if step % a.log_every == 0 or step == total:
                secs = time.perf_counter() - window_start
                ips = window_images / secs
                eta = (total - step) * a.batch_size / ips
                print(f"\rstep {step}/{total}  epoch {epoch + 1}/{a.epochs}  loss {window_loss / window_steps:.4f}  "
                      f"aux {window_aux / window_steps:.4f}  {ips:.0f} img/s  ETA {int(eta // 60)}m{int(eta % 60):02d}s",
                      end="", file=sys.stderr, flush=True)
                record(step=step, epoch=epoch, loss_avg=window_loss / window_steps, aux_loss=window_aux / window_steps,
                       lr=opt.param_groups[0]["lr"], grad_norm=float(grad_norm), images_per_s=ips)
                window_loss = window_aux = 0.0
                window_steps = window_images = 0
                window_start = time.perf_counter()
        val_loss, top1 = evaluate(model, val_loader, device)
        print(f"\n  validation: loss {val_loss:.4f}  top-1 {100 * top1:.2f}%", file=sys.stderr)
        record(step=step, epoch=epoch + 1, val_loss=val_loss, val_top1=top1)
    print(f"peer_train: {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
