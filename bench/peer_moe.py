"""The blocks the PyTorch peers share: the ViT's attention (fused qkv, scaled dot product), its
FFN, and the MoE FFN the PyTorch peers use (bench/peer_e2e.py on the GPU, bench/peer_cpu_train_step.py
on the CPU): N expert FFNs of the dense FFN's shape routed top-1 per image on the CLS row,
plus a dense shared expert, with the load-balancing loss alpha * N * sum_i f_i * P_i. Only
torch is needed.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection, as the engine's."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.proj(o.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    """fc2(gelu(fc1(x))) with the exact-erf GELU, as timm's and the engine's ViT FFN."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class MoEFFN(nn.Module):
    def __init__(self, dim, hidden, experts, aux_alpha=0.01):
        super().__init__()
        self.experts = experts
        self.aux_alpha = aux_alpha
        self.router = nn.Linear(dim, experts)
        self.fc1_weight = nn.Parameter(torch.empty(experts, hidden, dim))
        self.fc1_bias = nn.Parameter(torch.zeros(experts, hidden))
        self.fc2_weight = nn.Parameter(torch.empty(experts, dim, hidden))
        self.fc2_bias = nn.Parameter(torch.zeros(experts, dim))
        nn.init.trunc_normal_(self.fc1_weight, std=0.02)
        nn.init.trunc_normal_(self.fc2_weight, std=0.02)
        self.shared = Mlp(dim, hidden)

    def forward(self, h):  # [B, T, D] -> ([B, T, D], aux loss)
        probs = self.router(h[:, 0]).float().softmax(-1)  # [B, N], f32 like the engine's
        gate, ids = probs.max(-1)
        frac = F.one_hot(ids, self.experts).float().mean(0)
        aux = self.aux_alpha * self.experts * (frac * probs.mean(0)).sum()
        # The usual eager dispatch: images sorted by expert, one FFN per expert's slice
        # (the slice sizes come to the host), then back to batch order.
        order = torch.argsort(ids, stable=True)
        counts = torch.bincount(ids, minlength=self.experts).tolist()
        outs = []
        for e, x in enumerate(h[order].split(counts)):
            x = F.gelu(F.linear(x, self.fc1_weight[e], self.fc1_bias[e]))
            outs.append(F.linear(x, self.fc2_weight[e], self.fc2_bias[e]))
        routed = torch.cat(outs)[torch.argsort(order)]
        return routed * gate[:, None, None].to(routed.dtype) + self.shared(h), aux
