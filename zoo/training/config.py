"""The training recipe: :class:`TrainConfig`, one field per card ``zoo.train`` key and ``zoo train`` flag.

The fields (type, default, help text, allowed values) are declared once, in the typed card
(:class:`zoo.cards.spec.TrainSpec`, where a card's ``zoo.train`` is checked when it is read); TrainConfig is
their mutable copy that flags and keyword arguments override, and :func:`add_flags` makes the command-line
flags from them, so a new option is written once, there.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from zoo.cards.schema import Card
from zoo.cards.spec import PRECISIONS, SCHEDULES, TrainSpec, thaw, train_problem  # noqa: F401 - PRECISIONS: loop
from zoo.errors import CardError

# settings a resumed run cannot change (the optimiser state, the data order and the noise belong to them)
FIXED_ON_RESUME = ("optimizer", "seed", "streaming", "stream_buffer", "algorithm", "validation")
# settings that change the trajectory: changing them on --resume makes the resume inexact
TRAJECTORY = ("batch_size", "lr", "seed", "grad_accum", "lr_schedule", "warmup_steps", "optimizer",
              "weight_decay", "grad_clip", "ema", "precision", "streaming", "steps", "epochs")


class _Recipe:
    """TrainConfig's methods (its fields are TrainSpec's, below)."""

    @classmethod
    def from_card(cls, card: Card, **overrides: Any) -> "TrainConfig":
        """The card's ``zoo.train`` (already checked when the card was read) with ``overrides`` (flags, keyword
        arguments; None: not given) over it; an override that cannot work is refused naming its flag."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise CardError(f"training options: unknown option {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
        spec = card.spec.train
        recipe = {name: _plain(getattr(spec, name)) for name in known}
        given = {k: v for k, v in overrides.items() if v is not None}
        if "epochs" in given and "steps" not in given:
            recipe["steps"] = None
        recipe.update(given)
        config = cls(**recipe)
        if config.epochs is None and config.steps is None:
            config.epochs = 10
        problem = config.problem()
        if problem is not None:
            key, why = problem
            if key in given:
                raise CardError(f"--{key.replace('_', '-')} (zoo.train(..., {key}=)): {why} (got {given[key]!r})")
            raise CardError(f"{card.path or card.name}: field 'zoo.train.{key}': {why} (got {getattr(config, key)!r})")
        return config

    def validate(self, where: str = "training option") -> None:
        """Raise CardError naming the first bad field (``where`` says whose it is)."""
        problem = self.problem()
        if problem is not None:
            key, why = problem
            raise CardError(f"{where} {key!r} (--{key.replace('_', '-')}): {why} (got {getattr(self, key)!r})")

    def problem(self) -> tuple[str, str] | None:
        """(field, what is wrong) for the first field that cannot work, or None: the typed card's checks
        (zoo.cards.spec.train_problem), then the names torch must know (optimiser, learning-rate schedule)."""
        problem = train_problem(self)
        if problem is not None:
            return problem
        if not _torch_class("optim", self.optimizer):
            return "optimizer", "must name a torch.optim optimiser (adam, adamw, sgd, ...)"
        if self.lr_schedule not in SCHEDULES and not _torch_class("optim.lr_scheduler", self.lr_schedule):
            return "lr_schedule", f"must be {', '.join(SCHEDULES)} or a torch.optim.lr_scheduler class name"
        return None


def _plain(value: Any) -> Any:
    """A TrainSpec value as a TrainConfig holds it: mappings as dicts, the freeze tuple as a list."""
    return thaw(value) if value is not None else None


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [(f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata))
     for f in dataclasses.fields(TrainSpec)],
    bases=(_Recipe,),
    namespace={"__doc__": "The training recipe (card ``zoo.train`` fields, all overridable by flags or keyword "
                          "arguments): zoo.cards.spec.TrainSpec's fields, mutable."})
TrainConfig.__module__ = __name__


def _torch_class(module: str, name: Any):
    """The torch.<module> class called ``name`` (case-insensitive), or None."""
    import importlib

    if not isinstance(name, str) or not name:
        return None
    mod = importlib.import_module(f"torch.{module}")
    wanted = name.lower()
    for attr in dir(mod):
        obj = getattr(mod, attr)
        if attr.lower() == wanted and isinstance(obj, type):
            return obj
    return None


def _json_mapping(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON mapping, e.g. '{{\"momentum\": 0.9}}': {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON mapping, got {text!r}")
    return value


def _flag_type(f: dataclasses.Field) -> Any:
    text = str(f.type)
    if "bool" in text:
        return None
    if text.startswith("dict"):
        return _json_mapping
    for name, kind in (("int", int), ("float", float)):
        if text.startswith(name):
            return kind
    return str


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per TrainConfig field (its help text and choices); unset flags keep the card's value."""
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata.get("flag", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _flag_type(f)
        if kind is None:
            parser.add_argument(flag, action="store_true", default=None, help=f.metadata["help"])
            continue
        choices = f.metadata.get("choices")
        parser.add_argument(flag, type=kind, choices=choices, default=None,
                            help=f"{f.metadata['help']} (card default: {f.default})" if f.default is not None
                            else f.metadata["help"])


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig overrides given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if f.metadata.get("flag", True) and getattr(args, f.name, None) is not None}
