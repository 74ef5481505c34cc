"""``zoo train``: fit any named model by maximising its (beta-)ELBO on a data set.

The card's ``zoo.train`` block is the recipe; keyword arguments (or CLI flags) override it.
At the end the model is evaluated on the held-out split with ``diagnose`` and the run folder
gets ``model.safetensors``, ``config.json`` and the card with the measured results.
"""
from __future__ import annotations

import dataclasses
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .build import build_model
from .cards import Card
from .catalog import get_card
from .errors import CardError, ShapeError, ZooError


@dataclass
class TrainConfig:
    """The training recipe (card ``zoo.train`` fields, all overridable)."""

    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    grad_clip: float | None = None
    weight_decay: float = 0.0
    eval_iwae_k: int = 100
    eval_batch_size: int = 500

    @classmethod
    def from_card(cls, card: Card, **overrides: Any) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        recipe = dict(card.zoo.get("train") or {})
        for key in recipe:
            if key not in known:
                raise CardError(f"{card.path or card.name}: field 'zoo.train.{key}': unknown training option; "
                                f"allowed: {', '.join(sorted(known))}")
        recipe.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**recipe)
        if config.epochs is None and config.steps is None:
            config.epochs = 10
        return config


class TrainingError(ZooError):
    """Training stopped: a non-finite loss, or a setting that cannot work."""


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA, then MPS, then CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class TrainResult:
    model: Any
    folder: Path
    report: dict[str, Any]


def train(name: str | Card, *, out: str | Path, data: str | None = None, beta: float | None = None,
          progress: bool = True, command: str | None = None, **overrides: Any) -> TrainResult:
    """Train model ``name`` on ``data`` (default: the card's) and write the run to ``out``."""
    from .checkpoint import save_model
    from .data import load_tensors
    from .diagnostics import diagnose

    card = name if isinstance(name, Card) else get_card(name)
    if beta is not None:
        card = dataclasses.replace(card, zoo={**card.zoo, "objective": {**card.zoo.get("objective", {}), "beta": beta}})
    config = TrainConfig.from_card(card, **overrides)
    spec = data or card.zoo["data"]["source"]
    train_x = load_tensors(spec, "train")
    test_x = load_tensors(spec, card.zoo["data"].get("test_split", "test"))
    check_shape(train_x, card, spec)

    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(card).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    total = config.steps or config.epochs * steps_per_epoch
    generator = torch.Generator().manual_seed(config.seed)

    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"train {card.name}", disable=not progress, unit="step", file=sys.stderr,
               mininterval=0.2 if sys.stderr.isatty() else 10.0)
    model.train()
    step, started = 0, time.perf_counter()
    while step < total:
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(train_x), config.batch_size):
            if step >= total:
                break
            x = model.prepare(train_x[order[start:start + config.batch_size]])
            terms = model.elbo(x, prepared=True)
            loss = terms.loss(card.beta)
            if not torch.isfinite(loss):
                raise TrainingError(f"training {card.name!r} stopped at step {step}: the loss is {float(loss)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            bar.update(1)
            if step % 20 == 0 or step == total:
                bar.set_postfix(loss=f"{loss.item():.2f}", elbo=f"{terms.elbo.detach().mean().item():.2f}", refresh=False)
    bar.close()
    train_time = time.perf_counter() - started

    model.eval()
    report = diagnose(model, test_x, iwae_k=config.eval_iwae_k, batch_size=config.eval_batch_size)
    report.update({"data": spec, "split": card.zoo["data"].get("test_split", "test")})
    results = results_from_report(report, card, config, spec, steps=step, seconds=train_time,
                                  command=command or default_command(card.name, spec, out))
    save_model(model, out, card.with_results(results))
    model.info.update({"weights": str(Path(out) / "model.safetensors"), "source": str(out)})
    return TrainResult(model, Path(out), report)


def check_shape(x: torch.Tensor, card: Card, spec: str) -> None:
    if tuple(x.shape[1:]) != card.data_shape:
        raise ShapeError(f"data {spec!r} has images of shape {list(x.shape[1:])} (channels, height, width) "
                         f"but model {card.name!r} expects {list(card.data_shape)}")


RESULT_KEYS = ("elbo", "distortion", "rate", "mutual_information", "marginal_kl", "active_units",
               "latent_dims", "nll", "iwae_k", "elbo_bpd", "nll_bpd", "mi_estimator", "nll_estimator", "n")


def results_from_report(report: dict[str, Any], card: Card, config: TrainConfig, spec: str, *,
                        steps: int, seconds: float, command: str) -> dict[str, Any]:
    """The measured numbers that go into the card (``zoo.results`` and the Hub's model-index)."""
    from . import __version__

    results = {k: _round(report.get(k)) for k in RESULT_KEYS if report.get(k) is not None}
    results.update({"dataset": spec, "split": report.get("split", "test"), "beta": card.beta,
                    "seed": config.seed, "steps": steps, "train_seconds": round(seconds, 1),
                    "zoo_version": __version__, "command": command})
    return results


def default_command(name: str, spec: str, out: str | Path) -> str:
    return shlex.join(["zoo", "train", name, "--data", spec, "--out", str(out)])


def _round(v):
    return round(v, 4) if isinstance(v, float) else v
