"""Pytest fixture ``local_hub``: a ``LocalHub`` server wired into ``huggingface_hub`` for one test.

tests/conftest.py makes the ``local_hub`` fixture available to every test module.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.hub_server import LocalHub  # noqa: E402


def point_client_at(monkeypatch: pytest.MonkeyPatch, url: str, home: Path, token: str | None) -> None:
    """Point ``huggingface_hub`` (env vars *and* the constants it read at import time) at ``url``, cache in ``home``."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _detect_agent

    cache = home / "hub"
    env = {"HF_ENDPOINT": url, "HF_HOME": str(home), "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "HF_TOKEN_PATH": str(home / "token"), "HF_XET_CACHE": str(home / "xet")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_HUB_CACHE", "HUGGING_FACE_HUB_TOKEN",
                "HF_OIDC_RESOURCE", "HUGGINGFACE_CO_STAGING"):
        monkeypatch.delenv(key, raising=False)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    constant_values = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HUGGINGFACE_HUB_CACHE": str(cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_XET_CACHE": str(home / "xet"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_PROGRESS_BARS": True,
    }
    for key, value in constant_values.items():
        monkeypatch.setattr(constants, key, value, raising=False)
    # Agent detection would otherwise fetch a registry from the (import-time) endpoint on first use.
    monkeypatch.setattr(_detect_agent, "_registry", {"standardEnvVars": [], "harnesses": {}}, raising=False)


def set_offline(monkeypatch: pytest.MonkeyPatch, offline: bool = True) -> None:
    """Switch ``HF_HUB_OFFLINE`` on (or off) for the env var and the client's import-time constant."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


@pytest.fixture
def local_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalHub]:
    """A running ``LocalHub``; ``HF_ENDPOINT``/``HF_HOME``/``HF_HUB_CACHE``/``HF_TOKEN`` point at it and a tmp cache."""
    hub = LocalHub(tmp_path / "hub-server").start()
    try:
        point_client_at(monkeypatch, hub.url, tmp_path / "hf-home", hub.token)
        yield hub
    finally:
        hub.stop()


def register_card_folder(folder: Path, name: str) -> None:
    """Register the cards in ``folder`` as an in-process plugin (undone by the ``fresh_registry`` fixture)."""
    import zoo

    class CardPlugin:
        @zoo.hookimpl
        def register_cards(self, register):
            register(folder)

    zoo.get_registry().add_plugin(CardPlugin(), name=f"test-cards-{name}")
