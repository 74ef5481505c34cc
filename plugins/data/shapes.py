"""``zoo:shapes`` (32x32) and ``zoo:shapes-64`` (64x64): a dSprites-like data set drawn in code, no download.

Every image is one white shape on black, a binary image (0 or 255), rendered from five factors on a full
grid (every combination once, so the factors are independent and uniform, as in dSprites, Matthey et al. 2017):

    shape        square, ellipse, heart                  3 values   (the ``label`` column too)
    scale        0.5 .. 1.0                               6 values   (linearly spaced)
    orientation  0 .. 75 degrees (radians in the column)  6 values   (steps of 15 degrees)
    pos_x, pos_y 0.25 .. 0.75 of the image width/height   10 values each

= 3 * 6 * 6 * 10 * 10 = 10,800 images.  Orientation stays inside [0, 90) degrees (dSprites uses [0, 360)):
a square looks the same after a quarter turn, so on a wider range that factor could not be read from the
image at all.  Rendering is pure numpy (a pixel is on when its centre lies inside the shape), so the images
are the same bytes on every machine; the test split is 1,080 images drawn per shape with the seed of
``zoo.data.splits`` (the convention of ``zoo:digits``).
"""
from __future__ import annotations

import math

import numpy as np

from zoo.data.embedded import EmbeddedDataset

SHAPES = ("square", "ellipse", "heart")
FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
RADIUS = 0.22  # the shape's reach at scale 1, as a fraction of the image side


def factor_values() -> dict[str, np.ndarray]:
    """The grid of each factor (``shape`` as the index into :data:`SHAPES`)."""
    return {"shape": np.arange(len(SHAPES), dtype=np.float64),
            "scale": np.linspace(0.5, 1.0, 6),
            "orientation": np.deg2rad(np.arange(0, 90, 15, dtype=np.float64)),
            "pos_x": np.linspace(0.25, 0.75, 10),
            "pos_y": np.linspace(0.25, 0.75, 10)}


def factor_grid() -> np.ndarray:
    """Every combination of the factor values, ``[10800, 5]`` float64, columns in :data:`FACTORS` order."""
    values = factor_values()
    mesh = np.meshgrid(*(values[f] for f in FACTORS), indexing="ij")
    return np.stack([m.ravel() for m in mesh], 1)


def _inside(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the shape-frame points (u, v) (reach about 1; v points down the image) are inside ``kind``."""
    if kind == 0:                                   # square, half side 0.75 (corners reach 1.06)
        return np.maximum(np.abs(u), np.abs(v)) <= 0.75
    if kind == 1:                                   # ellipse with semi-axes 1 and 0.5
        return u ** 2 + (v / 0.5) ** 2 <= 1.0
    x, y = 1.35 * u, -1.35 * v + 0.1                # heart (x^2 + y^2 - 1)^3 <= x^2 y^3, point down
    return (x ** 2 + y ** 2 - 1.0) ** 3 - x ** 2 * y ** 3 <= 0.0


def render(factors: np.ndarray, size: int = 32, chunk: int = 1024) -> np.ndarray:
    """uint8 images ``[N, size, size]`` (0 or 255) of the factor rows ``[N, 5]`` (:data:`FACTORS` order)."""
    factors = np.asarray(factors, dtype=np.float64)
    centres = (np.arange(size, dtype=np.float64) + 0.5) / size
    py, px = np.meshgrid(centres, centres, indexing="ij")                    # [size, size]
    out = np.zeros((len(factors), size, size), dtype=np.uint8)
    for start in range(0, len(factors), chunk):
        f = factors[start:start + chunk]
        kind, scale, theta, cx, cy = (f[:, i, None, None] for i in range(5))
        dx, dy = px - cx, py - cy
        r = RADIUS * scale
        cos, sin = np.cos(theta), np.sin(theta)
        u, v = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r     # rotate the pixel by -theta
        on = np.zeros(dx.shape, dtype=bool)
        for k in range(len(SHAPES)):
            rows = kind[:, 0, 0] == k
            if rows.any():
                on[rows] = _inside(k, u[rows], v[rows])
        out[start:start + len(f)] = on.astype(np.uint8) * 255
    return out


def read_shapes(size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images ``[N, size, size]`` uint8, labels = shape index ``[N]``, factors ``[N, 5]`` float64)."""
    factors = factor_grid()
    return render(factors, size), factors[:, 0].astype(np.int64), factors


_N = math.prod(len(v) for v in factor_values().values())
_CREDIT = ("Generated in code by latent-zoo (zoo_plugins.shapes), after dSprites: L. Matthey, I. Higgins, "
           "D. Hassabis and A. Lerchner, 'dSprites: Disentanglement testing Sprites dataset', 2017, "
           "https://github.com/deepmind/dsprites-dataset (no dSprites file is used).")
_NOTES = ("Binary images of one shape (square, ellipse, heart) on a full grid of 5 factors: shape 3, scale 6 "
          "(0.5..1), orientation 6 (0..75 degrees), pos_x 10, pos_y 10 (0.25..0.75); the factor values are "
          "kept as columns. Test = 10% of the rows drawn per shape (stratified), seed 0.")


def _dataset(name: str, size: int) -> EmbeddedDataset:
    return EmbeddedDataset(
        name=name, shape=(1, size, size), splits={"train": _N - _N // 10, "test": _N // 10},
        reader=lambda: read_shapes(size), license="apache-2.0", credit=_CREDIT,
        homepage="https://github.com/deepmind/dsprites-dataset", notes=_NOTES,
        title=f"dSprites-like shapes with known factors, {size}x{size}, generated in code (zoo:{name})",
        factors=FACTORS, label_names=SHAPES)


SHAPES_32 = _dataset("shapes", 32)
SHAPES_64 = _dataset("shapes-64", 64)
