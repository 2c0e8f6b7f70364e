#!/usr/bin/env python3
"""The PyTorch peer of `vimoe-bench kernels`: the same work on the same shapes, timed the same
way (warm-up, then a synchronised batch of calls), written as JSON with the same names.

Usage: python3 bench/peer_kernels.py --json peer.json [--small]
Needs PyTorch with CUDA. Attention is measured with both the cuDNN and the flash backends.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def time_ms(fn, warmup=3, iters=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3 / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    dev, bf16 = "cuda", torch.bfloat16
    B, H, S, Dh = (2, 6, 17, 64) if args.small else (256, 6, 257, 64)
    D, rows, hidden, experts = H * Dh, B * S, 4 * H * Dh, 8
    out = []

    def add(family, name, shape, ms, flops=0.0, nbytes=0.0):
        out.append(dict(family=family, name=name, shape=shape, ms=ms,
                        tflops=flops / (ms * 1e-3) / 1e12 if flops else 0.0,
                        gbps=nbytes / (ms * 1e-3) / 1e9 if nbytes else 0.0))

    def t(fn):
        return time_ms(fn, iters=args.iters)

    src = torch.randn(rows, D, device=dev, dtype=bf16)
    dst = torch.empty_like(src)
    add("copy", "copy", f"{rows}x{D} bf16", t(lambda: dst.copy_(src)), nbytes=2 * src.numel() * 2)

    n = 64 if args.small else 8192
    a, b = torch.randn(n, n, device=dev, dtype=bf16), torch.randn(n, n, device=dev, dtype=bf16)
    add("gemm", "gemm", f"{n}x{n}x{n} bf16", t(lambda: a @ b), flops=2.0 * n ** 3)

    q, k, v = (torch.randn(B, H, S, Dh, device=dev, dtype=bf16, requires_grad=True) for _ in range(3))
    dout = torch.randn_like(q)
    fwd_flops = 4.0 * B * H * S * S * Dh
    from torch.nn.attention import SDPBackend, sdpa_kernel
    for backend, label in ((SDPBackend.CUDNN_ATTENTION, "cudnn"), (SDPBackend.FLASH_ATTENTION, "flash")):
        with sdpa_kernel(backend):
            with torch.no_grad():
                ms = t(lambda: F.scaled_dot_product_attention(q, k, v))
            add("attention", f"attention fwd [{label}]", f"{B}x{H}x{S}x{Dh} bf16", ms, flops=fwd_flops)
            ms = t(lambda: F.scaled_dot_product_attention(q, k, v).backward(dout))
            add("attention", f"attention fwd+bwd [{label}]", f"{B}x{H}x{S}x{Dh} bf16", ms, flops=3.5 * fwd_flops)

    x = torch.randn(rows, D, device=dev, dtype=bf16, requires_grad=True)
    w = torch.randn(D, device=dev, dtype=bf16, requires_grad=True)
    bb = torch.randn(D, device=dev, dtype=bf16, requires_grad=True)
    dy = torch.randn_like(x)
    with torch.no_grad():
        add("layernorm", "layernorm fwd", f"{rows}x{D} bf16", t(lambda: F.layer_norm(x, (D,), w, bb, 1e-6)),
            nbytes=2.0 * x.numel() * 2)
    add("layernorm", "layernorm fwd+bwd", f"{rows}x{D} bf16",
        t(lambda: F.layer_norm(x, (D,), w, bb, 1e-6).backward(dy)), nbytes=5.0 * x.numel() * 2)

    xh = torch.randn(rows, hidden, device=dev, dtype=bf16, requires_grad=True)
    bh = torch.randn(hidden, device=dev, dtype=bf16, requires_grad=True)
    dyh = torch.randn_like(xh)
    with torch.no_grad():
        add("gelu", "bias+gelu fwd", f"{rows}x{hidden} bf16", t(lambda: F.gelu(xh + bh)), nbytes=2.0 * xh.numel() * 2)
    add("gelu", "bias+gelu fwd+bwd", f"{rows}x{hidden} bf16", t(lambda: F.gelu(xh + bh).backward(dyh)),
        nbytes=5.0 * xh.numel() * 2)

    for r, label in ((B, "image"), (rows, "token")):
        logits = torch.randn(r, experts, device=dev, requires_grad=True)

        def route():
            p = logits.float().softmax(-1)
            gate, idx = p.topk(1, dim=-1)
            f = torch.bincount(idx[:, 0], minlength=experts).float() / r
            aux = 0.01 * experts * (f * p.mean(0)).sum()
            (gate.sum() + aux).backward()
        add("routing", f"routing fwd+bwd ({label})", f"{r}x{experts} f32", t(route), nbytes=3.0 * logits.numel() * 4)

    xe = torch.randn(B, S, D, device=dev, dtype=bf16, requires_grad=True)
    w1 = (0.02 * torch.randn(experts, hidden, D, device=dev)).to(bf16).requires_grad_()
    w2 = (0.02 * torch.randn(experts, D, hidden, device=dev)).to(bf16).requires_grad_()
    gates = torch.randn(B, 1, device=dev, requires_grad=True)
    ids = torch.randint(0, experts, (B,), device=dev)
    dye = torch.randn(B, S, D, device=dev, dtype=bf16)

    def expert_ffn():
        # The usual eager MoE: sort by expert, one matmul pair per expert, scatter back.
        order = torch.argsort(ids, stable=True)
        counts = torch.bincount(ids, minlength=experts).tolist()
        xs = xe[order]
        outs, start = [], 0
        for e, c in enumerate(counts):
            if c:
                h = F.gelu(xs[start:start + c] @ w1[e].t())
                outs.append(h @ w2[e].t())
            start += c
        y = torch.empty_like(xe)
        y[order] = torch.cat(outs)
        (y * gates[:, :, None].to(bf16)).backward(dye)
    add("dispatch", "expert FFN fwd+bwd (image top-1)", f"{B}x{S}x{D}x{hidden}x{experts} bf16", t(expert_ffn),
        flops=3.0 * 2.0 * 2.0 * rows * D * hidden)

    total, pieces = (4096, 150) if args.small else (22_000_000, 150)
    params = [torch.zeros(total // pieces, device=dev, requires_grad=True) for _ in range(pieces)]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, fused=True)
    add("adamw", "adamw step", f"{total} params in {pieces} tensors f32", t(opt.step), nbytes=28.0 * total)

    with open(args.json, "w") as f:
        json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__, results=out), f, indent=2)


if __name__ == "__main__":
    main()
