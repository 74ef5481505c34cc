"""The training recipe: :class:`TrainConfig`, one field per card ``zoo.train`` key and ``zoo train`` flag.

Each field carries its help text; :func:`add_flags` makes the command-line flags from the fields,
so a new option is written once, here.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from zoo.cards import Card
from zoo.errors import CardError

PRECISIONS = {"no": "no", "fp32": "no", "bf16": "bf16", "fp16": "fp16"}
SCHEDULES = ("constant", "cosine", "linear")
# settings a resumed run cannot change (the optimiser state, the data order and the noise belong to them)
FIXED_ON_RESUME = ("optimizer", "seed", "streaming", "stream_buffer", "algorithm", "validation")
# settings that change the trajectory: changing them on --resume makes the resume inexact
TRAJECTORY = ("batch_size", "lr", "seed", "grad_accum", "lr_schedule", "warmup_steps", "optimizer",
              "weight_decay", "grad_clip", "ema", "precision", "streaming", "steps", "epochs")


def option(default: Any, help: str, *, choices: tuple | None = None, flag: bool = True, **kw: Any):
    """A recipe field: its default, help text, allowed values and whether ``zoo train`` has a flag for it."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag, **kw})


@dataclass
class TrainConfig:
    """The training recipe (card ``zoo.train`` fields, all overridable by flags or keyword arguments)."""

    epochs: int | None = option(None, "passes over the training data (default 10 when steps is not set)")
    steps: int | None = option(None, "optimiser steps (takes precedence over --epochs)")
    batch_size: int = option(128, "global batch of one optimiser step (all processes and grad_accum together)")
    lr: float = option(1e-3, "learning rate")
    seed: int = option(0, "seed of the initialisation, the data order and the noise")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    grad_clip: float | None = option(None, "clip the global gradient norm to this value")
    weight_decay: float = option(0.0, "weight decay of the optimiser")
    eval_iwae_k: int = option(100, "importance samples of the final NLL estimate (IWAE k)")
    eval_batch_size: int = option(500, "batch size of the held-out evaluation")
    optimizer: str = option("adam", "optimiser: any torch.optim class by name, case-insensitive (adam, adamw, sgd, "
                                    "rmsprop, ...)")
    optimizer_args: dict = option(None, "keyword arguments of the optimiser besides lr and weight_decay, as JSON on "
                                        "the command line, e.g. '{\"betas\": [0.9, 0.99]}'")
    precision: str | None = option(None, "mixed precision no | bf16 | fp16 (fp16: GPU only); default: accelerate's "
                                         "setting (accelerate launch --mixed_precision / accelerate config), else no")
    grad_accum: int = option(1, "micro-batches per optimiser step")
    lr_schedule: str = option("constant", "learning-rate schedule after warm-up: constant, cosine, linear, or a "
                                          "torch.optim.lr_scheduler class by name (e.g. StepLR with lr_schedule_args)")
    lr_schedule_args: dict = option(None, "keyword arguments of a torch.optim.lr_scheduler class, as JSON")
    warmup_steps: int = option(0, "steps of linear learning-rate warm-up from 0")
    ema: float | None = option(None, "EMA decay of the weights, e.g. 0.9999 (0 or unset: off)")
    checkpoint_every: int = option(1000, "steps between checkpoints (one is also written at the end)")
    keep_checkpoints: int = option(3, "how many checkpoints to keep")
    log_every: int = option(50, "steps between metric rows")
    eval_every: int = option(1000, "steps between held-out ELBO evaluations (0: at the end only)")
    eval_points: int = option(1000, "held-out images in the periodic evaluation")
    sample_every: int = option(1000, "steps between sample grids (0: at the end only)")
    num_samples: int = option(64, "images in each sample grid")
    streaming: bool = option(False, "stream the data set with Hugging Face datasets instead of loading it into memory")
    stream_buffer: int = option(1000, "shuffle buffer of a streamed data set")
    algorithm: str = option("gradient", "gradient (the optimiser on the card's objective) or a registered "
                                        "fitting algorithm, e.g. em for Gaussian mixtures")
    em_iters: int = option(100, "fitting algorithms: at most this many iterations")
    em_tol: float = option(1e-6, "fitting algorithms: stop when an iteration gains less (nats per image)")
    keep_best: bool = option(False, "also keep the weights of the best held-out ELBO (periodic evaluations and the "
                                    "end) as model_best.safetensors, with its step in the card")
    validation: int = option(0, "hold out this many training images (a fixed seeded draw, never trained on) for the "
                                "periodic evaluations and keep_best, so model selection never sees the test split "
                                "(0: the periodic evaluations use the test split)")
    restore_best: bool = option(False, "at the end, evaluate and save the weights of the best held-out ELBO instead of "
                                       "the last ones (early stopping; needs keep_best)")
    report_to: str = option("auto", "trackers: comma-separated tensorboard, wandb, trackio, mlflow, all (those "
                                    "installed), none, or auto (tensorboard when installed); metrics.csv is always "
                                    "written")
    init_from: str | None = option(None, "a card name or run folder whose weights initialise this model before training "
                                         "(every tensor of it must exist here with the same name and shape, e.g. a VAE's "
                                         "encoder and decoder under a new prior; the rest keeps its initialisation)")
    freeze: list | None = option(None, "components not updated by the optimiser, e.g. [encoder, decoder] (for "
                                       "freeze_steps steps, or the whole run)", flag=False)
    freeze_steps: int = option(0, "steps during which the 'freeze' components stay fixed (0: the whole run)")
    threads: int | None = option(None, "torch CPU threads per process (default: torch's for one process; cores // "
                                       "processes when several share the machine)")

    @classmethod
    def from_card(cls, card: Card, **overrides: Any) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        recipe = dict(card.zoo.get("train") or {})
        for key in recipe:
            if key not in known:
                raise CardError(f"{card.path or card.name}: field 'zoo.train.{key}': unknown training option; "
                                f"allowed: {', '.join(sorted(known))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        if "epochs" in given and "steps" not in given:
            recipe.pop("steps", None)
        recipe.update(given)
        try:
            config = cls(**recipe)
        except TypeError as e:
            raise CardError(f"training options: {e}") from None
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
        """(field, what is wrong) for the first field that cannot work, or None."""
        def integer(v, low: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= low

        for key in ("batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints", "log_every",
                    "eval_points", "num_samples", "eval_batch_size", "eval_iwae_k", "stream_buffer", "em_iters"):
            if not integer(getattr(self, key), 1):
                return key, "must be a positive integer"
        for key in ("steps", "epochs"):
            v = getattr(self, key)
            if v is not None and not integer(v, 1):
                return key, "must be a positive integer"
        for key in ("eval_every", "sample_every", "warmup_steps", "seed", "validation", "freeze_steps"):
            if not integer(getattr(self, key), 0):
                return key, "must be a non-negative integer"
        if self.restore_best and not self.keep_best:
            return "restore_best", "needs keep_best (the best weights are the ones keep_best keeps)"
        if self.validation and self.streaming:
            return "validation", "cannot carve a validation set from a streamed data set (use streaming false)"
        if not (isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool) and 0 < self.lr < float("inf")):
            return "lr", "must be a positive number"
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            return "weight_decay", "must be a number >= 0"
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                return f.name, f"must be one of {', '.join(choices)}"
        if self.precision is not None and self.precision not in PRECISIONS:
            return "precision", f"must be one of {', '.join(PRECISIONS)} (or unset: accelerate's setting)"
        if not _torch_class("optim", self.optimizer):
            return "optimizer", "must name a torch.optim optimiser (adam, adamw, sgd, ...)"
        if self.lr_schedule not in SCHEDULES and not _torch_class("optim.lr_scheduler", self.lr_schedule):
            return "lr_schedule", f"must be {', '.join(SCHEDULES)} or a torch.optim.lr_scheduler class name"
        for key in ("optimizer_args", "lr_schedule_args"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), dict):
                return key, "must be a mapping of keyword arguments"
        if self.freeze is not None and (not isinstance(self.freeze, list) or not self.freeze or not all(
                part in ("encoder", "decoder", "prior") for part in self.freeze)):
            return "freeze", "must be a non-empty list of components: encoder, decoder, prior"
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            return "init_from", "must be a card name or a run folder"
        if self.threads is not None and not integer(self.threads, 1):
            return "threads", "must be a positive integer"
        if self.ema is not None and self.ema != 0 and not (0 < self.ema < 1):
            return "ema", "must be a decay in (0, 1), e.g. 0.9999, or 0/null for off"
        if self.grad_clip is not None and not self.grad_clip > 0:
            return "grad_clip", "must be a positive number"
        if not isinstance(self.algorithm, str) or not self.algorithm:
            return "algorithm", "must be 'gradient' or the name of a registered fitting algorithm"
        if not (isinstance(self.em_tol, (int, float)) and self.em_tol >= 0):
            return "em_tol", "must be a number >= 0"
        return None


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
