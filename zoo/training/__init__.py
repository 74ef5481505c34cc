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
from zoo.training.config import TrainConfig
from zoo.training.loop import TrainLoop, TrainResult, train

__all__ = ["train", "TrainConfig", "TrainLoop", "TrainResult"]
