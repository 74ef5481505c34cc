"""What a training run records about itself in its run folder's card: the recipe that ran, the command that
reproduces it, and the measured results (``zoo.results`` and the Hub's model-index)."""
from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any

from zoo.cards import Card
from zoo.cards.spec import ResultsSpec
from zoo.training.config import TrainConfig


def recipe(config: TrainConfig) -> dict[str, Any]:
    """The training recipe that ran, as a card ``zoo.train`` block (fields that differ from the defaults)."""
    defaults = TrainConfig()
    return {k: v for k, v in dataclasses.asdict(config).items() if v != getattr(defaults, k)}


def default_command(name: str, spec: str, out: str | Path, *, data_shape: str | None = None) -> str:
    shape = ["--data-shape", data_shape] if data_shape else []
    return shlex.join(["zoo", "train", name, "--data", spec, *shape, "--out", str(out)])


def flat(d: dict[str, Any]) -> dict[str, Any]:
    """A recipe for trackers' hyper-parameter tables (scalars only)."""
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in d.items()}


def previous_results(out: Path) -> ResultsSpec:
    """The results the run folder's card held before (a resumed run's), typed; none (every field None) when the
    folder has no readable card yet."""
    from zoo.errors import ZooError
    from zoo.store.run_folder import CONFIG, read_folder_card

    try:
        results = read_folder_card(out).spec.results if (Path(out) / CONFIG).is_file() else None
    except (OSError, ValueError, ZooError):
        return ResultsSpec()
    return results if results is not None else ResultsSpec()


def recorded(card: Card, command: str, seconds: float, segments: list[dict[str, Any]], previous: Any, *,
             nothing_new: bool) -> tuple[Card, str, float]:
    """(card, command, seconds) to record: with several segments, the card's train block and beta stay the
    first segment's (the run's recipe) and each later segment's changes are in results.segments; the
    command is the one that started the run; the time is the whole run's (``seconds``), or the previous record's
    when a finished run was resumed and nothing new ran (``nothing_new``)."""
    first = segments[0] if segments else {}
    command = first.get("command") or previous.get("command") or command
    if len(segments) > 1:
        fields: dict[str, Any] = {"train": first["train"]} if "train" in first else {}
        if first.get("beta") is not None:
            fields["objective.beta"] = first["beta"]
        card = card.with_fields(fields)
    elif nothing_new:
        seconds = float(previous.get("train_seconds", seconds))
    return card, command, seconds


def results_from_report(report: dict[str, Any], card: Card, config: TrainConfig, spec: str, *,
                        steps: int, seconds: float, command: str) -> dict[str, Any]:
    """The measured numbers that go into the card (``zoo.results`` and the Hub's model-index)."""
    from zoo import __version__

    from zoo.cards.measured import card_results
    from zoo.data.sources import split_label

    results = card_results(report)

    results.update({"dataset": spec, "split": report.get("split", "test"),
                    "split_label": split_label(spec, report.get("split", "test")), "beta": card.beta,
                    "seed": config.seed, "steps": steps, "train_seconds": round(seconds, 1),
                    "zoo_version": __version__, "command": command})
    from zoo.data.sources import resolve_commit

    revision = card.spec.data.revision if spec == card.spec.data.source else None
    commit = resolve_commit(spec, revision)  # a Hub dataset's commit sha, always, where it can be known
    if commit or revision:
        results["dataset_revision"] = commit or revision
    return results
