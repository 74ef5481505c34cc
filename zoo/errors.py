"""Errors latent-zoo raises on bad input. Each message names the thing at fault."""
from __future__ import annotations


class ZooError(Exception):
    """Base class of every error latent-zoo raises on bad input."""


class UnknownModelError(ZooError, KeyError):
    """A model name that no card defines."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PluginWarning(UserWarning):
    """A plugin failed to load or a registration was refused (the rest of the zoo works)."""


class UsageError(ZooError, ValueError):
    """A command-line option or argument that cannot work (the CLI exits with 2, as for a bad flag)."""


class CardError(ZooError, ValueError):
    """A card that cannot be read or does not validate (names the file and the field)."""


class PluginError(ZooError):
    """A plugin that failed to load, or a component name that is unknown or registered twice."""


class ContractError(PluginError):
    """A component that does not honour its contract (zoo.contracts): a missing member, a wrong shape."""


class WeightsError(ZooError):
    """Weights that are missing, corrupted or do not fit the card's architecture."""


class ShapeError(ZooError, ValueError):
    """Data whose shape does not fit the model."""


class InputError(ZooError, ValueError):
    """Inputs a model cannot score: the wrong type, NaN or infinite pixels, floats outside [0, 1]."""


class DataError(ZooError):
    """A data source that cannot be found, loaded or converted (names the spec, path or field)."""


class TrainingError(ZooError):
    """Training stopped: a non-finite loss, or a setting that cannot work."""


class TrainingInterrupted(TrainingError):
    """The run was stopped by SIGINT / SIGTERM after writing a checkpoint of the current step."""



class UnsupportedModelError(ZooError, ValueError):
    """A model an operation does not apply to (e.g. ``zoo fit-prior`` on a latent that is not a flat Gaussian vector)."""


class UntrustedCodeError(CardError):
    """A card that names Python code to import (``module: "pkg.mod:Class"``) loaded without ``trust_modules=True``."""
