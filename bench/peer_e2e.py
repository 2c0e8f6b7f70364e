#!/usr/bin/env python3
"""The PyTorch peer of `vimoe-bench e2e`: training-step and inference images/s and peak memory
of timm's DINOv2 ViT (vit_small_patch14_dinov2 for --preset vit_s14) and of the same model
with MoE FFNs, eager and under torch.compile, on synthetic data, written as JSON in the
schema vimoe-bench e2e --json uses (bench/compare_e2e.py merges the two).

The work matches vimoe-bench e2e:
  training step: forward and cross-entropy + load-balancing loss under bf16 autocast,
                 backward, gradient clipping at norm 1, fused AdamW (weight decay 0.05 on
                 matrices, none on norms, biases, tokens and position embeddings), zero_grad;
  inference:     forward in eval mode under torch.no_grad (and the same autocast).
  MoE model:     the last 2 blocks' FFN replaced by 8 experts of the FFN's shape, routed
                 top-1 per image on the CLS row of the FFN input (softmax router, the
                 expert output scaled by its probability), plus a dense shared expert;
                 aux loss 0.01 * N * sum_i f_i * P_i per layer.
Inference runs first, on a fresh model, so its peak holds no gradients or optimiser state.

Usage: python3 bench/peer_e2e.py --json peer.json [--batch 256 --image-size 224 ...]
Needs PyTorch with CUDA and timm.
"""
import argparse
import gc
import json
import time

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_moe import MoEFFN

TIMM_NAMES = {
    "vit_s14": "vit_small_patch14_dinov2",
    "vit_b14": "vit_base_patch14_dinov2",
    "vit_l14": "vit_large_patch14_dinov2",
}
EXPERTS, MOE_LAST = 8, 2


class Classifier(nn.Module):
    """A timm ViT returning (logits, aux loss); with MoE blocks it runs the blocks itself so
    that each MoE layer's loss can be collected."""

    def __init__(self, vit, moe_blocks=()):
        super().__init__()
        self.vit = vit
        self.moe_blocks = set(moe_blocks)
        for i in self.moe_blocks:
            blk = vit.blocks[i]
            blk.mlp = MoEFFN(vit.embed_dim, blk.mlp.fc1.out_features, EXPERTS)

    def forward(self, images):
        v = self.vit
        if not self.moe_blocks:
            return v(images), None
        x = v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(images))))
        aux = None
        for i, blk in enumerate(v.blocks):
            if i not in self.moe_blocks:
                x = blk(x)
                continue
            x = x + blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x))))
            y, a = blk.mlp(blk.norm2(x))
            x = x + blk.drop_path2(blk.ls2(y))
            aux = a if aux is None else aux + a
        return v.forward_head(v.norm(x)), aux


def build(args, name):
    vit = timm.create_model(TIMM_NAMES[args.preset], pretrained=False, img_size=args.image_size,
                            num_classes=args.classes)
    depth = len(vit.blocks)
    moe = range(depth - MOE_LAST, depth) if name == "moe" else ()
    return Classifier(vit, moe).cuda()


def param_groups(model, weight_decay=0.05):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        plain = p.ndim <= 1 or "token" in n or "pos_embed" in n or "bias" in n
        (no_decay if plain else decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def time_ms(fn, warmup, steps):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3 / steps


def with_peaks(measure):
    """Runs `measure` with the allocator's peaks reset; returns its result and the peaks."""
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    result = measure()
    return result, torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()


def run(args, name, impl, images, labels):
    torch.manual_seed(args.seed)
    model = build(args, name)
    params = sum(p.numel() for p in model.parameters())
    fwd = torch.compile(model) if impl == "compile" else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    row = dict(name=name, impl=impl, params=params,
               description=f"timm {TIMM_NAMES[args.preset]}" + (
                   f" + MoE: {EXPERTS} experts in the last {MOE_LAST} blocks, shared, image top-1"
                   if name == "moe" else " (dense)"))
    print(f"{name} [{impl}]: {params} parameters", flush=True)

    def infer():
        with torch.no_grad(), autocast:
            fwd(images)

    model.eval()
    ms, alloc, reserved = with_peaks(lambda: time_ms(infer, args.warmup, args.steps))
    row.update(infer_ms=ms, infer_images_per_s=args.batch / (ms * 1e-3),
               infer_peak_allocated_bytes=alloc, infer_peak_reserved_bytes=reserved)
    print(f"{name} [{impl}]: inference {ms:.2f} ms/batch, {row['infer_images_per_s']:.1f} img/s, "
          f"peak {alloc / 2**20:.0f} MiB", flush=True)

    model.train()
    opt = torch.optim.AdamW(param_groups(model), lr=1e-3, fused=True)

    def train_step():
        with autocast:
            logits, aux = fwd(images)
            loss = F.cross_entropy(logits.float(), labels)
            if aux is not None:
                loss = loss + aux
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    ms, alloc, reserved = with_peaks(lambda: time_ms(train_step, args.warmup, args.steps))
    row.update(train_ms=ms, train_images_per_s=args.batch / (ms * 1e-3),
               train_peak_allocated_bytes=alloc, train_peak_reserved_bytes=reserved)
    print(f"{name} [{impl}]: training {ms:.2f} ms/step, {row['train_images_per_s']:.1f} img/s, "
          f"peak {alloc / 2**20:.0f} MiB", flush=True)
    del model, fwd, opt
    torch._dynamo.reset()
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--preset", default="vit_s14", choices=sorted(TIMM_NAMES))
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--models", default="dense,moe")
    ap.add_argument("--impls", default="eager,compile")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    models = args.models.split(",")
    impls = args.impls.split(",")
    for m in models:
        if m not in ("dense", "moe"):
            ap.error(f"--models: expected dense and/or moe, found {m}")
    for i in impls:
        if i not in ("eager", "compile"):
            ap.error(f"--impls: expected eager and/or compile, found {i}")
    # f32 means full-precision matmuls, as the engine's f32 path (no TF32).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    g = torch.Generator(device="cuda").manual_seed(args.seed + 1)
    images = torch.randn(args.batch, 3, args.image_size, args.image_size, device="cuda", generator=g)
    labels = torch.randint(0, args.classes, (args.batch,), device="cuda", generator=g)
    results = [run(args, m, i, images, labels) for m in models for i in impls]
    config = dict(preset=args.preset, image_size=args.image_size, batch=args.batch, num_classes=args.classes,
                  precision=args.precision, steps=args.steps, warmup=args.warmup)
    with open(args.json, "w") as f:
        json.dump(dict(framework=f"PyTorch {torch.__version__}, timm {timm.__version__}",
                       device=torch.cuda.get_device_name(), config=config, results=results), f, indent=2)


if __name__ == "__main__":
    main()
