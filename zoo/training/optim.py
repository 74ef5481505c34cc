"""The optimisers and the learning-rate schedule of a training run.

    make_optimizers   the run's optimiser over the model's parameters, and the optimisers of a
                      zoo.contracts.CoupledObjective's own parameter sets (by name)
    make_scheduler    constant / cosine / linear after a linear warm-up, or a torch scheduler by name
    apply_recipe      after a resume: this run's (possibly changed) lr and weight decay, as the
                      schedule gives them at the restored step
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from zoo.errors import CardError, TrainingError
from zoo.training.config import SCHEDULES, TrainConfig, _torch_class


def lr_factor(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return f


def optimizer_args(config: TrainConfig, opt_cls: type, device: torch.device) -> dict[str, Any]:
    """The card's ``optimizer_args``, with ``fused=True`` for Adam / AdamW on a CPU or CUDA device unless they
    choose an implementation (``fused`` / ``foreach``) themselves: one kernel per step instead of a loop over
    the tensors (+12% steps/s on tools/bench_train_vs.py's MLP VAE, one CPU thread).  The same update rule,
    rounded differently in the last bits: ``{fused: false}`` is the per-tensor loop of the cards trained
    before it was the default."""
    args = dict(config.optimizer_args or {})
    if (device.type in ("cpu", "cuda") and opt_cls in (torch.optim.Adam, torch.optim.AdamW)
            and not {"fused", "foreach"} & set(args)):
        args["fused"] = True
    return args


def make_optimizers(model: nn.Module, config: TrainConfig, card_name: str, device: torch.device
                    ) -> tuple[torch.optim.Optimizer, dict[str, torch.optim.Optimizer]]:
    """(the run's optimiser, the coupled optimisers by name): the run's optimiser class over every parameter that
    no coupled optimiser owns."""
    opt_cls = _torch_class("optim", config.optimizer)
    coupled = coupled_optimizers(model, opt_cls, config, card_name, device)
    own = owned_by(coupled)
    try:
        optimizer = opt_cls([p for p in model.parameters() if id(p) not in own], lr=config.lr,
                            weight_decay=config.weight_decay, **optimizer_args(config, opt_cls, device))
    except (TypeError, ValueError) as e:
        raise CardError(f"optimizer {opt_cls.__name__} (zoo.train.optimizer / --optimizer, optimizer_args): "
                        f"{e}") from None
    return optimizer, coupled


def owned_by(coupled: dict[str, torch.optim.Optimizer]) -> set[int]:
    """The ids of the parameters the coupled optimisers own."""
    return {id(p) for o in coupled.values() for g in o.param_groups for p in g["params"]}


def coupled_optimizers(model: nn.Module, opt_cls: type, config: TrainConfig, card_name: str, device: torch.device
                       ) -> dict[str, torch.optim.Optimizer]:
    """The optimisers of a zoo.contracts.CoupledObjective's own parameter sets (of the run's optimiser
    class; the objective's options such as ``lr`` override the run's), by name."""
    from zoo import contracts as c

    objective = model.training_objective
    if objective is None or not c.has(objective, c.CoupledObjective):
        return {}
    out = {}
    for name, spec in objective.coupled_parameters(model).items():
        options = {"lr": config.lr, "weight_decay": config.weight_decay, **optimizer_args(config, opt_cls, device),
                   **{k: v for k, v in spec.items() if k != "params"}}
        try:
            out[name] = opt_cls(list(spec["params"]), **options)
        except (TypeError, ValueError) as e:
            raise CardError(f"{card_name}: the objective's optimiser {name!r} ({opt_cls.__name__} with "
                            f"{options}): {e}") from None
    return out


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total: int):
    """constant / cosine / linear after a linear warm-up (ours, a LambdaLR), or a torch.optim.lr_scheduler
    class by name with ``lr_schedule_args`` (stepped once per optimiser step)."""
    if config.lr_schedule in SCHEDULES:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config.lr_schedule, config.warmup_steps, total))
    cls = _torch_class("optim.lr_scheduler", config.lr_schedule)
    if config.warmup_steps:
        raise CardError(f"warmup_steps goes with the constant / cosine / linear schedules, not {cls.__name__}")
    try:
        return cls(optimizer, **(config.lr_schedule_args or {}))
    except (TypeError, ValueError) as e:
        raise CardError(f"lr_schedule {cls.__name__} (lr_schedule_args): {e}") from None


def steps_schedule(config: TrainConfig) -> bool:
    """Whether the scheduler is stepped at all (a constant rate without warm-up is not)."""
    return config.lr_schedule != "constant" or config.warmup_steps > 0


def apply_recipe(optimizer: torch.optim.Optimizer, scheduler, config: TrainConfig, total: int) -> None:
    """After restoring the optimiser and scheduler: the (possibly changed) lr and weight decay of this run's
    recipe, exactly as the schedule gives them at the current step."""
    if config.lr_schedule not in SCHEDULES:
        if optimizer.param_groups[0].get("initial_lr") != config.lr:
            raise TrainingError(f"--resume cannot change --lr under the {config.lr_schedule} scheduler "
                                f"(its state holds the run's learning rates); resume without --lr")
        return
    scheduler.base_lrs = [config.lr for _ in scheduler.base_lrs]
    factor = lr_factor(config.lr_schedule, config.warmup_steps, total)(scheduler.last_epoch)
    for group in optimizer.param_groups:
        group["initial_lr"] = config.lr
        group["lr"] = config.lr * factor if steps_schedule(config) else config.lr
        group["weight_decay"] = config.weight_decay


def steps_plainly(optimizer, accelerator) -> bool:
    """Whether the loop may call the wrapped optimiser's own step.  accelerate's AcceleratedOptimizer.step looks for
    the lomo_optim package twice per step (an uncached importlib find_spec over sys.path: ~3 ms, 5% of an MLP VAE step
    on a CPU); without a gradient scaler or XLA it then just calls the optimiser's step, and the loop accumulates
    gradients itself, so it does too."""
    from accelerate.optimizer import AcceleratedOptimizer

    return (type(optimizer) is AcceleratedOptimizer and optimizer.scaler is None
            and str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)) != "XLA"
            and getattr(accelerator.gradient_state, "sync_gradients", True))
