"""The code-grid convention of the discrete families: z one-hot of shape ``[K, *positions]``, the code axis
first (K codes at each position).  Shared by the VQ-VAE (:mod:`.vq`), the Gumbel-softmax VAE (:mod:`.gumbel`)
and the priors over code grids (:mod:`.codes_prior`)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def code_shape(latent_shape, what: str) -> tuple[int, tuple[int, ...]]:
    """(K, positions) of a code-grid latent ``[K, *positions]``."""
    shape = tuple(int(s) for s in latent_shape)
    if len(shape) < 1 or shape[0] < 2:
        raise ValueError(f"{what} needs a latent of shape [K, *positions] with K >= 2 codes, got {list(shape)}")
    return shape[0], shape[1:]


def index_to_one_hot(index: Tensor, k: int, dtype, position_dims: int) -> Tensor:
    """Code indices ``[..., *positions]`` -> one-hot ``[..., K, *positions]`` (the code axis before the positions)."""
    return F.one_hot(index, k).to(dtype).movedim(-1, index.dim() - position_dims)
