"""``zoo train``: fit any named model by maximising its (beta-)ELBO on a data set.

The card's ``zoo.train`` block is the recipe (:class:`~zoo.training.config.TrainConfig`); keyword
arguments (or CLI flags) override it.  One loop serves every model, on one CPU/GPU or many
processes:

* the engine is Hugging Face ``accelerate`` (device placement, bf16/fp16 autocast and loss
  scaling, DDP over NCCL/gloo when launched with ``accelerate launch`` or ``torchrun``);
* ``batch_size`` is the *global* batch of one optimiser step; it is split over processes and
  ``grad_accum`` micro-batches, so a recipe means the same thing on 1 CPU or 64 GPUs;
* the data order is a function of (seed, epoch) only, so a checkpoint (model, EMA, optimiser,
  scheduler, RNG states, data position -- see :mod:`zoo.training.state`) resumes exactly;
* a non-finite loss stops the run naming the step; the last good checkpoint stays;
* metrics go to ``metrics.csv`` and TensorBoard, sample grids to ``samples/``.

At the end the model (EMA weights when EMA is on) is evaluated on the held-out split with
``diagnose`` and the run folder gets ``model.safetensors`` (+ ``model_raw.safetensors`` with
EMA), ``config.json`` and the card with the measured results.

:func:`train` is the orchestration; :class:`TrainLoop` holds one run's state, one short method
per job (set up, step, log, evaluate, checkpoint, finish).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.assemble import build_model
from zoo.cards import Card
from zoo.cards.catalog import get_card
from zoo.errors import CardError, ShapeError, TrainingError, TrainingInterrupted  # noqa: F401 - raised here, caught by the CLI
from zoo.training.config import FIXED_ON_RESUME, PRECISIONS, SCHEDULES, TRAJECTORY, TrainConfig, _torch_class
from zoo.training.engine import _dist_env, _make_accelerator, default_threads, isolated_rng, pick_device, trackers
from zoo.training.stream import Batches, _stream_rows, _take

VALIDATION_SEED = 0  # the fixed draw of the validation images (TrainConfig.validation) from the training split


@dataclass
class TrainResult:
    """What ``zoo.train`` returns: the trained model, its run folder and the held-out report (zoo.diagnose's)."""

    model: Any
    folder: Path
    report: dict[str, Any]

    def __repr__(self) -> str:
        r = self.report or {}

        def term(key: str) -> str:
            value, se = r.get(key), r.get(f"{key}_se")
            if not isinstance(value, (int, float)):
                return ""
            return f", {key}={value:.2f}" + (f" +- {se:.2f}" if isinstance(se, float) else "")

        units = (f", active_units={r['active_units']}/{r['latent_dims']}"
                 if r.get("active_units") is not None and r.get("latent_dims") else "")
        where = f" on {r['data']} [{r.get('split')}] N={r.get('n')}" if r.get("data") else ""
        return (f"TrainResult(model={getattr(self.model, 'name', '?')!r}, folder='{self.folder}', "
                f"steps={r.get('train_steps')}{term('elbo')}{term('nll')}{term('rate')} nats{units}{where})")


class Objective(nn.Module):
    """The loss as a module, so DDP and autocast wrap exactly the training computation."""

    def __init__(self, model: nn.Module, beta: float):
        super().__init__()
        self.model, self.beta = model, beta
        self.prepared = False  # True when the batches are already in the likelihood's data space (cached once)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the card's objective: the beta-ELBO, or the k-sample IWAE bound (objective.iwae_k)
        loss, terms = self.model.objective(x if self.prepared else self.model.prepare(x), self.beta, prepared=True)
        return loss, terms.elbo.detach().mean()


def lr_factor(schedule: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return f


def architecture(card: Card) -> str:
    """A fingerprint of what the weights mean: shapes and components (not the recipe)."""
    z = card.zoo
    arch = {k: z.get(k) for k in ("latent", "encoder", "decoder", "prior")}
    arch["data_shape"] = list(card.data_shape)
    return hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:16]


def _say(message: str) -> None:
    print(f"zoo train: {message}", file=sys.stderr, flush=True)


def init_from(model: nn.Module, source: str) -> None:
    """Copy the weights of ``source`` (a card name or run folder, loaded as ``zoo.load`` does) into the model's
    tensors of the same names (card ``train.init_from``); CardError naming the first tensor that has no
    counterpart here or another shape.  Tensors the source lacks (a new prior's) keep their initialisation."""
    import zoo

    try:
        src = zoo.load(source).state_dict()
    except Exception as e:  # noqa: BLE001 - say which option failed, with the loader's reason
        raise CardError(f"train.init_from {source!r}: cannot load its weights: {e}") from None
    own = model.state_dict()
    bad = [f"{k} (not in this model)" if k not in own else f"{k} (shape {list(v.shape)} vs {list(own[k].shape)})"
           for k, v in src.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise CardError(f"train.init_from {source!r}: its weights do not fit this model: {', '.join(bad[:5])}"
                        f"{' ...' if len(bad) > 5 else ''}")
    model.load_state_dict(src, strict=False)


def train(name: "str | Card | nn.Module", *, out: str | Path, data: str | None = None, beta: float | None = None,
          progress: bool = True, command: str | None = None, resume: bool = False,
          overwrite: bool = False, image_key: str | None = None, data_config: str | None = None,
          callbacks: list | None = None, quiet: bool = False, data_shape: Any = None,
          **overrides: Any) -> TrainResult:
    """Train model ``name`` on ``data`` (default: the card's) and write the run to ``out``.

    ``name`` is a card name, a Card, or a LatentModel built in Python (``zoo.build(encoder=MyModule(), ...)``,
    zoo.byo), which is trained in place; its run folder's card names the modules' import paths.

    ``resume=True`` continues from the newest good checkpoint in ``out/checkpoints``;
    without it an existing run in ``out`` is refused unless ``overwrite=True``.  ``image_key`` names
    the image column of ``data`` (default: the card's, else the data set's first image column).
    ``callbacks``: callables ``cb(event, loop, **info)`` for your own code, called at the events
    "start", "step", "log" (``values``), "eval" (``values``), "checkpoint" (``step``) and "end" (``report``).
    ``quiet=True`` (``zoo train --quiet``): no progress bar (the same as ``progress=False``).
    ``data_shape=(C, H, W)`` (``--data-shape C,H,W``): train the card's architecture on images of another size; where
    the architecture cannot adapt, a ShapeError says so and points at a card that ``extends`` this one.

    The process's C allocator is tuned for training on its first call (:func:`zoo.allocator.tune_allocator`;
    ``ZOO_MALLOC=default`` opts out)."""
    from zoo.allocator import tune_allocator

    tune_allocator()
    progress = progress and not quiet
    given = None
    if isinstance(name, nn.Module):  # a model built in Python (zoo.build(encoder=..., ...)): trained as it is
        given = name
        if getattr(given, "card", None) is None:
            raise CardError("zoo.train(model): the model has no card; build it with zoo.build or zoo.load")
        card = given.card
        if data is not None and card.zoo["data"]["source"] == "unspecified":
            card = dataclasses.replace(card, zoo={**card.zoo, "data": {**card.zoo["data"], "source": data}})
    else:
        card = name if isinstance(name, Card) else get_card(name)
    if data_shape is not None:
        from zoo.training.reshape import with_data_shape

        if given is not None:
            if tuple(data_shape) != tuple(given.data_shape):
                raise ShapeError(f"zoo.train(model, data_shape={list(data_shape)}): the model was built for images "
                                 f"{list(given.data_shape)}; build it again with data_shape={tuple(data_shape)}")
        else:
            original = card.data_shape
            card = with_data_shape(card, data_shape)
            reshaped = ",".join(str(v) for v in card.data_shape) if card.data_shape != original else None
    if beta is not None:
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (0 <= beta < float("inf")):
            raise CardError(f"--beta (zoo.train(..., beta=)): must be a finite number >= 0, got {beta!r}")
        card = dataclasses.replace(card, zoo={**card.zoo, "objective": {**card.zoo.get("objective", {}), "beta": beta}})
    loop = TrainLoop(card, Path(out), TrainConfig.from_card(card, **overrides), progress=progress, command=command)
    loop.image_key, loop.data_config = image_key, data_config
    loop.data_shape_flag = reshaped if data_shape is not None and given is None else None
    loop.callbacks = list(callbacks or [])
    loop.given = given
    try:
        loop.open(data, resume=resume, overwrite=overwrite, overrides=overrides)
        return loop.run()
    finally:
        loop.close()


class TrainLoop:
    """One training run: its card, recipe, engine, model, optimiser, data stream and run folder."""

    def __init__(self, card: Card, out: Path, config: TrainConfig, *, progress: bool = True,
                 command: str | None = None):
        from zoo.training.state import CheckpointManager

        self.card, self.out, self.config, self.progress, self.command = card, out, config, progress, command
        rank, world = _dist_env()
        self.manager = CheckpointManager(out / "checkpoints", config.keep_checkpoints, rank=rank, world_size=world)
        self.ckpt = None
        self.start = 0
        self.segments: list[dict[str, Any]] = []  # one per resumed stretch of the run (zoo.results.segments)
        self.prior_seconds = 0.0  # training time of the earlier segments (from the checkpoint)
        self._run_started: float | None = None
        self.lock = None
        self.image_key: str | None = None
        self.data_config: str | None = None
        self.callbacks: list = []
        self.given: nn.Module | None = None  # a model passed in (bring your own modules) instead of built from the card

    # -- set up ---------------------------------------------------------------------------------
    def open(self, data: str | None, *, resume: bool, overwrite: bool, overrides: dict[str, Any]) -> None:
        """Read the checkpoint (resume), the data, start the engine and build everything, in that order."""
        from zoo.store.run_lock import check_out_folder

        card = self.card
        check_out_folder(self.out, resume=resume, overwrite=overwrite)
        if resume:
            self._read_checkpoint(overrides)
            self.spec = data or self.ckpt.meta["data"].get("spec") or card.zoo["data"]["source"]
        else:
            self.spec = data or card.zoo["data"]["source"]
            self.segments = [{"from_step": 0, "beta": card.beta, "train": recipe(self.config),
                              "command": self.command or default_command(
                                  card.name, self.spec, self.out, data_shape=getattr(self, "data_shape_flag", None))}]
            if (self.manager.steps() or (self.out / "model.safetensors").exists()) and not overwrite:
                raise TrainingError(f"{self.out} already holds a training run; pass --resume to continue it, "
                                    f"--overwrite to replace it, or choose another --out")
        self._load_data()
        self._start_engine()
        self._build()  # a card the components refuse fails here, before the run folder is touched
        if self.main:
            self._claim_folder(overwrite=overwrite and not resume)
        self.manager.barrier = self.accelerator.wait_for_everyone
        self._seed_processes()
        if self.ckpt is not None:
            self._restore()
        self._make_batches()

    def _read_checkpoint(self, overrides: dict[str, Any]) -> None:
        from zoo.training.state import CheckpointError

        try:
            ckpt = self.manager.load_latest()
        except CheckpointError as e:
            raise TrainingError(str(e)) from None
        for skipped in ckpt.skipped:
            _say(f"checkpoint {skipped}; falling back to the previous one")
        meta, card = ckpt.meta, self.card
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
        self.config = dataclasses.replace(saved, **given)
        self.config.validate()
        self.manager.keep = self.config.keep_checkpoints
        inexact = [k for k in changed if k in TRAJECTORY]
        if inexact:
            _say(f"resuming with changed {', '.join(inexact)} (applied from step {ckpt.step} on): the run will not "
                 f"match an uninterrupted one")
        self.segments = [dict(seg) for seg in meta.get("segments") or []] or [
            {"from_step": 0, "beta": meta.get("beta"), "train": recipe(saved), "command": None}]
        self.prior_seconds = float(meta.get("train_seconds") or 0.0)
        last_beta = next((seg["beta"] for seg in reversed(self.segments) if seg.get("beta") is not None), None)
        diff = {k: {"from": getattr(saved, k), "to": given[k]} for k in changed}
        if last_beta is not None and card.beta != last_beta:
            diff["beta"] = {"from": last_beta, "to": card.beta}
        if diff and ckpt.step < (self.config.steps or float("inf")):
            _say("resuming from step {} with changed {}: recorded as a new segment of the run (the card's "
                 "results.segments), not as the recipe of the whole run".format(
                     ckpt.step, ", ".join(f"{k} {v['from']!r} -> {v['to']!r}" for k, v in diff.items())))
        if diff:
            self.segments.append({"from_step": ckpt.step, "beta": card.beta,
                                  "changed": {k: v["to"] for k, v in diff.items()}, "command": self.command})
        self.ckpt = ckpt

    def _load_data(self) -> None:
        from zoo.data import card_source_options, load_dataset, load_tensors

        card, config, spec = self.card, self.config, self.spec
        self.test_split = card.zoo["data"].get("test_split", "test")
        train_split = card.zoo["data"].get("split", "train") if spec == card.zoo["data"]["source"] else "train"
        source = card_source_options(spec, card.zoo["data"], self.image_key)  # image_key / pinned revision
        if self.data_config:
            source["config"] = self.data_config
        if config.streaming:
            self.train_data = load_dataset(spec, train_split, streaming=True, **source)
            self.test_x = _take(load_dataset(spec, self.test_split, streaming=True, **source), 10000,
                                card.data_shape)
            check_shape(self.test_x, card, spec)
            self.rows = _stream_rows(self.train_data)
        else:
            self.train_data = load_tensors(spec, train_split, **source)
            self.test_x = load_tensors(spec, self.test_split, **source)
            check_shape(self.train_data, card, spec)
            self.val_x = None
            if config.validation:  # model selection on held-out training images, never on the test split
                n = len(self.train_data)
                if config.validation >= n:
                    raise CardError(f"validation {config.validation} (--validation): the training split of {spec} "
                                    f"has only {n} images")
                order = torch.randperm(n, generator=torch.Generator().manual_seed(VALIDATION_SEED))
                self.val_x = self.train_data[order[:config.validation]]
                self.train_data = self.train_data[order[config.validation:].sort().values]
            self.rows = len(self.train_data)

    def _start_engine(self) -> None:
        config = self.config
        self.trackers = trackers(config.report_to)
        device = pick_device(config.device)
        self.accelerator = _make_accelerator(device, PRECISIONS[config.precision] if config.precision else None,
                                             log_with=[t for t in self.trackers if t != "tensorboard"],
                                             project_dir=str(self.out))
        acc = self.accelerator
        self.precision = acc.mixed_precision  # what ran: the flag, the card, or accelerate's own setting
        threads = default_threads(acc.device, config.threads)
        if threads:
            torch.set_num_threads(threads)
        self.rank, self.world, self.main = acc.process_index, acc.num_processes, acc.is_main_process
        self.device = acc.device
        self.micro, rem = divmod(config.batch_size, self.world * config.grad_accum)
        if rem or self.micro < 1:
            raise TrainingError(f"batch_size {config.batch_size} (global) must be a multiple of processes x "
                                f"grad_accum = {self.world} x {config.grad_accum}")
        if self.rows is not None and self.rows < config.batch_size:
            raise TrainingError(f"data {self.spec!r} has {self.rows} training rows, fewer than one batch "
                                f"({config.batch_size})")
        if config.steps:
            self.total = config.steps
        elif self.rows is None:
            raise TrainingError(f"data {self.spec!r} is streamed and its size is unknown: give --steps")
        else:
            self.total = config.epochs * (self.rows // config.batch_size)

    def _claim_folder(self, *, overwrite: bool) -> None:
        """Lock the run folder for this run, mark it as a run, clear a replaced run's files, probe writing."""
        from zoo.store.run_lock import RunLock, is_run_folder, mark_run, remove_owned

        self.lock = RunLock(self.out).acquire()
        try:
            if overwrite and is_run_folder(self.out):
                remove_owned(self.out)
            probe = self.out / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            (self.out / "checkpoints").mkdir(exist_ok=True)
            mark_run(self.out, self.card.name)
        except OSError as e:
            raise TrainingError(f"cannot write the run folder {self.out}: {e.strerror or e}") from None
        self.manager.clean_partial()

    def close(self) -> None:
        """Release the run folder (also after an error)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _build(self) -> None:
        """Model, optimiser, schedule and EMA (in this order: the model's initialisation uses the seed)."""
        from zoo.store.weights import load_weights
        from zoo.training.ema import EMA

        card, config, acc = self.card, self.config, self.accelerator
        torch.manual_seed(config.seed)
        model = build_model(card) if self.given is None else self.given
        if self.given is not None:
            model.card = card
        if self.ckpt is not None:
            load_weights(model, self.ckpt.tensors["model"], str(self.ckpt.path / "model.safetensors"))
        elif config.init_from:
            init_from(model, config.init_from)
        self.frozen = [p for part in (config.freeze or []) for p in getattr(model, part).parameters()]
        opt_cls = _torch_class("optim", config.optimizer)
        coupled = self._coupled_optimisers(model, opt_cls)
        own = {id(p) for o in coupled.values() for g in o.param_groups for p in g["params"]}
        try:
            optimizer = opt_cls([p for p in model.parameters() if id(p) not in own], lr=config.lr,
                                weight_decay=config.weight_decay, **self._optimizer_args(opt_cls))
        except (TypeError, ValueError) as e:
            raise CardError(f"optimizer {opt_cls.__name__} (zoo.train.optimizer / --optimizer, optimizer_args): "
                            f"{e}") from None
        self.objective, self.optimizer = acc.prepare(Objective(model, card.beta), optimizer)
        self.coupled = dict(zip(coupled, _as_tuple(acc.prepare(*coupled.values())))) if coupled else {}
        self.coupled_loss: dict[str, float] = {}  # the last step's loss of each coupled optimiser (logged)
        self.model = acc.unwrap_model(self.objective).model
        self.params = [p for p in self.model.parameters() if p.requires_grad and id(p) not in own]
        self.raw_optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
        # accelerate's AcceleratedOptimizer.step looks for the lomo_optim package twice per step (an uncached
        # importlib find_spec over sys.path: ~3 ms, 5% of an MLP VAE step on a CPU); without a gradient scaler or
        # XLA it then just calls the optimiser's step, and this loop accumulates gradients itself, so it does too
        from accelerate.optimizer import AcceleratedOptimizer

        self.plain_step = (type(self.optimizer) is AcceleratedOptimizer and self.optimizer.scaler is None
                           and str(getattr(acc.distributed_type, "value", acc.distributed_type)) != "XLA"
                           and getattr(acc.gradient_state, "sync_gradients", True))
        self.scheduler = self._make_scheduler()
        self.step_schedule = config.lr_schedule != "constant" or config.warmup_steps > 0
        self.ema = EMA(self.model, config.ema) if config.ema and self.main else None
        self.eval_model = None
        if self.ema is not None:
            with isolated_rng(self.device, 0):
                self.eval_model = (build_model(card) if self.given is None
                                   else copy.deepcopy(self.given)).to(self.device).eval()

    def _optimizer_args(self, opt_cls) -> dict[str, Any]:
        """The card's ``optimizer_args``, with ``fused=True`` for Adam / AdamW on a CPU or CUDA device unless they
        choose an implementation (``fused`` / ``foreach``) themselves: one kernel per step instead of a loop over
        the tensors (+12% steps/s on tools/bench_train_vs.py's MLP VAE, one CPU thread).  The same update rule,
        rounded differently in the last bits: ``{fused: false}`` is the per-tensor loop of the cards trained
        before it was the default."""
        args = dict(self.config.optimizer_args or {})
        if (self.device.type in ("cpu", "cuda") and opt_cls in (torch.optim.Adam, torch.optim.AdamW)
                and not {"fused", "foreach"} & set(args)):
            args["fused"] = True
        return args

    def _coupled_optimisers(self, model: nn.Module, opt_cls) -> dict[str, torch.optim.Optimizer]:
        """The optimisers of a zoo.contracts.CoupledObjective's own parameter sets (of the run's optimiser
        class; the objective's options such as ``lr`` override the run's), by name."""
        from zoo import contracts as c

        objective = model.training_objective
        if objective is None or not c.has(objective, c.CoupledObjective):
            return {}
        config, out = self.config, {}
        for name, spec in objective.coupled_parameters(model).items():
            options = {"lr": config.lr, "weight_decay": config.weight_decay, **self._optimizer_args(opt_cls),
                       **{k: v for k, v in spec.items() if k != "params"}}
            try:
                out[name] = opt_cls(list(spec["params"]), **options)
            except (TypeError, ValueError) as e:
                raise CardError(f"{self.card.name}: the objective's optimiser {name!r} ({opt_cls.__name__} with "
                                f"{options}): {e}") from None
        return out

    def _coupled_steps(self, xs: torch.Tensor) -> None:
        """After the main step: each coupled optimiser minimises its own loss on the same batch (its
        parameters' gradients from the main loss are dropped first; the model's are dropped after)."""
        objective, acc = self.model.training_objective, self.accelerator
        for name, optimizer in self.coupled.items():
            self.model.zero_grad(set_to_none=True)
            loss = objective.coupled_loss(name, self.model, xs if self.prepared_data else self.model.prepare(xs))
            if not torch.isfinite(loss):
                self._stop_nonfinite(self.step + 1, float(loss.detach()), f"the objective's {name!r} loss")
            acc.backward(loss)
            if self.world > 1:  # the coupled loss runs outside DDP: average its gradients over the processes
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.grad = acc.reduce(p.grad, "mean")
            optimizer.step()
            self.coupled_loss[name] = float(loss.detach())
        self.model.zero_grad(set_to_none=True)

    def _make_scheduler(self):
        """constant / cosine / linear after a linear warm-up (ours, a LambdaLR), or a torch.optim.lr_scheduler
        class by name with ``lr_schedule_args`` (stepped once per optimiser step)."""
        config = self.config
        if config.lr_schedule in SCHEDULES:
            return torch.optim.lr_scheduler.LambdaLR(
                self.raw_optimizer, lr_factor(config.lr_schedule, config.warmup_steps, self.total))
        cls = _torch_class("optim.lr_scheduler", config.lr_schedule)
        if config.warmup_steps:
            raise CardError(f"warmup_steps goes with the constant / cosine / linear schedules, not {cls.__name__}")
        try:
            return cls(self.raw_optimizer, **(config.lr_schedule_args or {}))
        except (TypeError, ValueError) as e:
            raise CardError(f"lr_schedule {cls.__name__} (lr_schedule_args): {e}") from None

    def _seed_processes(self) -> None:
        seed, rank = self.config.seed, self.rank
        random.seed(seed + rank)
        np.random.seed((seed + rank) % 2 ** 32)
        if rank:  # distinct noise per process
            torch.manual_seed(seed + 7919 * rank)

    def _restore(self) -> None:
        from zoo.training.state import restore_rng, unflatten_optimizer

        ckpt, meta = self.ckpt, self.ckpt.meta
        self.optimizer.load_state_dict(unflatten_optimizer(ckpt.tensors["optimizer"], meta["optimizer"]))
        for name, optimizer in self.coupled.items():
            optimizer.load_state_dict(unflatten_optimizer(ckpt.tensors.get(f"optimizer-{name}", {}),
                                                          meta.get("coupled_optimizers", {})[name]))
        self.scheduler.load_state_dict(meta["scheduler"])
        if self.accelerator.scaler is not None and meta.get("scaler"):
            self.accelerator.scaler.load_state_dict(meta["scaler"])
        if self.ema is not None:
            if "ema" in ckpt.tensors:
                self.ema.load_state_dict({k: v.to(self.device) for k, v in ckpt.tensors["ema"].items()})
                self.ema.num_updates = meta.get("ema_updates", 0)
            else:
                _say("the checkpoint has no EMA weights: the EMA restarts from the current weights")
        if ckpt.rng is not None and meta.get("world_size") == self.world:
            restore_rng(*ckpt.rng)
        else:
            _say(f"the checkpoint was written by {meta.get('world_size')} process(es), this run has {self.world}: "
                 "random states are re-seeded, so the resume is not bit-exact")
        self.start = ckpt.step
        self._apply_recipe()
        _say(f"resuming from {ckpt.path} (step {self.start} of {self.total})")

    def _apply_recipe(self) -> None:
        """After restoring the optimiser and scheduler: the (possibly changed) lr and weight decay of this run's
        recipe, exactly as the schedule gives them at the current step."""
        config = self.config
        if config.lr_schedule not in SCHEDULES:
            if self.raw_optimizer.param_groups[0].get("initial_lr") != config.lr:
                raise TrainingError(f"--resume cannot change --lr under the {config.lr_schedule} scheduler "
                                    f"(its state holds the run's learning rates); resume without --lr")
            return
        self.scheduler.base_lrs = [config.lr for _ in self.scheduler.base_lrs]
        factor = lr_factor(config.lr_schedule, config.warmup_steps, self.total)(self.scheduler.last_epoch)
        for group in self.raw_optimizer.param_groups:
            group["initial_lr"] = config.lr
            group["lr"] = config.lr * factor if self.step_schedule else config.lr
            group["weight_decay"] = config.weight_decay

    def _make_batches(self) -> None:
        config, world, device = self.config, self.world, self.device
        shard = config.batch_size // world
        if not config.streaming and device.type != "cpu" and self.train_data.nbytes <= 2 ** 30:
            self.train_data = self.train_data.to(device)  # small sets live on the accelerator: no copies per step
        rows = self._prepared_once()
        self.batches = Batches(self.train_data if rows is None else rows, config.batch_size, config.seed, self.rank * shard,
                               (self.rank + 1) * shard, streaming=config.streaming, shape=self.card.data_shape,
                               buffer=config.stream_buffer, device=device)
        if self.ckpt is not None:
            pos = self.ckpt.meta["data"]
            if pos.get("global_batch") == config.batch_size:
                self.batches.seek(pos["epoch"], pos["batch"])
            elif self.batches.per_epoch:
                self.batches.seek(self.start // self.batches.per_epoch, self.start % self.batches.per_epoch)

    def _prepared_once(self) -> torch.Tensor | None:
        """The in-memory training set converted to the likelihood's data space once, instead of every step (uint8
        -> float / 255 -> e.g. [-1, 1]), when that conversion is the core's elementwise one (so a batch of the
        converted rows equals the converted batch, bit for bit) and the result takes at most 1 GiB; else None."""
        data, likelihood = self.train_data, getattr(self.model.decoder, "likelihood", None)
        prepare = getattr(type(likelihood), "prepare", None)
        self.prepared_data = False
        if (self.config.streaming or not isinstance(data, torch.Tensor) or data.dtype != torch.uint8
                or getattr(prepare, "__module__", None) != "zoo.likelihoods"
                or data.numel() * self.model.dtype.itemsize > 2 ** 30):
            return None
        with torch.no_grad():
            rows = torch.cat([self.model.prepare(data[i:i + 4096]) for i in range(0, len(data), 4096)])
        self.prepared_data = True
        self.accelerator.unwrap_model(self.objective).prepared = True
        return rows

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        from tqdm.auto import tqdm

        from zoo.training.metrics import MetricsWriter

        config, total = self.config, self.total
        self.metrics = MetricsWriter(self.out, enabled=self.main, tensorboard="tensorboard" in self.trackers,
                                     resume_step=self.start if self.ckpt is not None else None,
                                     accelerator=self.accelerator if len(self.trackers) > ("tensorboard" in self.trackers)
                                     else None)
        if self.metrics.accelerator is not None:
            self.accelerator.init_trackers(self.card.name, config=_flat(dataclasses.asdict(config)))
        self.best: tuple[int, float] | None = None
        self.bar = tqdm(total=total, initial=self.start, desc=f"train {self.card.name}",
                        disable=not (self.progress and self.main), unit="step", file=sys.stderr,
                        mininterval=0.2 if sys.stderr.isatty() else 10.0)
        self.check_every = 1 if (self.device.type == "cpu" and self.world == 1) else config.log_every
        self.last_saved = self.start if self.ckpt is not None else -1
        self.model.train()
        self.step = self.start
        zero = torch.zeros((), device=self.device)
        self._zero = zero
        self.loss_sum, self.elbo_sum, self.count = zero.clone(), zero.clone(), 0
        self.bad_step = (torch.full((), -1, dtype=torch.long, device=self.device)
                         if self.check_every > 1 else None)
        self.grad_norm = None
        started = self.tick = self._run_started = time.perf_counter()
        cpu_started = time.process_time()
        self.tick_step = self.step
        self._emit("start")
        if config.algorithm != "gradient":  # a registered fitting algorithm instead of the optimiser loop
            self.step = self.total = self._fit()
            self.bar.update(self.step - self.bar.n)
        with _stop_signals() as stop:
            while self.step < self.total:
                self._optimiser_step(next(self.batches))
                self._after_step()
                self._emit("step")
                if self._should_stop(stop):
                    self._interrupted(stop.name or "a stop request on another process")
        self.train_time = time.perf_counter() - started
        self.cpu_time = time.process_time() - cpu_started
        self.bar.close()
        self._save_checkpoint(self.step)
        return self._finish()

    def _seconds_so_far(self) -> float:
        """Training time of the whole run up to now: the earlier segments' and this process's."""
        return self.prior_seconds + (time.perf_counter() - self._run_started if self._run_started is not None else 0.0)

    def _recorded(self, card: Card, command: str) -> tuple[Card, str, float]:
        """(card, command, seconds) to record: with several segments, the card's train block and beta stay the
        first segment's (the run's recipe) and each later segment's changes are in results.segments; the
        command is the one that started the run; the time is the whole run's."""
        seconds = self.prior_seconds + self.train_time
        first = self.segments[0] if self.segments else {}
        previous = self._previous_results() if self.ckpt is not None else {}
        command = first.get("command") or previous.get("command") or command
        if len(self.segments) > 1:
            zoo = {**card.zoo, "train": first.get("train", card.zoo.get("train", {}))}
            if first.get("beta") is not None:
                zoo["objective"] = {**card.zoo.get("objective", {}), "beta": first["beta"]}
            card = dataclasses.replace(card, zoo=zoo)
        elif self.ckpt is not None and self.step == self.start:  # a finished run resumed: nothing new ran
            seconds = float(previous.get("train_seconds", seconds))
        return card, command, seconds

    def _previous_results(self) -> dict[str, Any]:
        import json

        try:
            results = json.loads((self.out / "config.json").read_text())["zoo"].get("results") or {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}
        return results if isinstance(results, dict) else {}

    def _emit(self, event: str, **info: Any) -> None:
        for callback in self.callbacks:
            callback(event, self, **info)

    def _should_stop(self, stop) -> bool:
        """A signal asked to stop; several processes agree at log steps (every one takes part there)."""
        if self.world == 1:
            return stop.requested
        if self.step % self.config.log_every and self.step != self.total:
            return False
        flag = torch.tensor(float(stop.requested), device=self.device)
        return bool(self.accelerator.reduce(flag, "max") > 0)

    def _interrupted(self, signal_name: str) -> None:
        """Ctrl-C / SIGTERM: checkpoint the current step (atomically, as always), say where, and stop."""
        self.bar.close()
        self._save_checkpoint(self.step)
        where = self.out / "checkpoints" / f"step-{self.step:08d}"
        self.metrics.close()
        raise TrainingInterrupted(
            f"{signal_name} at step {self.step} of {self.total}: checkpoint written to {where}; "
            f"`zoo train {self.card.name} --out {self.out} --resume` continues exactly from it")

    def _optimiser_step(self, xs: torch.Tensor) -> None:
        accum, acc = self.config.grad_accum, self.accelerator
        for a in range(accum):
            x = xs[a * self.micro:(a + 1) * self.micro] if accum > 1 else xs
            sync = contextlib.nullcontext() if a == accum - 1 else acc.no_sync(self.objective)
            with sync:
                loss, elbo = self.objective(x)
                if self.check_every == 1:
                    if not torch.isfinite(loss):
                        self._stop_nonfinite(self.step + 1, float(loss.detach()))
                else:
                    self.bad_step = torch.where((self.bad_step < 0) & ~torch.isfinite(loss), self.step + 1,
                                                self.bad_step)
                acc.backward(loss / accum if accum > 1 else loss)
            self.loss_sum += loss.detach()
            self.elbo_sum += elbo
        self.count += accum
        if self.frozen and (not self.config.freeze_steps or self.step < self.config.freeze_steps):
            for p in self.frozen:  # frozen components (train.freeze): no gradient, so the optimiser skips them
                p.grad = None
        if self.config.grad_clip:
            self.grad_norm = acc.clip_grad_norm_(self.params, self.config.grad_clip)
        if self.plain_step:  # what accelerate's wrapper would do here, without its per-step package look-ups
            self.raw_optimizer.step()
        else:
            self.optimizer.step()
        if self.step_schedule:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.coupled:
            self._coupled_steps(xs)
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self.bar.update(1)

    def _after_step(self) -> None:
        config, step, total = self.config, self.step, self.total
        if step % config.log_every == 0 or step == total:
            self._log_train()
        if self.main and config.eval_every and step % config.eval_every == 0 and step != total:
            self._held_out(step)
        if self.main and config.sample_every and step % config.sample_every == 0 and step != total:
            self._samples(step)
        if step % config.checkpoint_every == 0 and step != total:
            self._save_checkpoint(step)

    def _log_train(self) -> None:
        self._check_finite()
        stats = self.accelerator.reduce(torch.stack([self.loss_sum, self.elbo_sum]), "mean") / self.count
        now = time.perf_counter()
        rate = (self.step - self.tick_step) / max(now - self.tick, 1e-9)
        values = {"train/loss": float(stats[0]), "train/elbo": float(stats[1]),
                  "train/lr": self.raw_optimizer.param_groups[0]["lr"], "train/steps_per_s": rate,
                  "train/images_per_s": rate * self.config.batch_size, "train/epoch": self.batches.epoch}
        if self.grad_norm is not None:
            values["train/grad_norm"] = float(self.grad_norm)
        values.update({f"train/{name}_loss": v for name, v in self.coupled_loss.items()})
        self.metrics.log(self.step, values)
        self._emit("log", values=values)
        self.bar.set_postfix(loss=f"{values['train/loss']:.2f}", img_s=f"{values['train/images_per_s']:.0f}",
                             refresh=False)
        self.loss_sum, self.elbo_sum, self.count = self._zero.clone(), self._zero.clone(), 0
        self.tick, self.tick_step = now, self.step

    def _fit(self) -> int:
        """Fit with a registered algorithm (e.g. EM); returns the iterations run."""
        from zoo.errors import PluginError
        from zoo.registry import get_registry

        config = self.config
        try:
            fitter = get_registry().get("fitter", config.algorithm)
        except PluginError as e:
            raise TrainingError(f"--algorithm {config.algorithm!r}: {e}") from None
        if self.world > 1 or config.streaming or not isinstance(self.train_data, torch.Tensor):
            raise TrainingError(f"algorithm {config.algorithm!r} runs in one process on in-memory data")
        try:
            history = fitter.factory(self.model, self.train_data, seed=config.seed, iters=config.em_iters,
                                     tol=config.em_tol)
        except (TypeError, ValueError) as e:  # not a model the algorithm knows how to fit
            raise TrainingError(f"algorithm {config.algorithm!r} ({fitter.owner}): {e}") from None
        for i, value in enumerate(history, 1):
            self.metrics.log(i, {"train/log_likelihood": value})
        return len(history)

    # -- evaluation, samples, checkpoints -------------------------------------------------------
    def _eval_weights(self) -> nn.Module:
        return self.ema.copy_to(self.eval_model) if self.ema is not None else self.model

    def _held_out(self, step: int) -> None:
        from zoo.evaluation import evaluate

        m = self._eval_weights()
        was_training = m.training
        m.eval()
        with isolated_rng(self.device, self.config.seed):
            held_out = self.test_x if getattr(self, "val_x", None) is None else self.val_x
            result = evaluate(m, held_out[:self.config.eval_points], batch_size=self.config.eval_batch_size)
        m.train(was_training)
        values = {f"eval/{k}": result.mean(k) for k in ("elbo", "distortion", "rate")}
        values["eval/elbo_bpd"] = float(self.model.bits_per_dim(-values["eval/elbo"]))
        self.metrics.log(step, values)
        if self.config.keep_best and (self.best is None or values["eval/elbo"] > self.best[1]):
            from zoo.store.weights import save_weights

            with self._writing("model_best.safetensors"):
                save_weights(m, self.out / "model_best.safetensors", {"zoo.step": str(step)})
            self.best = (step, values["eval/elbo"])
        self._emit("eval", values=values)

    def _samples(self, step: int) -> None:
        from zoo.store.images import make_grid, save_grid

        m = self._eval_weights()
        was_training = m.training
        m.eval()
        with isolated_rng(self.device, self.config.seed):
            g = torch.Generator(device=self.device).manual_seed(self.config.seed)
            images = m.sample(self.config.num_samples, generator=g)
        m.train(was_training)
        save_grid(images, self.out / "samples" / f"step-{step:08d}.png",
                  scale=2 if self.card.data_shape[-1] < 64 else 1)
        self.metrics.image(step, "samples", make_grid(images).numpy())

    def _check_finite(self) -> None:
        """Deferred check (GPU / several processes): one sync per log interval, never a NaN checkpoint."""
        if self.bad_step is not None:
            # the earliest bad step over all processes: max of (total + 1 - step)
            flag = int(self.accelerator.reduce(torch.where(self.bad_step > 0, self.total + 1 - self.bad_step, 0),
                                               "max"))
            if flag > 0:
                self._stop_nonfinite(self.total + 1 - flag, float("nan"))

    def _save_checkpoint(self, step: int) -> None:
        from zoo.training.state import flatten_optimizer

        if step == self.last_saved:
            return
        self._check_finite()
        self._check_weights(step)
        opt_tensors, opt_meta = flatten_optimizer(self.raw_optimizer.state_dict())
        tensors = {"model": self.model.state_dict(), "optimizer": opt_tensors}
        coupled_meta = {}
        for name, optimizer in self.coupled.items():
            tensors[f"optimizer-{name}"], coupled_meta[name] = flatten_optimizer(
                getattr(optimizer, "optimizer", optimizer).state_dict())
        if self.ema is not None:
            tensors["ema"] = self.ema.state_dict()
        acc = self.accelerator
        meta = {"card": self.card.name, "architecture": architecture(self.card), "total": self.total,
                "data": {**self.batches.position(), "global_batch": self.config.batch_size, "spec": self.spec},
                "config": dataclasses.asdict(self.config), "optimizer": opt_meta, "coupled_optimizers": coupled_meta,
                "scheduler": self.scheduler.state_dict(),
                "scaler": acc.scaler.state_dict() if acc.scaler is not None else None,
                "ema_updates": self.ema.num_updates if self.ema is not None else 0, "precision": self.precision,
                "beta": self.card.beta, "segments": self.segments, "train_seconds": self._seconds_so_far()}
        with self._writing(f"the checkpoint of step {step}"):
            self.manager.save(step, tensors if self.main else {}, meta)
        self.last_saved = step
        self._emit("checkpoint", step=step)

    @torch.no_grad()
    def _check_weights(self, step: int) -> None:
        """A checkpoint is written as the newest good state only if its own weights are finite and give a
        finite loss on a fixed held-out batch (the last step's loss was computed before its update)."""
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters() if p.is_floating_point()):
            self._stop_nonfinite(step, float("nan"), "the weights after this step are not finite")
        was = self.model.training
        self.model.eval()
        with isolated_rng(self.device, self.config.seed):
            elbo = self.model.elbo(self.test_x[:16].to(self.device)).elbo
        self.model.train(was)
        if not bool(torch.isfinite(elbo).all()):
            self._stop_nonfinite(step, float("nan"), "the weights after this step give a non-finite ELBO "
                                                     "on held-out data")

    @contextlib.contextmanager
    def _writing(self, what: str):
        """A write that fails (a full disk, a folder gone) is a named error: which file, and which
        checkpoint is the last complete one."""
        try:
            yield
        except OSError as e:
            good = self.manager.steps()
            kept = (f"the last complete checkpoint is {good[0][1]} (step {good[0][0]}): resume from it with "
                    f"--resume" if good else "no checkpoint had been completed")
            raise TrainingError(f"could not write {what}: {e.filename or ''} {e.strerror or e}; {kept}") from None

    def _stop_nonfinite(self, step: int, value: float, why: str = "") -> None:
        good = self.manager.steps()
        kept = f"the last good checkpoint is {good[0][1]} (step {good[0][0]})" if good else \
            "no checkpoint had been written yet"
        self.bar.close()
        self.metrics.close()
        if self.world > 1:  # the stop is a collective decision: leave together, so no process is left in a collective
            self.accelerator.wait_for_everyone()
        what = why or f"the loss is {value} (not finite)"
        raise TrainingError(f"training {self.card.name!r} stopped at step {step}: {what}; {kept}. "
                            f"Try a lower --lr, --grad-clip or precision no")

    # -- the run folder -------------------------------------------------------------------------
    def _finish(self) -> TrainResult:
        """Evaluate (held-out ELBO, samples, diagnose) and write the run folder.  The weights, config and card
        are written even when the evaluation fails: the results then say they were not measured, and why."""
        report: dict[str, Any] = {}
        final = self._eval_weights() if self.main else self.model
        if self.main:
            final.eval()
            try:
                report = self._evaluate(final)
                failure = None
            except Exception as e:  # noqa: BLE001 - a failing plugin must not cost the trained weights
                failure = f"{type(e).__name__}: {e}"
            self._write_run(final, report, failure)
            if failure is not None:
                self.metrics.close()
                raise TrainingError(f"training {self.card.name!r} finished ({self.step} steps) and its weights, config "
                                    f"and card are in {self.out}, but the final evaluation failed: {failure}; the "
                                    f"card's results are marked as not measured (zoo diagnose {self.out} re-measures)")
        self.metrics.close()
        self.accelerator.wait_for_everyone()
        final.eval()
        self._emit("end", report=report)
        return TrainResult(final, self.out, report)

    def _evaluate(self, final: nn.Module) -> dict[str, Any]:
        from zoo.diagnostics import diagnose

        step, config = self.step, self.config
        self._held_out(step)
        if config.restore_best and self.best is not None and self.best[0] != step:
            from zoo.store.weights import load_weights, read_weights

            path = self.out / "model_best.safetensors"
            load_weights(final, read_weights(path), str(path))
        self._samples(step)
        from zoo.data import load_factors

        factors = load_factors(self.spec, self.test_split) if isinstance(self.spec, str) else None
        report = diagnose(final, self.test_x, iwae_k=config.eval_iwae_k, batch_size=config.eval_batch_size,
                          factors=factors if factors is not None and len(factors) == len(self.test_x) else None)
        trained = step - self.start
        report.update({"data": self.spec, "split": self.test_split, "weights": self._weights_kind,
                       "steps_per_second": round(trained / self.train_time, 3) if trained else None,
                       "train_seconds": self.train_time, "train_cpu_seconds": self.cpu_time,
                       "train_steps": trained})
        self.metrics.log(step, {f"test/{k}": report[k] for k in ("elbo", "nll", "rate", "mutual_information")
                                if isinstance(report.get(k), (int, float))})
        return report

    @property
    def _weights_kind(self) -> str:
        return "ema" if self.ema is not None else "raw"

    def _write_run(self, final: nn.Module, report: dict[str, Any], failure: str | None) -> None:
        """model.safetensors (+ raw weights with EMA), config.json and the card, with what ran and what was measured."""
        from zoo.store.run_folder import save_model

        config = self.config
        card = dataclasses.replace(self.card, zoo={**self.card.zoo, "train": recipe(config)})
        card, command, seconds = self._recorded(card, self.command or default_command(
            self.card.name, self.spec, self.out, data_shape=getattr(self, "data_shape_flag", None)))
        results = results_from_report(report, card, config, self.spec, steps=self.step,
                                      seconds=seconds, command=command)
        results.update({"weights": self._weights_kind, "mixed_precision": self.precision, "processes": self.world,
                        "batch_size": config.batch_size})
        if self.ema is not None:
            results["ema"] = config.ema
        if self.best is not None:
            results["best"] = {"step": self.best[0], "eval_elbo": round(self.best[1], 4),
                               "weights": "model_best.safetensors"}
        if failure is not None:
            results.update({"measured": False, "evaluation_error": failure})
        if len(self.segments) > 1:
            results["segments"] = [{k: v for k, v in seg.items() if k != "train" and v is not None}
                                   for seg in self.segments]
        card = card.with_results(results)
        extra = {"model_raw.safetensors": self.model} if self.ema is not None else None
        with self._writing("the run folder's weights, config and card"):
            save_model(final, self.out, card, extra_weights=extra)
        final.card = card  # save_pretrained / push_to_hub of the returned model write what was measured
        final.info.update({"weights": str(self.out / "model.safetensors"), "source": str(self.out),
                           "weights_kind": self._weights_kind})


def _as_tuple(value: Any) -> tuple:
    """accelerate's prepare returns one object for one argument, a tuple for several."""
    return value if isinstance(value, tuple) else (value,)


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    """A recipe for trackers' hyper-parameter tables (scalars only)."""
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in d.items()}


def recipe(config: TrainConfig) -> dict[str, Any]:
    """The training recipe that ran, as a card ``zoo.train`` block (fields that differ from the defaults)."""
    defaults = TrainConfig()
    return {k: v for k, v in dataclasses.asdict(config).items() if v != getattr(defaults, k)}


class _StopRequest:
    requested = False
    name = ""


@contextlib.contextmanager
def _stop_signals():
    """While the loop runs, SIGINT and SIGTERM ask it to stop at the next step boundary (a second Ctrl-C
    stops at once, as Python's default)."""
    import signal
    import threading

    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def ask(signum, frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.requested, stop.name = True, signal.Signals(signum).name

    saved = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def check_shape(x: torch.Tensor, card: Card, spec: str) -> None:
    if tuple(x.shape[1:]) != card.data_shape:
        shape = ",".join(str(s) for s in x.shape[1:])
        raise ShapeError(f"data {spec!r} has images of shape {list(x.shape[1:])} (channels, height, width) "
                         f"but model {card.name!r} expects {list(card.data_shape)}; to train its architecture at the "
                         f"data's size pass --data-shape {shape} (zoo.train(..., data_shape=({shape}))), or write a "
                         f"card with `extends: {card.name}` that sets the data shape and the architecture for it")


def results_from_report(report: dict[str, Any], card: Card, config: TrainConfig, spec: str, *,
                        steps: int, seconds: float, command: str) -> dict[str, Any]:
    """The measured numbers that go into the card (``zoo.results`` and the Hub's model-index)."""
    from zoo import __version__

    from zoo.cards.measured import card_results
    from zoo.data.splits import split_label

    results = card_results(report)

    results.update({"dataset": spec, "split": report.get("split", "test"),
                    "split_label": split_label(spec, report.get("split", "test")), "beta": card.beta,
                    "seed": config.seed, "steps": steps, "train_seconds": round(seconds, 1),
                    "zoo_version": __version__, "command": command})
    from zoo.data.sources import resolve_commit

    revision = card.zoo["data"].get("revision") if spec == card.zoo["data"]["source"] else None
    commit = resolve_commit(spec, revision)  # a Hub dataset's commit sha, always, where it can be known
    if commit or revision:
        results["dataset_revision"] = commit or revision
    return results


def default_command(name: str, spec: str, out: str | Path, *, data_shape: str | None = None) -> str:
    shape = ["--data-shape", data_shape] if data_shape else []
    return shlex.join(["zoo", "train", name, "--data", spec, *shape, "--out", str(out)])
