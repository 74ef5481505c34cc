"""Inception-v3 weights for FID without running code from a file.

torch-fidelity reads a weights path with ``torch.load(..., weights_only=False)``: a pickle there runs.  Here
the file is checked against the published sha256 of torch-fidelity's release asset *before anything reads it*
(its size first, then its bytes), read with ``torch.load(weights_only=True)`` (tensors only, no code), and given
to torch-fidelity as a state dict through an extractor registered under its own name: torch-fidelity never
opens the file.  A file of other bytes is a WeightsError naming the path, its sha256 and the expected one.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from zoo.errors import WeightsError
from zoo.quality.features import sha256_of

# torch-fidelity v0.2.0's weights-inception-2015-12-05-6726825d.pth (the name carries the sha256's first 8 digits)
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
INCEPTION_BYTES = 95_628_359
EXTRACTOR = "zoo-inception-v3-compat"


def verify_inception(path: Path) -> str:
    """The sha256 of ``path`` if it is the published Inception file, else a WeightsError naming what differs."""
    sha256, size = INCEPTION_SHA256, INCEPTION_BYTES
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        raise WeightsError(f"Inception weights file {path} has {got_size} bytes, not the {size} of torch-fidelity's "
                           f"weights-inception-2015-12-05-6726825d.pth (sha256 {sha256}); it is not read")
    got = sha256_of(path)
    if got != sha256:
        raise WeightsError(f"Inception weights file {path} has sha256 {got}, expected {sha256} (torch-fidelity's "
                           f"weights-inception-2015-12-05-6726825d.pth); it is not read")
    return got


def read_inception(path: Path) -> dict:
    """The state dict of a verified file, read as tensors only (``weights_only=True``: no code runs)."""
    import pickle

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise WeightsError(f"Inception weights file {path} cannot be read as tensors only "
                           f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"Inception weights file {path} does not hold a state dict of tensors")
    return state


def register_inception(path: Path) -> str:
    """Register torch-fidelity's Inception-v3 extractor fed with ``path``'s verified state dict; its name there."""
    import torch_fidelity
    import torch_fidelity.feature_extractor_inceptionv3 as fx
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    state = read_inception(path)

    class VerifiedInception(fx.FeatureExtractorInceptionV3):
        """torch-fidelity's network, its weights given as a dict (the file was verified and read above)."""

        def __init__(self, name, features_list, **kwargs):
            kwargs.pop("feature_extractor_weights_path", None)
            with _state_instead_of_download(fx, state):
                try:
                    super().__init__(name, features_list, **kwargs)
                except RuntimeError as e:  # load_state_dict: the tensors do not fit the network
                    raise WeightsError(f"Inception weights file {path}: {str(e).splitlines()[0]}") from None

    FEATURE_EXTRACTORS_REGISTRY.pop(EXTRACTOR, None)  # the latest verified file
    torch_fidelity.register_feature_extractor(EXTRACTOR, VerifiedInception)
    return EXTRACTOR


@contextlib.contextmanager
def _state_instead_of_download(module, state: dict):
    """torch-fidelity's extractor loads ``load_state_dict_from_url`` when given no path: hand it ``state``
    (nothing is downloaded, no file opened)."""
    saved = module.load_state_dict_from_url
    module.load_state_dict_from_url = lambda *args, **kwargs: state
    try:
        yield
    finally:
        module.load_state_dict_from_url = saved
