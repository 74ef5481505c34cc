"""Resuming a run: the newest good checkpoint, refused when it belongs to another model or when a flag would
change what the saved optimiser state and data order mean, and the recipe and segments the resumed run records."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any

from zoo.cards import Card
from zoo.errors import TrainingError
from zoo.training.config import FIXED_ON_RESUME, TRAJECTORY, TrainConfig
from zoo.training.record import recipe
from zoo.training.state import Checkpoint, CheckpointError, CheckpointManager


def say(message: str) -> None:
    print(f"zoo train: {message}", file=sys.stderr, flush=True)


def architecture(card: Card) -> str:
    """A fingerprint of what the weights mean: shapes and components (not the recipe)."""
    z = card.zoo
    arch = {k: z.get(k) for k in ("latent", "encoder", "decoder", "prior")}
    arch["data_shape"] = list(card.data_shape)
    return hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Resumed:
    """What a resume starts from: the checkpoint, the recipe (the saved one with the allowed overrides), the
    run's segments (one per resumed stretch with changes) and the training time of the earlier segments."""

    checkpoint: Checkpoint
    config: TrainConfig
    segments: list[dict[str, Any]]
    prior_seconds: float


def read_resume(manager: CheckpointManager, card: Card, overrides: dict[str, Any], command: str | None) -> Resumed:
    try:
        ckpt = manager.load_latest()
    except CheckpointError as e:
        raise TrainingError(str(e)) from None
    for skipped in ckpt.skipped:
        say(f"checkpoint {skipped}; falling back to the previous one")
    meta = ckpt.meta
    if meta.get("card") != card.name or meta.get("architecture") != architecture(card):
        raise TrainingError(f"the checkpoint {ckpt.path} was written by a run of {meta.get('card')!r} "
                            f"(architecture {meta.get('architecture')}), not of {card.name!r} "
                            f"(architecture {architecture(card)}); nothing was changed -- "
                            f"resume with the same model or train into a new --out")
    saved = TrainConfig(**meta["config"])
    given = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in given and "steps" not in given:
        given["steps"] = None
    changed = [k for k in given if k in saved.__dataclass_fields__ and given[k] != getattr(saved, k)]
    refused = [k for k in changed if k in FIXED_ON_RESUME]
    if refused:
        flags = ", ".join(f"--{k.replace('_', '-')} {given[k]!r} (the run used {getattr(saved, k)!r})"
                          for k in refused)
        raise TrainingError(f"--resume cannot change {flags}: the checkpoint's optimiser state and data "
                            f"order belong to the run's values; resume without them, or train into a new --out")
    config = dataclasses.replace(saved, **given)
    config.validate()
    inexact = [k for k in changed if k in TRAJECTORY]
    if inexact:
        say(f"resuming with changed {', '.join(inexact)} (applied from step {ckpt.step} on): the run will not "
            f"match an uninterrupted one")
    segments = [dict(seg) for seg in meta.get("segments") or []] or [
        {"from_step": 0, "beta": meta.get("beta"), "train": recipe(saved), "command": None}]
    prior_seconds = float(meta.get("train_seconds") or 0.0)
    last_beta = next((seg["beta"] for seg in reversed(segments) if seg.get("beta") is not None), None)
    diff = {k: {"from": getattr(saved, k), "to": given[k]} for k in changed}
    if last_beta is not None and card.beta != last_beta:
        diff["beta"] = {"from": last_beta, "to": card.beta}
    if diff and ckpt.step < (config.steps or float("inf")):
        say("resuming from step {} with changed {}: recorded as a new segment of the run (the card's "
            "results.segments), not as the recipe of the whole run".format(
                ckpt.step, ", ".join(f"{k} {v['from']!r} -> {v['to']!r}" for k, v in diff.items())))
    if diff:
        segments.append({"from_step": ckpt.step, "beta": card.beta,
                         "changed": {k: v["to"] for k, v in diff.items()}, "command": command})
    return Resumed(ckpt, config, segments, prior_seconds)
