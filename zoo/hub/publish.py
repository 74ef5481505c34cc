"""``zoo push``: publish a run folder (safetensors + config + model card) to a Hugging Face Hub repo.

The repo gets ``model.safetensors`` (and every other ``*.safetensors`` variant of the run, e.g. EMA or raw
weights), ``config.json`` and ``README.md``: the model card rendered from the run's card, with the Hub's YAML
metadata (license, library_name, tags, datasets, base_model, pipeline_tag), a ``model-index`` with the measured
results and a results table with the command that reproduces them.  Everything is checked before anything is
uploaded: the weights must load into the card's architecture and the metadata must be what the Hub accepts.
All files go up in one commit, so a repo never holds half a model.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import WeightsError

__all__ = ["push", "render_readme", "weights_block"]


def _weight_files(folder: Path) -> list[Path]:
    from zoo.store.run_folder import WEIGHTS

    if not folder.is_dir():
        raise WeightsError(f"{folder} is not a run folder (expected a folder with {WEIGHTS}, config.json and "
                           f"README.md, as `zoo train` writes)")
    files = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if not any(p.name == WEIGHTS for p in files):
        raise WeightsError(f"{folder} has no {WEIGHTS}: nothing to publish (train a model with "
                           f"`zoo train NAME --out {folder}`)")
    return files


def render_readme(run_dir: str | os.PathLike[str], *, repo_id: str | None = None) -> str:
    """The README.md that ``push`` uploads for ``run_dir``, validated against what the Hub accepts."""
    from zoo.cards import check_hub_metadata
    from zoo.store.run_folder import CARD, read_folder_card

    folder = Path(run_dir)
    card = read_folder_card(folder)
    text = card.to_markdown(repo_id=repo_id)
    if repo_id:
        text = _with_use_section(text, card, repo_id, has_samples=_samples(folder) is not None)
    source = card.path if card.path is not None else folder / CARD
    check_hub_metadata(text, source=source)
    return text


def _with_use_section(text: str, card, repo_id: str, *, has_samples: bool) -> str:
    """The pushed card says how to install and load the model, and shows its samples."""
    head, body = text.split("\n---\n", 1)
    use = ["## Use", "", "```bash", "pip install latent-zoo", "```", "", "```python", "import zoo", "",
           f'model = zoo.load("hf://{repo_id}")        # or zoo.LatentModel.from_pretrained("{repo_id}")',
           "images = model.sample(16)                  # images in [0, 1]",
           "terms = model.elbo(x)                      # per-image ELBO, distortion and rate (nats)", "```", "",
           f"    zoo sample hf://{repo_id} --n 64 --out samples.png",
           f"    zoo diagnose hf://{repo_id} --data {card.spec.data.source}", ""]
    if has_samples:
        use += ["![samples from this model](samples.png)", ""]
    return f"{head}\n---\n" + "\n".join(use) + "\n" + body


def _samples(folder: Path) -> Path | None:
    """The run's last sample grid, if it wrote one."""
    grids = sorted((folder / "samples").glob("step-*.png")) if (folder / "samples").is_dir() else []
    if (folder / "samples.png").is_file():
        return folder / "samples.png"
    return grids[-1] if grids else None


def weights_block(result: dict[str, Any], file: str = "model.safetensors") -> dict[str, str]:
    """The ``zoo.weights`` block a card needs to load the pushed weights, pinned to the pushed commit."""
    revision = result["commit"]
    return {"repo": result["repo_id"], "revision": revision, "file": file, "sha256": result["files"][file]}


def push(run_dir: str | os.PathLike[str], repo_id: str, *, private: bool = False, revision: str | None = None,
         create_pr: bool = False, token: str | None = None, commit_message: str | None = None) -> dict[str, Any]:
    """Upload the run in ``run_dir`` to the Hub repo ``repo_id`` (created if needed) in one commit.

    Returns ``push_folder``'s answer (``repo_id``, ``revision``, ``commit``, ``commit_url``, ``pr_url``,
    ``pr_revision``) plus ``files`` (path in repo -> sha256) and ``weights`` (the ``zoo.weights`` card block
    that pins the pushed ``model.safetensors``)."""
    from zoo import __version__
    from zoo.assemble import build_model
    from zoo.cards import hub_metadata
    from zoo.cards.hub_schema import validate_on_hub
    from zoo.store.run_folder import CARD, CONFIG, WEIGHTS, read_folder_card
    from zoo.store.weights import load_weights, read_weights
    from zoo.hub import hash_file, parse_hf_uri, push_folder

    repo_id, _ = parse_hf_uri(f"hf://{repo_id}")
    folder = Path(run_dir)
    weights = _weight_files(folder)
    card = read_folder_card(folder)
    readme = render_readme(folder, repo_id=repo_id)
    validate_on_hub(readme, source=card.path or folder / CARD)
    model = build_model(card)
    for path in weights:  # refuse weights that would not load back, before anything is uploaded
        load_weights(model, read_weights(path), str(path))
    config_path = folder / CONFIG
    config = json.loads(config_path.read_text()) if config_path.is_file() else {
        "name": card.name, "zoo_version": __version__, "zoo": {**card.zoo, "name": card.name}}
    config["metadata"] = hub_metadata(card)

    files: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        stage = Path(tmp)
        for path in weights:
            try:
                os.link(path, stage / path.name)
            except OSError:
                shutil.copyfile(path, stage / path.name)
            files[path.name] = hash_file(stage / path.name, "sha256")
        (stage / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (stage / CARD).write_text(readme, encoding="utf-8")
        extras = [(p, p.relative_to(folder).as_posix()) for p in sorted((folder / "tensorboard").rglob("*"))
                  if p.is_file()] if (folder / "tensorboard").is_dir() else []  # the Hub's Metrics tab
        grid = _samples(folder)
        if grid is not None:
            extras.append((grid, "samples.png"))
        for src, rel in extras:
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, stage / rel)
        for name in (CONFIG, CARD):
            files[name] = hash_file(stage / name, "sha256")
        message = commit_message or f"Upload {card.name} with latent-zoo {__version__}"
        # a re-push replaces the model: weights variants and metrics the new run no longer has go
        result = push_folder(stage, repo_id, token=token, private=private, revision=revision,
                             create_pr=create_pr, commit_message=message,
                             delete_patterns=("*.safetensors", "tensorboard/*", "samples.png"))
    result["files"] = files
    result["weights"] = weights_block(result, WEIGHTS)
    return result
