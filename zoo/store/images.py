"""Image grids as PNG (no torchvision needed)."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from zoo.store.atomic import save_atomic


def check_png_path(path: str | Path, flag: str = "--out") -> Path:
    """The PNG file to write: refuse a folder or a name whose extension is not .png (the writers write PNG only),
    before anything is computed; a UsageError naming the flag."""
    from zoo.errors import UsageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give the PNG file to write, e.g. {path / 'grid.png'}")
    if path.suffix.lower() != ".png":
        raise UsageError(f"{flag} {path}: the image is written as PNG; give a file name ending in .png "
                         f"(e.g. {path.with_suffix('.png') if path.suffix else path.parent / (path.name + '.png')})")
    return path


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


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, scale: int = 1,
              row_labels: list[str] | None = None, pad: int = 2) -> Path:
    """Write images in [0, 1] as one PNG grid (atomically); ``scale`` enlarges small images;
    ``row_labels`` (one per row of the grid) are written in a margin left of the rows."""
    from PIL import Image

    grid = make_grid(images, nrow, pad).numpy()
    img = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    if row_labels is not None:
        img = _with_row_labels(img, row_labels, (images.shape[2] + pad) * scale, pad * scale)
    path = check_png_path(path, "path")
    save_atomic(path, lambda tmp: img.save(tmp, format="PNG"))
    return path


def _with_row_labels(img, labels: list[str], row_height: int, top: int):
    """``img`` with a white margin on the left holding one text label per grid row (PIL's default font)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    draw = ImageDraw.Draw(img)
    width = max((int(draw.textlength(t, font=font)) for t in labels), default=0) + 8
    out = Image.new(img.mode, (img.width + width, img.height), 255 if img.mode == "L" else (255,) * len(img.mode))
    out.paste(img, (width, 0))
    draw = ImageDraw.Draw(out)
    for r, text in enumerate(labels):
        y = top + r * row_height + max(0, (row_height - top - 11) // 2)
        draw.text((4, y), text, fill=0 if img.mode == "L" else (0,) * len(img.mode), font=font)
    return out
