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

:func:`train` is the orchestration; :class:`TrainLoop` holds one run's state, all of it set in ``__init__`` (the
set-up, in its fixed order), and runs it in short methods (step, log, evaluate, checkpoint, finish).  The jobs
around it are modules of their own: :mod:`~zoo.training.resume` (reading a checkpoint to resume from),
:mod:`~zoo.training.run_data` (the data), :mod:`~zoo.training.engine` (device, processes, seeds),
:mod:`~zoo.training.optim` (optimisers and schedule), :mod:`~zoo.training.record` (what the run folder's card
records), :mod:`~zoo.training.signals` (Ctrl-C / SIGTERM).

"Objective" means one thing: the card's ``zoo.objective`` (a registered zoo.contracts.Objective, or the
beta-ELBO / IWAE bound), whose training loss ``LatentModel.objective(x)`` returns; :class:`LossModule` wraps that
loss as an ``nn.Module`` for DDP and autocast.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo.assemble import build_model
from zoo.cards import Card
from zoo.cards.catalog import get_card
from zoo.errors import CardError, ShapeError, TrainingError, TrainingInterrupted  # noqa: F401 - raised here, caught by the CLI
from zoo.training.config import PRECISIONS, TrainConfig
from zoo.training.engine import (_dist_env, _make_accelerator, default_threads, isolated_rng, micro_batch, pick_device,
                                 seed_processes, trackers)
from zoo.training.optim import (apply_recipe, lr_factor, make_optimizers, make_scheduler, owned_by, steps_plainly,
                                steps_schedule)
from zoo.training.record import default_command, flat, previous_results, recipe, recorded, results_from_report
from zoo.training.resume import architecture, read_resume, say
from zoo.training.run_data import VALIDATION_SEED, check_shape, load_run_data, total_steps
from zoo.training.signals import stop_signals
from zoo.training.state import Checkpoint, CheckpointManager
from zoo.training.stream import Batches

if TYPE_CHECKING:
    from zoo.model import LatentModel
    from zoo.store.run_lock import RunLock
    from zoo.training.ema import EMA
    from zoo.training.metrics import MetricsWriter

__all__ = ["train", "TrainLoop", "TrainResult", "LossModule", "init_from",
           # the loop's helpers, importable from here as before
           "lr_factor", "architecture", "recipe", "results_from_report", "default_command", "check_shape",
           "VALIDATION_SEED", "TrainConfig", "TrainingError"]


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


class LossModule(nn.Module):
    """The card objective's training loss (``LatentModel.objective``) as a module, so DDP and autocast wrap exactly
    the training computation: ``forward(x) -> (loss, the batch's mean ELBO)`` (the ELBO detached, for logging)."""

    def __init__(self, model: nn.Module, beta: float):
        super().__init__()
        self.model, self.beta = model, beta
        self.prepared = False  # True when the batches are already in the likelihood's data space (cached once)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, terms = self.model.objective(x if self.prepared else self.model.prepare(x), self.beta, prepared=True)
        return loss, terms.elbo.detach().mean()


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
    given, reshaped = None, None  # reshaped: the --data-shape flag that reproduces a reshaped card's run
    if isinstance(name, nn.Module):  # a model built in Python (zoo.build(encoder=..., ...)): trained as it is
        given = name
        if getattr(given, "card", None) is None:
            raise CardError("zoo.train(model): the model has no card; build it with zoo.build or zoo.load")
        card = given.card
        if data is not None and card.spec.data.source == "unspecified":
            card = card.with_fields({"data.source": data})
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
        card = card.with_fields({"objective.beta": beta})
    loop = TrainLoop(card, Path(out), TrainConfig.from_card(card, **overrides), data=data, resume=resume,
                     overwrite=overwrite, overrides=overrides, progress=progress, command=command, image_key=image_key,
                     data_config=data_config, data_shape_flag=reshaped, callbacks=callbacks, given=given)
    try:
        return loop.run()
    finally:
        loop.close()


class TrainLoop:
    """One training run: its card, recipe, engine, model, optimisers, data stream, run folder and progress.

    ``__init__`` sets the run up and sets every attribute the loop has; :meth:`run` trains, evaluates and writes
    the run folder; :meth:`close` releases the run folder (also after an error)."""

    def __init__(self, card: Card, out: Path, config: TrainConfig, *, data: str | None = None, resume: bool = False,
                 overwrite: bool = False, overrides: dict[str, Any] | None = None, progress: bool = True,
                 command: str | None = None, image_key: str | None = None, data_config: str | None = None,
                 data_shape_flag: str | None = None, callbacks: list | None = None, given: nn.Module | None = None):
        """Set the run up, in this order (each step needs the ones before it):

        1. the checkpoint to resume from, which fixes the recipe (or a new run's first segment);
        2. the data (train, validation draw, test);
        3. the engine (device, processes, mixed precision) and the run's length;
        4. the model (seeded), optimisers, schedule and EMA -- a card its components refuse fails here, before
           the run folder is touched;
        5. the run folder, claimed (locked, marked) by the main process;
        6. each process's seeds, then the checkpoint's state (weights were loaded in 4; optimisers, schedule,
           EMA, RNG states here);
        7. the batch stream, at the checkpoint's data position;
        8. the metrics, the progress bar and the running sums of the loop.

        ``data`` overrides the card's data source; ``overrides`` are the recipe flags given (a resume refuses
        the ones that would change what its saved state means); ``image_key`` and ``data_config`` pick the image
        column and the data set's config; ``data_shape_flag`` is the ``--data-shape`` the run's command records;
        ``given`` is a model built in Python (bring your own modules), trained instead of one built from the card;
        ``callbacks``: ``cb(event, loop, **info)``, see :func:`train`."""
        from zoo.store.run_lock import check_out_folder

        self.card: Card = card
        self.out: Path = out
        self.progress = progress
        self.command = command
        self.image_key = image_key
        self.data_config = data_config
        self.data_shape_flag = data_shape_flag
        self.callbacks: list = list(callbacks or [])
        self.given: nn.Module | None = given  # a model passed in (bring your own modules) instead of built from the card
        rank, world = _dist_env()
        self.manager = CheckpointManager(out / "checkpoints", config.keep_checkpoints, rank=rank, world_size=world)
        self.lock: RunLock | None = None

        # 1. the checkpoint to resume from (its recipe, with the allowed overrides), or a new run
        check_out_folder(out, resume=resume, overwrite=overwrite)
        resumed = read_resume(self.manager, card, overrides or {}, command) if resume else None
        self.ckpt: Checkpoint | None = resumed.checkpoint if resumed is not None else None
        self.config: TrainConfig = resumed.config if resumed is not None else config
        self.manager.keep = self.config.keep_checkpoints
        self.spec: str = (data or (self.ckpt.meta["data"].get("spec") if self.ckpt is not None else None)
                          or card.spec.data.source)
        # one segment per resumed stretch of the run with changes (zoo.results.segments)
        self.segments: list[dict[str, Any]] = resumed.segments if resumed is not None else [
            {"from_step": 0, "beta": card.beta, "train": recipe(config),
             "command": command or default_command(card.name, self.spec, out, data_shape=data_shape_flag)}]
        self.prior_seconds: float = resumed.prior_seconds if resumed is not None else 0.0  # the earlier segments'
        if resumed is None and (self.manager.steps() or (out / "model.safetensors").exists()) and not overwrite:
            raise TrainingError(f"{out} already holds a training run; pass --resume to continue it, "
                                f"--overwrite to replace it, or choose another --out")
        config = self.config

        # 2. the data
        run_data = load_run_data(card, self.spec, config, image_key=image_key, data_config=data_config)
        self.train_data: Any = run_data.train  # moved to the accelerator in 7 when small
        self.test_x: torch.Tensor = run_data.test_x
        self.val_x: torch.Tensor | None = run_data.val_x
        self.rows: int | None = run_data.rows
        self.test_split: str = run_data.test_split

        # 3. the engine and the run's length
        self.trackers: list[str] = trackers(config.report_to)
        self.accelerator = _make_accelerator(pick_device(config.device),
                                             PRECISIONS[config.precision] if config.precision else None,
                                             log_with=[t for t in self.trackers if t != "tensorboard"],
                                             project_dir=str(out))
        acc = self.accelerator
        self.precision: str = acc.mixed_precision  # what ran: the flag, the card, or accelerate's own setting
        threads = default_threads(acc.device, config.threads)
        if threads:
            torch.set_num_threads(threads)
        self.rank: int = acc.process_index
        self.world: int = acc.num_processes
        self.main: bool = acc.is_main_process
        self.device: torch.device = acc.device
        self.micro: int = micro_batch(config.batch_size, self.world, config.grad_accum)
        self.total: int = total_steps(config, self.rows, self.spec)

        # 4. model, optimisers, schedule and EMA (in this order: the model's initialisation uses the seed)
        torch.manual_seed(config.seed)
        model = self._model()
        self.frozen: list[nn.Parameter] = [p for part in (config.freeze or []) for p in getattr(model, part).parameters()]
        optimizer, coupled = make_optimizers(model, config, card.name, self.device)
        self.loss_module, self.optimizer = acc.prepare(LossModule(model, card.beta), optimizer)
        self.coupled: dict[str, Any] = dict(zip(coupled, _as_tuple(acc.prepare(*coupled.values())))) if coupled else {}
        self.coupled_loss: dict[str, float] = {}  # the last step's loss of each coupled optimiser (logged)
        self.model: LatentModel = acc.unwrap_model(self.loss_module).model
        own = owned_by(coupled)
        self.params: list[nn.Parameter] = [p for p in self.model.parameters() if p.requires_grad and id(p) not in own]
        self.raw_optimizer: torch.optim.Optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
        self.plain_step: bool = steps_plainly(self.optimizer, acc)
        self.scheduler = make_scheduler(self.raw_optimizer, config, self.total)
        self.step_schedule: bool = steps_schedule(config)
        self.ema: EMA | None = self._ema()
        self.eval_model: nn.Module | None = self._eval_copy() if self.ema is not None else None

        # 5. the run folder
        if self.main:
            self.lock = self._claim_folder(overwrite=overwrite and not resume)
        try:
            self.manager.barrier = acc.wait_for_everyone

            # 6. seeds, then the checkpoint's state
            seed_processes(config.seed, self.rank)
            self.start: int = self._restore() if self.ckpt is not None else 0

            # 7. the batch stream
            if not config.streaming and self.device.type != "cpu" and self.train_data.nbytes <= 2 ** 30:
                self.train_data = self.train_data.to(self.device)  # small sets live on the accelerator: no copies
            self.prepared_data = False  # True when the training rows were converted to the data space once
            self.batches: Batches = self._batches(self._prepared_once())

            # 8. metrics, progress and the loop's running state
            self.metrics: MetricsWriter = self._metrics()
            self.bar = self._progress_bar()
            self.step: int = self.start
            self.best: tuple[int, float] | None = None  # (step, held-out ELBO) of the best weights (keep_best)
            self.last_saved: int = self.start if self.ckpt is not None else -1
            # the finiteness check: every step on one CPU process, else deferred to one sync per log interval
            self.check_every: int = 1 if (self.device.type == "cpu" and self.world == 1) else config.log_every
            self.bad_step: torch.Tensor | None = (torch.full((), -1, dtype=torch.long, device=self.device)
                                                  if self.check_every > 1 else None)
            self._zero = torch.zeros((), device=self.device)
            self.loss_sum: torch.Tensor = self._zero.clone()  # since the last log: summed loss, ELBO, micro-batches
            self.elbo_sum: torch.Tensor = self._zero.clone()
            self.count: int = 0
            self.grad_norm: torch.Tensor | None = None
            self._run_started: float | None = None  # perf_counter at the start of run()
            self.tick: float = 0.0  # perf_counter and step of the last log (steps per second)
            self.tick_step: int = self.step
            self.train_time: float = 0.0  # this segment's wall and CPU seconds (set when the loop ends)
            self.cpu_time: float = 0.0
        except BaseException:
            self.close()
            raise

    # -- set-up steps ---------------------------------------------------------------------------
    def _model(self) -> LatentModel:
        """The card's model (or the one given), with the checkpoint's weights or ``train.init_from``'s."""
        from zoo.store.weights import load_weights

        model = build_model(self.card) if self.given is None else self.given
        if self.given is not None:
            model.card = self.card
        if self.ckpt is not None:
            load_weights(model, self.ckpt.tensors["model"], str(self.ckpt.path / "model.safetensors"))
        elif self.config.init_from:
            init_from(model, self.config.init_from)
        return model

    def _ema(self) -> EMA | None:
        from zoo.training.ema import EMA

        return EMA(self.model, self.config.ema) if self.config.ema and self.main else None

    def _eval_copy(self) -> nn.Module:
        """A second model that the EMA weights are copied into for evaluation (built off the training RNG)."""
        with isolated_rng(self.device, 0):
            return (build_model(self.card) if self.given is None
                    else copy.deepcopy(self.given)).to(self.device).eval()

    def _claim_folder(self, *, overwrite: bool) -> RunLock:
        """Lock the run folder for this run, mark it as a run, clear a replaced run's files, probe writing."""
        from zoo.store.run_lock import RunLock, is_run_folder, mark_run, remove_owned

        lock = RunLock(self.out).acquire()
        try:
            if overwrite and is_run_folder(self.out):
                remove_owned(self.out)
            probe = self.out / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            (self.out / "checkpoints").mkdir(exist_ok=True)
            mark_run(self.out, self.card.name)
        except OSError as e:
            lock.release()
            raise TrainingError(f"cannot write the run folder {self.out}: {e.strerror or e}") from None
        except BaseException:
            lock.release()
            raise
        self.manager.clean_partial()
        return lock

    def close(self) -> None:
        """Release the run folder (also after an error)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _restore(self) -> int:
        """The checkpoint's optimiser, schedule, gradient-scaler, EMA and RNG states; returns its step."""
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
                say("the checkpoint has no EMA weights: the EMA restarts from the current weights")
        if ckpt.rng is not None and meta.get("world_size") == self.world:
            restore_rng(*ckpt.rng)
        else:
            say(f"the checkpoint was written by {meta.get('world_size')} process(es), this run has {self.world}: "
                "random states are re-seeded, so the resume is not bit-exact")
        apply_recipe(self.raw_optimizer, self.scheduler, self.config, self.total)
        say(f"resuming from {ckpt.path} (step {ckpt.step} of {self.total})")
        return ckpt.step

    def _batches(self, rows: torch.Tensor | None) -> Batches:
        """This process's shard of the global batches (of ``rows``, the prepared training rows, when given), at the
        checkpoint's data position."""
        config, world = self.config, self.world
        shard = config.batch_size // world
        batches = Batches(self.train_data if rows is None else rows, config.batch_size, config.seed, self.rank * shard,
                          (self.rank + 1) * shard, streaming=config.streaming, shape=self.card.data_shape,
                          buffer=config.stream_buffer, device=self.device)
        if self.ckpt is not None:
            pos = self.ckpt.meta["data"]
            if pos.get("global_batch") == config.batch_size:
                batches.seek(pos["epoch"], pos["batch"])
            elif batches.per_epoch:
                batches.seek(self.start // batches.per_epoch, self.start % batches.per_epoch)
        return batches

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
        self.accelerator.unwrap_model(self.loss_module).prepared = True
        return rows

    def _metrics(self) -> MetricsWriter:
        """metrics.csv, TensorBoard and the other trackers (cut back to the checkpoint's step on a resume)."""
        from zoo.training.metrics import MetricsWriter

        others = len(self.trackers) > ("tensorboard" in self.trackers)
        metrics = MetricsWriter(self.out, enabled=self.main, tensorboard="tensorboard" in self.trackers,
                                resume_step=self.start if self.ckpt is not None else None,
                                accelerator=self.accelerator if others else None)
        if metrics.accelerator is not None:
            self.accelerator.init_trackers(self.card.name, config=flat(dataclasses.asdict(self.config)))
        return metrics

    def _progress_bar(self):
        from tqdm.auto import tqdm

        return tqdm(total=self.total, initial=self.start, desc=f"train {self.card.name}",
                    disable=not (self.progress and self.main), unit="step", file=sys.stderr,
                    mininterval=0.2 if sys.stderr.isatty() else 10.0)

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train to the last step (or fit with the recipe's algorithm), checkpoint it, evaluate and write the run
        folder."""
        self.model.train()
        started = self.tick = self._run_started = time.perf_counter()
        cpu_started = time.process_time()
        self._emit("start")
        if self.config.algorithm != "gradient":  # a registered fitting algorithm instead of the optimiser loop
            self.step = self.total = self._fit()
            self.bar.update(self.step - self.bar.n)
        with stop_signals() as stop:
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
        """One optimiser step on the global batch ``xs`` (this process's shard): the loss and its gradients over
        the micro-batches, then the update (and the coupled optimisers', and the EMA's)."""
        self._forward_backward(xs)
        self._update(xs)
        self.step += 1
        self.bar.update(1)

    def _forward_backward(self, xs: torch.Tensor) -> None:
        accum, acc = self.config.grad_accum, self.accelerator
        for a in range(accum):
            x = xs[a * self.micro:(a + 1) * self.micro] if accum > 1 else xs
            sync = contextlib.nullcontext() if a == accum - 1 else acc.no_sync(self.loss_module)
            with sync:
                loss, elbo = self.loss_module(x)
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

    def _update(self, xs: torch.Tensor) -> None:
        if self.frozen and (not self.config.freeze_steps or self.step < self.config.freeze_steps):
            for p in self.frozen:  # frozen components (train.freeze): no gradient, so the optimiser skips them
                p.grad = None
        if self.config.grad_clip:
            self.grad_norm = self.accelerator.clip_grad_norm_(self.params, self.config.grad_clip)
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
        from zoo.dataset_elbo import dataset_elbo

        m = self._eval_weights()
        was_training = m.training
        m.eval()
        with isolated_rng(self.device, self.config.seed):
            held_out = self.test_x if self.val_x is None else self.val_x
            result = dataset_elbo(m, held_out[:self.config.eval_points], batch_size=self.config.eval_batch_size)
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
        card = self.card.with_fields({"train": recipe(config)})
        card, command, seconds = recorded(
            card, self.command or default_command(self.card.name, self.spec, self.out, data_shape=self.data_shape_flag),
            self.prior_seconds + self.train_time, self.segments,
            previous_results(self.out) if self.ckpt is not None else {},
            nothing_new=self.ckpt is not None and self.step == self.start)
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
