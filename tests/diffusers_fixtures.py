"""Helpers of the offline equivalence tests: serve a diffusers-layout folder through the local Hub
server, and register a copy of a real card re-pinned to the served commit (optionally with other
component arguments or shapes)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from hub_fixtures import register_card_folder

ROOT = Path(__file__).resolve().parents[1]


def perturb_norms(net: torch.nn.Module, seed: int, scale: float = 0.1) -> None:
    """GroupNorm affine parameters start at 1 / 0: perturb them so a wrong mapping of them shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name:
                p.add_(scale * torch.randn(p.shape, generator=g))


def serve(hub, repo: str, folder: Path) -> str:
    """Upload ``folder`` as ``repo`` to the local Hub server with the real huggingface_hub client; the commit."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=hub.token)
    api.create_repo(repo, exist_ok=True)
    return api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message="diffusers layout").oid


def local_card(tmp_path: Path, card: str, name: str, *, commit: str, repo: str | None = None,
               zoo: dict[str, Any] | None = None) -> str:
    """``cards/CARD.md`` with ``zoo.weights.revision`` = commit (and ``repo``, and ``zoo`` entries merged in,
    one level deep), registered under ``name``; its body is kept."""
    text = (ROOT / "cards" / f"{card}.md").read_text()
    head, body = text[3:].split("\n---\n", 1)
    front = yaml.safe_load(head)
    block = front["zoo"]
    block["weights"]["revision"] = commit
    if repo is not None:
        block["weights"]["repo"] = repo
    for key, value in (zoo or {}).items():
        if isinstance(value, dict) and isinstance(block.get(key), dict):
            block[key] = {**block[key], **value}
        else:
            block[key] = value
    folder = tmp_path / f"cards-{name}"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.md").write_text("---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n" + body)
    register_card_folder(folder, name)
    return name
