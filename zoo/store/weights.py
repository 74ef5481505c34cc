"""Weights on disk: safetensors in and out (atomically), strict loading, and reading an upstream
PyTorch ``.bin`` without unpickling anything but tensors (``torch.load(weights_only=True)``)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from zoo.errors import WeightsError
from zoo.store.atomic import save_atomic


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """State dict -> safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata or {}))


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """safetensors -> tensors; a missing or unreadable file names the file."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several kinds on corrupt files
        raise WeightsError(f"weights file {path} is corrupted or not a safetensors file: {e}") from None


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strictly load ``state`` into ``model``; list the first missing/unexpected/mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {list(state[k].shape)} vs model {list(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label} ({len(items)}): {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
                 for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                      ("shape mismatches", shapes)) if items]
        raise WeightsError(f"weights {source} do not fit the architecture of {getattr(model, 'name', 'the model')!r}: "
                           + "; ".join(parts))
    kinds = [f"{k}: file {str(state[k].dtype).replace('torch.', '')} vs model {str(own[k].dtype).replace('torch.', '')}"
             for k in own if own[k].is_floating_point() != state[k].is_floating_point()
             or own[k].is_complex() != state[k].is_complex()]
    if kinds:  # e.g. weights stored as int64: they would be truncated, or refused by torch with a traceback
        raise WeightsError(f"weights {source} hold tensors of another kind of dtype than the architecture of "
                           f"{getattr(model, 'name', 'the model')!r} ({len(kinds)}): {', '.join(kinds[:5])}"
                           f"{' ...' if len(kinds) > 5 else ''}; the file was not written by latent-zoo from this "
                           f"model, or is damaged")
    params = {name for name, _ in model.named_parameters()}
    broken = [k for k in own if k in params and state[k].is_floating_point() and not bool(torch.isfinite(state[k]).all())]
    if broken:
        raise WeightsError(f"weights {source} hold NaN or infinite values in {len(broken)} of {len(params)} parameters "
                           f"({', '.join(broken[:5])}{' ...' if len(broken) > 5 else ''}): they come from a run that "
                           f"diverged or a damaged file; load an earlier checkpoint or re-train")
    # a model built without random initialisation (parameters on the meta device) takes the tensors as they are
    empty = any(p.is_meta for p in model.parameters())
    model.load_state_dict(state, strict=True, assign=empty)
    if empty:
        dtype = next((t.dtype for t in own.values() if t.is_floating_point() and not t.is_meta), None)
        if dtype is not None:
            model.to(dtype)


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or (safely) from a PyTorch ``.bin``."""
    path = Path(path)
    if path.suffix == ".bin":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise WeightsError(f"weights file {path} could not be read as tensors only: {e}") from None
        if not isinstance(state, dict):
            raise WeightsError(f"weights file {path} does not hold a state dict")
        return state
    return read_weights(path)
