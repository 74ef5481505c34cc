"""Training: ``zoo.train(NAME, out=...)`` and everything a run needs.

    config   TrainConfig: the recipe (card ``zoo.train``; one flag per field)
    loop     train() and TrainLoop: the optimisation loop, evaluation and the run folder
    engine   the device and the accelerate engine (DDP, mixed precision)
    state    checkpoints: atomic, pickle-free, exactly resumable
    stream   the training data stream (a function of seed and epoch)
    ema      exponential moving average of the weights
    metrics  metrics.csv and TensorBoard
    sweep    ``zoo sweep``: one run per beta, the seed's experiment
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
