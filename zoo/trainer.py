"""``zoo train``: fit any named model by maximising its (beta-)ELBO on a data set.

The card's ``zoo.train`` block is the recipe (:class:`TrainConfig`); keyword arguments (or CLI
flags) override it.  One loop serves every model, on one CPU/GPU or many processes:

* the engine is Hugging Face ``accelerate`` (device placement, bf16/fp16 autocast and loss
  scaling, DDP over NCCL/gloo when launched with ``accelerate launch`` or ``torchrun``);
* ``batch_size`` is the *global* batch of one optimiser step; it is split over processes and
  ``grad_accum`` micro-batches, so a recipe means the same thing on 1 CPU or 64 GPUs;
* the data order is a function of (seed, epoch) only, so a checkpoint (model, EMA, optimiser,
  scheduler, RNG states, data position -- see :mod:`zoo.train_state`) resumes exactly;
* a non-finite loss stops the run naming the step; the last good checkpoint stays;
* metrics go to ``metrics.csv`` and TensorBoard, sample grids to ``samples/``.

At the end the model (EMA weights when EMA is on) is evaluated on the held-out split with
``diagnose`` and the run folder gets ``model.safetensors`` (+ ``model_raw.safetensors`` with
EMA), ``config.json`` and the card with the measured results.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .build import build_model
from .cards import Card
from .catalog import get_card
from .engine import _dist_env, _make_accelerator, isolated_rng, pick_device
from .errors import CardError, ShapeError, TrainingError
from .train_data import Batches, _stream_rows, _take

PRECISIONS = {"no": "no", "fp32": "no", "bf16": "bf16", "fp16": "fp16"}
SCHEDULES = ("constant", "cosine", "linear")
OPTIMIZERS = ("adam", "adamw")
ALGORITHMS = ("gradient", "em")
# settings that change the trajectory: changing them on --resume makes the resume inexact
TRAJECTORY = ("batch_size", "lr", "seed", "grad_accum", "lr_schedule", "warmup_steps", "optimizer",
              "weight_decay", "grad_clip", "ema", "precision", "streaming", "steps", "epochs")


@dataclass
class TrainConfig:
    """The training recipe (card ``zoo.train`` fields, all overridable)."""

    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 128            # global: all processes and accumulation micro-batches together
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"             # auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps
    grad_clip: float | None = None   # max global grad norm
    weight_decay: float = 0.0
    eval_iwae_k: int = 100
    eval_batch_size: int = 500
    optimizer: str = "adam"          # adam | adamw
    precision: str = "no"            # no (fp32) | bf16 | fp16 (GPU only)
    grad_accum: int = 1              # micro-batches per optimiser step
    lr_schedule: str = "constant"    # constant | cosine | linear (decay to 0 after warm-up)
    warmup_steps: int = 0            # linear warm-up from 0
    ema: float | None = None         # EMA decay (e.g. 0.9999 for DDPM); None/0 = off
    checkpoint_every: int = 1000     # steps; a checkpoint is also written at the end
    keep_checkpoints: int = 3
    log_every: int = 50              # steps between metric rows (and loss syncs)
    eval_every: int = 1000           # steps between held-out ELBO evaluations (0 = end only)
    eval_points: int = 1000          # held-out images in the periodic evaluation
    sample_every: int = 1000         # steps between sample grids (0 = end only)
    num_samples: int = 64
    streaming: bool = False          # stream the data set (HF datasets) instead of loading it
    stream_buffer: int = 1000        # shuffle buffer of a streamed data set
    algorithm: str = "gradient"      # gradient (the optimiser on the objective) | em (models that offer EM)
    em_iters: int = 100              # EM: at most this many iterations
    em_tol: float = 1e-6             # EM: stop when an iteration gains less (nats per image)

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
        config = cls(**recipe)
        if config.epochs is None and config.steps is None:
            config.epochs = 10
        config.validate(f"{card.path or card.name}: field 'zoo.train")
        return config

    def validate(self, where: str = "training option") -> None:
        def bad(key, why):
            raise CardError(f"{where}.{key}': {why} (got {getattr(self, key)!r})" if where.endswith("train")
                            else f"{where} {key!r}: {why} (got {getattr(self, key)!r})")

        for key in ("batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints", "log_every",
                    "eval_points", "num_samples", "eval_batch_size", "eval_iwae_k", "stream_buffer"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(key, "must be a positive integer")
        for key in ("steps", "epochs"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                bad(key, "must be a positive integer")
        for key in ("eval_every", "sample_every", "warmup_steps", "seed"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                bad(key, "must be a non-negative integer")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            bad("lr", "must be a positive number")
        if self.precision not in PRECISIONS:
            bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.lr_schedule not in SCHEDULES:
            bad("lr_schedule", f"must be one of {', '.join(SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.ema is not None and self.ema != 0 and not (0 < self.ema < 1):
            bad("ema", "must be a decay in (0, 1), e.g. 0.9999, or 0/null for off")
        if self.grad_clip is not None and not self.grad_clip > 0:
            bad("grad_clip", "must be a positive number")
        if self.algorithm not in ALGORITHMS:
            bad("algorithm", f"must be one of {', '.join(ALGORITHMS)}")
        if not isinstance(self.em_iters, int) or isinstance(self.em_iters, bool) or self.em_iters < 1:
            bad("em_iters", "must be a positive integer")


@dataclass
class TrainResult:
    model: Any
    folder: Path
    report: dict[str, Any]


class Objective(nn.Module):
    """The loss as a module, so DDP and autocast wrap exactly the training computation."""

    def __init__(self, model: nn.Module, beta: float):
        super().__init__()
        self.model, self.beta = model, beta

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the card's objective: the beta-ELBO, or the k-sample IWAE bound (objective.iwae_k)
        loss, terms = self.model.objective(self.model.prepare(x), self.beta, prepared=True)
        return loss, terms.elbo.detach().mean()


# ----------------------------------------------------------------------------------------------
# helpers


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


def _probe_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        (out / "checkpoints").mkdir(exist_ok=True)
    except OSError as e:
        raise TrainingError(f"cannot write the run folder {out}: {e.strerror or e}") from None


# ----------------------------------------------------------------------------------------------
# the trainer


def train(name: str | Card, *, out: str | Path, data: str | None = None, beta: float | None = None,
          progress: bool = True, command: str | None = None, resume: bool = False,
          overwrite: bool = False, **overrides: Any) -> TrainResult:
    """Train model ``name`` on ``data`` (default: the card's) and write the run to ``out``.

    ``resume=True`` continues from the newest good checkpoint in ``out/checkpoints``;
    without it an existing run in ``out`` is refused unless ``overwrite=True``."""
    from .checkpoint import load_weights, save_model
    from .data import card_source_options, load_dataset, load_tensors
    from .diagnostics import diagnose
    from .ema import EMA
    from .images import save_grid
    from .metrics import MetricsWriter
    from .train_state import (
        CheckpointError,
        CheckpointManager,
        flatten_optimizer,
        restore_rng,
        unflatten_optimizer,
    )

    out = Path(out)
    card = name if isinstance(name, Card) else get_card(name)
    if beta is not None:
        card = dataclasses.replace(card, zoo={**card.zoo, "objective": {**card.zoo.get("objective", {}), "beta": beta}})
    config = TrainConfig.from_card(card, **overrides)
    rank, world = _dist_env()
    manager = CheckpointManager(out / "checkpoints", config.keep_checkpoints, rank=rank, world_size=world)

    # -- resume: read and check the checkpoint before anything is written --------------------
    ckpt = None
    if resume:
        try:
            ckpt = manager.load_latest()
        except CheckpointError as e:
            raise TrainingError(str(e)) from None
        for skipped in ckpt.skipped:
            _say(f"checkpoint {skipped}; falling back to the previous one")
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
        changed = [k for k in TRAJECTORY if k in given and given[k] != getattr(saved, k)]
        config = dataclasses.replace(saved, **given)
        config.validate()
        if changed:
            _say(f"resuming with changed {', '.join(changed)}: the run will not match an uninterrupted one")
        spec = data or meta["data"].get("spec") or card.zoo["data"]["source"]
    else:
        spec = data or card.zoo["data"]["source"]
        if (manager.steps() or (out / "model.safetensors").exists()) and not overwrite:
            raise TrainingError(f"{out} already holds a training run; pass --resume to continue it, "
                                f"--overwrite to replace it, or choose another --out")

    # -- data ---------------------------------------------------------------------------------
    test_split = card.zoo["data"].get("test_split", "test")
    train_split = card.zoo["data"].get("split", "train") if spec == card.zoo["data"]["source"] else "train"
    source = card_source_options(spec, card.zoo["data"])  # the card's image_key / pinned revision
    if config.streaming:
        train_data = load_dataset(spec, train_split, streaming=True, **source)
        test_x = _take(load_dataset(spec, test_split, streaming=True, **source), 10000, card.data_shape)
        check_shape(test_x, card, spec)
        rows = _stream_rows(train_data)
    else:
        train_data = load_tensors(spec, train_split, **source)
        test_x = load_tensors(spec, test_split, **source)
        check_shape(train_data, card, spec)
        rows = len(train_data)

    # -- engine -------------------------------------------------------------------------------
    device = pick_device(config.device)
    precision = PRECISIONS[config.precision]
    accelerator = _make_accelerator(device, precision)
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    device = accelerator.device
    micro, rem = divmod(config.batch_size, world * config.grad_accum)
    if rem or micro < 1:
        raise TrainingError(f"batch_size {config.batch_size} (global) must be a multiple of processes x "
                            f"grad_accum = {world} x {config.grad_accum}")
    if rows is not None and rows < config.batch_size:
        raise TrainingError(f"data {spec!r} has {rows} training rows, fewer than one batch ({config.batch_size})")
    if config.steps:
        total = config.steps
    elif rows is None:
        raise TrainingError(f"data {spec!r} is streamed and its size is unknown: give --steps")
    else:
        total = config.epochs * (rows // config.batch_size)

    if main:
        if not resume and overwrite:
            for p in (out / "checkpoints", out / "tensorboard", out / "samples", out / "metrics.csv"):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        _probe_writable(out)
        manager.clean_partial()
    manager.barrier = accelerator.wait_for_everyone

    # -- model, optimiser, schedule, EMA ------------------------------------------------------
    torch.manual_seed(config.seed)
    model = build_model(card)
    if ckpt is not None:
        load_weights(model, ckpt.tensors["model"], str(ckpt.path / "model.safetensors"))
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    objective, optimizer = accelerator.prepare(Objective(model, card.beta), optimizer)
    model = accelerator.unwrap_model(objective).model
    params = [p for p in model.parameters() if p.requires_grad]
    raw_optimizer = getattr(optimizer, "optimizer", optimizer)
    schedule = lr_factor(config.lr_schedule, config.warmup_steps, total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(raw_optimizer, schedule)
    step_schedule = config.lr_schedule != "constant" or config.warmup_steps > 0
    ema = EMA(model, config.ema) if config.ema and main else None
    eval_model = None
    if config.ema and main:
        with isolated_rng(device, 0):
            eval_model = build_model(card).to(device).eval()

    random.seed(config.seed + rank)
    np.random.seed((config.seed + rank) % 2 ** 32)
    if rank:  # distinct noise per process
        torch.manual_seed(config.seed + 7919 * rank)
    start = 0
    if ckpt is not None:
        meta = ckpt.meta
        optimizer.load_state_dict(unflatten_optimizer(ckpt.tensors["optimizer"], meta["optimizer"]))
        scheduler.load_state_dict(meta["scheduler"])
        if accelerator.scaler is not None and meta.get("scaler"):
            accelerator.scaler.load_state_dict(meta["scaler"])
        if ema is not None:
            if "ema" in ckpt.tensors:
                ema.load_state_dict({k: v.to(device) for k, v in ckpt.tensors["ema"].items()})
                ema.num_updates = meta.get("ema_updates", 0)
            else:
                _say("the checkpoint has no EMA weights: the EMA restarts from the current weights")
        if ckpt.rng is not None and meta.get("world_size") == world:
            restore_rng(*ckpt.rng)
        else:
            _say(f"the checkpoint was written by {meta.get('world_size')} process(es), this run has {world}: "
                 "random states are re-seeded, so the resume is not bit-exact")
        start = ckpt.step
        _say(f"resuming from {ckpt.path} (step {start} of {total})")

    # -- data stream --------------------------------------------------------------------------
    shard = config.batch_size // world
    if not config.streaming and device.type != "cpu" and train_data.nbytes <= 2 ** 30:
        train_data = train_data.to(device)  # small sets live on the accelerator: no copies per step
    batches = Batches(train_data, config.batch_size, config.seed, rank * shard, (rank + 1) * shard,
                      streaming=config.streaming, shape=card.data_shape, buffer=config.stream_buffer,
                      device=device)
    if ckpt is not None:
        pos = ckpt.meta["data"]
        if pos.get("global_batch") == config.batch_size:
            batches.seek(pos["epoch"], pos["batch"])
        elif batches.per_epoch:
            batches.seek(start // batches.per_epoch, start % batches.per_epoch)

    # -- logging ------------------------------------------------------------------------------
    from tqdm.auto import tqdm

    metrics = MetricsWriter(out, enabled=main, resume_step=start if ckpt is not None else None)
    bar = tqdm(total=total, initial=start, desc=f"train {card.name}", disable=not (progress and main),
               unit="step", file=sys.stderr, mininterval=0.2 if sys.stderr.isatty() else 10.0)
    check_every = 1 if (device.type == "cpu" and world == 1) else config.log_every
    last_saved = start if ckpt is not None else -1

    def eval_weights() -> nn.Module:
        if ema is not None:
            return ema.copy_to(eval_model)
        return model

    def held_out(step: int) -> None:
        m = eval_weights()
        was_training = m.training
        m.eval()
        terms = {"elbo": 0.0, "distortion": 0.0, "rate": 0.0}
        x_eval = test_x[:config.eval_points]
        with torch.no_grad(), isolated_rng(device, config.seed):
            for i in range(0, len(x_eval), config.eval_batch_size):
                t = m.elbo(x_eval[i:i + config.eval_batch_size])
                for k in terms:
                    terms[k] += float(getattr(t, k).sum())
        m.train(was_training)
        values = {f"eval/{k}": v / len(x_eval) for k, v in terms.items()}
        values["eval/elbo_bpd"] = float(model.bits_per_dim(-values["eval/elbo"]))
        metrics.log(step, values)

    def samples(step: int) -> None:
        m = eval_weights()
        was_training = m.training
        m.eval()
        with isolated_rng(device, config.seed):
            g = torch.Generator(device=device).manual_seed(config.seed)
            images = m.sample(config.num_samples, generator=g)
        m.train(was_training)
        path = save_grid(images, out / "samples" / f"step-{step:08d}.png", scale=2 if card.data_shape[-1] < 64 else 1)
        from .images import make_grid
        metrics.image(step, "samples", make_grid(images).numpy())
        return path

    def check_finite() -> None:
        """Deferred check (GPU / several processes): one sync per log interval, never a NaN checkpoint."""
        if bad_step is not None:
            # the earliest bad step over all processes: max of (total + 1 - step)
            flag = int(accelerator.reduce(torch.where(bad_step > 0, total + 1 - bad_step, 0), "max"))
            if flag > 0:
                stop_nonfinite(total + 1 - flag, float("nan"))

    def save_checkpoint(step: int) -> None:
        nonlocal last_saved
        if step == last_saved:
            return
        check_finite()
        opt_tensors, opt_meta = flatten_optimizer(raw_optimizer.state_dict())
        tensors = {"model": model.state_dict(), "optimizer": opt_tensors}
        if ema is not None:
            tensors["ema"] = ema.state_dict()
        meta = {"card": card.name, "architecture": architecture(card), "total": total,
                "data": {**batches.position(), "global_batch": config.batch_size, "spec": spec},
                "config": dataclasses.asdict(config), "optimizer": opt_meta,
                "scheduler": scheduler.state_dict(),
                "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                "ema_updates": ema.num_updates if ema is not None else 0, "precision": precision}
        manager.save(step, tensors if main else {}, meta)
        last_saved = step

    def stop_nonfinite(step: int, value: float) -> None:
        good = manager.steps()
        kept = f"the last good checkpoint is {good[0][1]} (step {good[0][0]})" if good else \
            "no checkpoint had been written yet"
        bar.close()
        metrics.close()
        if world > 1:  # the stop is a collective decision: leave together, so no process is left in a collective
            accelerator.wait_for_everyone()
        raise TrainingError(f"training {card.name!r} stopped at step {step}: the loss is {value} "
                            f"(not finite); {kept}. Try a lower --lr, --grad-clip or precision no")

    # -- the loop -----------------------------------------------------------------------------
    model.train()
    step = start
    accum = config.grad_accum
    zero = torch.zeros((), device=device)
    loss_sum, elbo_sum, count = zero.clone(), zero.clone(), 0
    bad_step = torch.full((), -1, dtype=torch.long, device=device) if check_every > 1 else None
    grad_norm = None
    started = tick = time.perf_counter()
    cpu_started = time.process_time()
    tick_step = step
    if config.algorithm == "em":  # closed-form E and M steps instead of the optimiser loop
        step = total = run_em(model, train_data, config, metrics, world)
        bar.update(step - bar.n)
    while step < total:
        xs = next(batches)
        for a in range(accum):
            x = xs[a * micro:(a + 1) * micro] if accum > 1 else xs
            sync = contextlib.nullcontext() if a == accum - 1 else accelerator.no_sync(objective)
            with sync:
                loss, elbo = objective(x)
                if check_every == 1:
                    if not torch.isfinite(loss):
                        stop_nonfinite(step + 1, float(loss.detach()))
                else:
                    bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss), step + 1, bad_step)
                accelerator.backward(loss / accum if accum > 1 else loss)
            loss_sum += loss.detach()
            elbo_sum += elbo
        count += accum
        if config.grad_clip:
            grad_norm = accelerator.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        if step_schedule:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model)
        step += 1
        bar.update(1)

        if step % config.log_every == 0 or step == total:
            check_finite()
            stats = accelerator.reduce(torch.stack([loss_sum, elbo_sum]), "mean") / count
            now = time.perf_counter()
            rate = (step - tick_step) / max(now - tick, 1e-9)
            values = {"train/loss": float(stats[0]), "train/elbo": float(stats[1]),
                      "train/lr": raw_optimizer.param_groups[0]["lr"], "train/steps_per_s": rate,
                      "train/images_per_s": rate * config.batch_size, "train/epoch": batches.epoch}
            if grad_norm is not None:
                values["train/grad_norm"] = float(grad_norm)
            metrics.log(step, values)
            bar.set_postfix(loss=f"{values['train/loss']:.2f}", img_s=f"{values['train/images_per_s']:.0f}",
                            refresh=False)
            loss_sum, elbo_sum, count = zero.clone(), zero.clone(), 0
            tick, tick_step = now, step
        if main and config.eval_every and step % config.eval_every == 0 and step != total:
            held_out(step)
        if main and config.sample_every and step % config.sample_every == 0 and step != total:
            samples(step)
        if step % config.checkpoint_every == 0 and step != total:
            save_checkpoint(step)
    train_time = time.perf_counter() - started
    cpu_time = time.process_time() - cpu_started
    bar.close()
    save_checkpoint(step)

    # -- the run folder -----------------------------------------------------------------------
    report: dict[str, Any] = {}
    final = eval_weights() if main else model
    kind = "ema" if ema is not None else "raw"
    if main:
        held_out(step)
        samples(step)
        final.eval()
        report = diagnose(final, test_x, iwae_k=config.eval_iwae_k, batch_size=config.eval_batch_size)
        report.update({"data": spec, "split": test_split, "weights": kind,
                       "steps_per_second": round((step - start) / train_time, 3) if step > start else None,
                       "train_seconds": train_time, "train_cpu_seconds": cpu_time, "train_steps": step - start})
        metrics.log(step, {f"test/{k}": report[k] for k in ("elbo", "nll", "rate", "mutual_information")
                           if isinstance(report.get(k), (int, float))})
        results = results_from_report(report, card, config, spec, steps=step, seconds=train_time,
                                      command=command or default_command(card.name, spec, out))
        results.update({"weights": kind, "precision": precision, "processes": world,
                        "batch_size": config.batch_size})
        if ema is not None:
            results["ema"] = config.ema
        extra = {"model_raw.safetensors": model} if ema is not None else None
        save_model(final, out, card.with_results(results), extra_weights=extra)
        final.info.update({"weights": str(out / "model.safetensors"), "source": str(out), "weights_kind": kind})
    metrics.close()
    accelerator.wait_for_everyone()
    final.eval()
    return TrainResult(final, out, report)


def run_em(model: nn.Module, x: Any, config: TrainConfig, metrics: Any, world: int) -> int:
    """Fit by expectation-maximisation (models whose plugin offers it); returns the iterations run."""
    if world > 1 or config.streaming or not isinstance(x, torch.Tensor):
        raise TrainingError("algorithm 'em' runs in one process on in-memory data")
    try:
        from zoo_plugins.gmm import fit_em, init_from_data
    except ImportError as e:  # pragma: no cover - the built-in plugin is part of the package
        raise TrainingError(f"algorithm 'em' needs the built-in GMM plugin: {e}") from None
    try:
        init_from_data(model, x, seed=config.seed)
        with torch.no_grad():
            history = fit_em(model, x, iters=config.em_iters, tol=config.em_tol)
    except TypeError as e:  # not a model EM knows how to fit
        raise TrainingError(f"algorithm 'em': {e}") from None
    for i, log_likelihood in enumerate(history, 1):
        metrics.log(i, {"train/log_likelihood": log_likelihood})
    return len(history)


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
    revision = card.zoo["data"].get("revision")
    if revision and spec == card.zoo["data"]["source"]:
        results["dataset_revision"] = revision
    return results


def default_command(name: str, spec: str, out: str | Path) -> str:
    return shlex.join(["zoo", "train", name, "--data", spec, "--out", str(out)])


def _round(v):
    return round(v, 4) if isinstance(v, float) else v
