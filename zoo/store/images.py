"""Image grids as PNG (no torchvision needed)."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from zoo.store.atomic import save_atomic


def make_grid(images: Tensor, nrow: int | None = None, pad: int = 2) -> Tensor:
    """[N, C, H, W] in [0, 1] -> one uint8 [H', W', C] image with ``nrow`` images a row."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = torch.ones(c, ncol * (h + pad) + pad, nrow * (w + pad) + pad)
    for i, img in enumerate(images.detach().float().cpu().clamp(0, 1)):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top:top + h, left:left + w] = img
    return (grid * 255).round().to(torch.uint8).permute(1, 2, 0)


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write images in [0, 1] as one PNG grid (atomically); ``scale`` enlarges small images."""
    from PIL import Image

    grid = make_grid(images, nrow).numpy()
    img = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    save_atomic(path, lambda tmp: img.save(tmp, format="PNG"))
    return path
