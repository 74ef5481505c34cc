"""Shared test set-up: tiny seeded models, a private HF cache, and the opt-in markers."""
from __future__ import annotations

import os
import tempfile

import pytest
import torch

# Keep the Hugging Face caches of the test run away from the user's (set before any HF import).
_HF_HOME = tempfile.mkdtemp(prefix="zoo-test-hf-")
os.environ.setdefault("HF_HOME", _HF_HOME)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
# One intra-op thread: on 2 shared cores, more threads (in this process and the subprocesses that
# tests start) oversubscribe the CPU and make small models several times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


from hub_fixtures import local_hub  # noqa: E402,F401  (the local Hub server fixture, for every module)
from make_cards import make_card as _make_card  # noqa: E402


@pytest.fixture
def make_card():
    """``make_card(name, **zoo_block)`` -> a validated Card built from dicts (see tests/make_cards.py)."""
    return _make_card


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def fresh_registry():
    """A registry rebuilt from the entry points, restored afterwards."""
    from zoo.registry import get_registry, reset_registry

    reset_registry()
    yield get_registry()
    reset_registry()
