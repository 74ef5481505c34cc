"""Training: ``zoo.train(NAME, out=...)`` and everything a run needs.

    config    TrainConfig: the recipe (card ``zoo.train``; one flag per field)
    loop      train() and TrainLoop: the run's state (set in __init__), the optimisation loop, evaluation and
              the run folder; LossModule, the card objective's training loss as a module (for DDP, autocast)
    resume    reading the checkpoint a resumed run starts from (refusals, recipe, segments)
    run_data  the run's training, validation and test data, and its length in steps
    engine    the device, the accelerate engine (DDP, mixed precision), micro-batches, per-process seeds
    optim     the optimisers (and a coupled objective's) and the learning-rate schedule
    record    what the run folder's card records: recipe, command, measured results
    signals   Ctrl-C / SIGTERM: stop at a step boundary with a checkpoint
    state     checkpoints: atomic, pickle-free, exactly resumable
    stream    the training data stream (a function of seed and epoch)
    ema       exponential moving average of the weights
    metrics   metrics.csv and TensorBoard
    sweep     ``zoo sweep``: one run per beta, the seed's experiment
"""
from typing import TYPE_CHECKING

from zoo.training.config import TrainConfig

if TYPE_CHECKING:
    from zoo.training.loop import TrainLoop, TrainResult, train

__all__ = ["train", "TrainConfig", "TrainLoop", "TrainResult"]


def __getattr__(name: str):
    """The loop (and torch with it) is imported on first use, so the CLI's help and listings stay light."""
    if name in ("train", "TrainLoop", "TrainResult"):
        from zoo import loading  # noqa: F401 - provides the trained model's save_pretrained / push_to_hub
        from zoo.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'zoo.training' has no attribute {name!r}")
