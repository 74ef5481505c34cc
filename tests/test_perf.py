"""Performance plumbing (issue 22): what must stay true while it gets faster."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from torch import nn

from zoo.assemble import build_model
from zoo.cards.catalog import get_card
from zoo.errors import CardError


def _with(card, **components):
    return dataclasses.replace(card, zoo={**card.zoo, **components})


def test_absurd_sizes_refused_before_allocating_without_the_compiler_stack():
    code = """
import sys, dataclasses
from zoo.assemble import build_model
from zoo.cards.catalog import get_card
from zoo.errors import CardError
card = get_card("vae-mnist")
build_model(card, empty=True)                       # a load's build: nothing refused
for enc, how in (({"name": "mlp", "hidden": [2 ** 20, 2 ** 20]}, "declared by the component"),
                 ({"name": "conv", "channels": [2 ** 16, 2 ** 16]}, "counted before allocating")):
    try:
        build_model(dataclasses.replace(card, zoo={**card.zoo, "encoder": enc}))
    except CardError as e:
        assert "field 'zoo.encoder'" in str(e) and how in str(e) and "GiB of parameters" in str(e), e
    else:
        raise AssertionError(enc)
assert "sympy" not in sys.modules and "torch._dynamo" not in sys.modules, "the size check imported sympy"
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_allocation_guard_counts_requested_bytes_and_ignores_meta():
    from zoo.sizeguard import AllocationGuard, TooBig

    with AllocationGuard(10 ** 9) as guard:
        nn.Linear(100, 10)
        torch.zeros(5, 4, dtype=torch.float64)
        torch.empty((1000, 1000), device="meta")
    assert guard.counted == (100 * 10 + 10) * 4 + 20 * 8
    with pytest.raises(TooBig), AllocationGuard(1000):
        torch.empty(10, 100)


@pytest.mark.parametrize("channels, shape", [([32, 64, 128], (1, 28, 28)), ([8, 16], (3, 32, 32)), ([4], (1, 7, 9))])
def test_conv_output_shape_by_arithmetic_matches_a_forward(channels, shape):
    from zoo_plugins.layers import _arithmetic_shape, conv_stack

    body = nn.Sequential(conv_stack(shape[0], channels), nn.Flatten())
    assert _arithmetic_shape(body, shape) == tuple(body(torch.zeros(1, *shape)).shape[1:])


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["plugins"], ["info", "vae-mnist"], ["train", "--help"]])
def test_listing_and_help_import_no_torch(argv):
    code = f"""
import contextlib, io, sys
from zoo.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as e:
        code = e.code
assert code == 0, code
assert "torch" not in sys.modules, "zoo {' '.join(argv)} imported torch"
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
