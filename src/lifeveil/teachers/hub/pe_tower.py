"""Meta's Perception Encoder (PE-Core) vision tower in plain torch (no timm, no open_clip).

Module names follow Meta's perception_models ``VisionTransformer`` so its checkpoints load
unchanged; timm/open_clip checkpoints are renamed to this layout by
:func:`lifeveil.teachers.hub.perception_encoder.pe_state_from_timm`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PE_HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16, 1536: 16}  # PE-Core T, S, B, L, G
PE_POOL_HEADS = 8
PE_ROPE_THETA = 10000.0


@dataclass(frozen=True)
class PEVisionConfig:
    """Shape of a PE vision tower (read off a checkpoint by :func:`infer_pe_config`).

    patch_size: pixels per patch side; width: token dimension; layers: transformer blocks;
    heads: attention heads; mlp_width: hidden units of each MLP; image_size: pretraining
    side in pixels (the absolute position grid is image_size / patch_size);
    output_dim: projection size (None = no projection); use_cls_token: a class token is
    prepended; layer_scale: blocks carry LayerScale gammas; attn_pool: attention pooling
    head (else the CLS token, or the token mean, is pooled).
    """

    patch_size: int
    width: int
    layers: int
    heads: int
    mlp_width: int
    image_size: int
    output_dim: int | None = None
    use_cls_token: bool = True
    layer_scale: bool = False
    attn_pool: bool = True


def rope_axis_frequencies(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """1-D rotary angles (len(positions), dim): each frequency repeated for its pair."""
    inv_freq = 1.0 / PE_ROPE_THETA ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)
    return (positions.float()[:, None] * inv_freq[None, :]).repeat_interleave(2, dim=-1)


def rope_2d_frequencies(head_dim: int, grid_h: int, grid_w: int, cls_token: bool) -> torch.Tensor:
    """PE's 2-D RoPE angles, (cls + grid_h * grid_w, head_dim), tokens in row-major order.

    The first half of each head rotates with the column (x), the second with the row (y).
    With a class token, patch positions start at 1 and the class token (angle 0) is not
    rotated.
    """
    offset = 1 if cls_token else 0
    half = head_dim // 2
    fy = rope_axis_frequencies(torch.arange(grid_h) + offset, half)
    fx = rope_axis_frequencies(torch.arange(grid_w) + offset, half)
    grid = torch.cat(
        [fx[None, :, :].expand(grid_h, -1, -1), fy[:, None, :].expand(-1, grid_w, -1)], dim=-1
    ).reshape(grid_h * grid_w, head_dim)
    if cls_token:
        grid = torch.cat([torch.zeros(1, head_dim), grid], dim=0)
    return grid


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of ``x`` (..., T, D) by ``angles`` (T, D)."""
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    angles = angles.to(x.dtype)
    return x * angles.cos() + rotated * angles.sin()


class PESelfAttention(nn.Module):
    """Multi-head self-attention with 2-D RoPE on queries and keys (fused in_proj)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(apply_rope(q, angles), apply_rope(k, angles), v)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class LayerScale(nn.Module):
    """Per-channel residual scale ``gamma``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((width,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def pe_mlp(width: int, hidden: int) -> nn.Sequential:
    """Linear -> GELU -> Linear, named as Meta's ``c_fc`` / ``c_proj``."""
    return nn.Sequential(
        OrderedDict(
            [
                ("c_fc", nn.Linear(width, hidden)),
                ("gelu", nn.GELU()),
                ("c_proj", nn.Linear(hidden, width)),
            ]
        )
    )


class PEBlock(nn.Module):
    """Pre-norm transformer block: x + ls_1(attn(ln_1 x)), then x + ls_2(mlp(ln_2 x))."""

    def __init__(self, cfg: PEVisionConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.width)
        self.attn = PESelfAttention(cfg.width, cfg.heads)
        self.ls_1 = LayerScale(cfg.width) if cfg.layer_scale else nn.Identity()
        self.ln_2 = nn.LayerNorm(cfg.width)
        self.mlp = pe_mlp(cfg.width, cfg.mlp_width)
        self.ls_2 = LayerScale(cfg.width) if cfg.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        x = x + self.ls_1(self.attn(self.ln_1(x), angles))
        return x + self.ls_2(self.mlp(self.ln_2(x)))


class PETransformer(nn.Module):
    """The stack of :class:`PEBlock` (``resblocks``)."""

    def __init__(self, cfg: PEVisionConfig) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(PEBlock(cfg) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, angles)
        return x


class PEAttentionPool(nn.Module):
    """One learned probe attends over all tokens, followed by a residual MLP."""

    def __init__(self, width: int, heads: int = PE_POOL_HEADS) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.randn(1, 1, width) * width**-0.5)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.layernorm = nn.LayerNorm(width)
        self.mlp = pe_mlp(width, 4 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probe = self.probe.expand(x.shape[0], -1, -1).to(x.dtype)
        pooled = self.attn(probe, x, x, need_weights=False)[0]
        return (pooled + self.mlp(self.layernorm(pooled)))[:, 0]


class PEVisionTower(nn.Module):
    """PE-Core vision encoder: patchify, +abs position, ln_pre, RoPE transformer, ln_post,
    attention pool, projection. Images (N, 3, H, W) normalised -> (N, output_dim)."""

    def __init__(self, cfg: PEVisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        scale = cfg.width**-0.5
        grid = cfg.image_size // cfg.patch_size
        self.conv1 = nn.Conv2d(3, cfg.width, cfg.patch_size, cfg.patch_size, bias=False)
        if cfg.use_cls_token:
            self.class_embedding = nn.Parameter(torch.randn(cfg.width) * scale)
        tokens = grid * grid + int(cfg.use_cls_token)
        self.positional_embedding = nn.Parameter(torch.randn(tokens, cfg.width) * scale)
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer = PETransformer(cfg)
        self.ln_post = nn.LayerNorm(cfg.width)
        self.attn_pool = PEAttentionPool(cfg.width) if cfg.attn_pool else None
        if cfg.output_dim is not None:
            self.proj = nn.Parameter(torch.randn(cfg.width, cfg.output_dim) * scale)

    @property
    def embed_dim(self) -> int:
        """Size of the pooled (and projected) output."""
        return self.cfg.output_dim or self.cfg.width

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Absolute position table for a grid_h x grid_w grid (bilinear if not pretrain)."""
        pos = self.positional_embedding
        grid = self.cfg.image_size // self.cfg.patch_size
        if (grid_h, grid_w) == (grid, grid):
            return pos
        n_cls = int(self.cfg.use_cls_token)
        table = pos[n_cls:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(grid_h, grid_w), mode="bilinear", align_corners=False)
        return torch.cat([pos[:n_cls], table.permute(0, 2, 3, 1).flatten(0, 2)], dim=0)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Final-normed tokens (N, cls + patches, width)."""
        grid_h, grid_w = x.shape[-2] // self.cfg.patch_size, x.shape[-1] // self.cfg.patch_size
        x = self.conv1(x).flatten(2).transpose(1, 2)
        if self.cfg.use_cls_token:
            x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)
        x = self.ln_pre(x + self.position_embedding(grid_h, grid_w))
        head_dim = self.cfg.width // self.cfg.heads
        angles = rope_2d_frequencies(head_dim, grid_h, grid_w, self.cfg.use_cls_token)
        return self.ln_post(self.transformer(x, angles.to(x.device)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(x)
        if self.attn_pool is not None:
            pooled = self.attn_pool(tokens)
        else:
            pooled = tokens[:, 0] if self.cfg.use_cls_token else tokens.mean(dim=1)
        return pooled @ self.proj if self.cfg.output_dim is not None else pooled
