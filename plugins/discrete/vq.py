"""VQ-VAE (van den Oord et al. 2017) as a latent-variable model: a deterministic one-hot posterior.

    z_e(x) = E(x)  ``[d, h, w]``,   k(x)_l = argmin_j |z_e(x)_l - e_j|^2       (paper eq. 1-2)
    q(z|x) = delta(z = onehot(k(x)))                   z one-hot ``[K, h, w]`` (``latent: {shape: [K, h, w]}``)
    p(x|z) = D(e_z)  with e_z the codebook vectors z selects (decoder ``vq``, which owns the codebook)
    p(z)   a prior over code grids (:mod:`codes_prior`): uniform, learned factorised or autoregressive

The rate of a deterministic one-hot q is exact: KL(q || p) = sum_z q(z) log q(z)/p(z) =
-log p(k(x)) since q(k(x)|x) = 1 -- under the uniform prior L log K for L positions (the paper's
"constant KL equal to log K" per position, section 3.1); a learned prior lowers it to
sum_l -log p(k_l | k_<l).  The ELBO log p(x|k(x)) + log p(k(x)) = log p(x, k(x)) <= log p(x) is a
true bound, and ``model.elbo`` reports it.  H[q(z|x)] = 0, so I_q(x;z) = H[q(z)], the entropy of
the code grids over the evaluated set (<= log N), and the k-sample IWAE bound equals the ELBO
(every sample is the same grid).

Training is not the ELBO: ``objective: {loss: vqvae}`` (the prior's ``training_loss``,
zoo.contracts.SurrogateLoss) runs :func:`vqvae_loss`, the paper's eq. 3

    L = -log p(x | z_q(x)) + |sg[z_e(x)] - e|^2 + beta |z_e(x) - sg[e]|^2   (+ -log p(k(x)) for a learned prior)

with the straight-through estimator z_q = z_e + sg[e - z_e] (the decoder's input gradient is
copied to the encoder, section 3.2), the commitment cost beta (encoder ``commitment``), and the
codebook learned either by the second term (decoder ``ema: null``) or by exponential moving
averages (``ema: 0.99``, appendix A.1, :func:`ema_codebook`).  The codebook starts at K encodings
of the first training batch (``init: data``) so no code starts dead; codes that fall out of use
keep their last value (no restarts).  Under several processes each one updates its own EMA and
DDP's buffer broadcast keeps the first process's codebook.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from zoo import contracts as c

from zoo_plugins.basic.layers import activation as act_layer
from zoo_plugins.basic.layers import conv_stack, output_shape

from .codes import code_shape, index_to_one_hot

NOTES = {"mi": "q(z|x) is a point mass (H[q(z|x)] = 0): I_q(x;z) = H[q(z)], the entropy of the code grids over "
               "the N points (<= log N)",
         "nll": "q(z|x) is a point mass, so every importance sample is the same code grid and the k-sample bound "
                "equals the ELBO",
         "active_units": "the units are (code, position) indicators of a one-hot posterior; codebook usage and "
                         "perplexity are the discrete analogue"}


# -- pure functions of tensors ---------------------------------------------------------------------
def nearest_codes(z_e: Tensor, codebook: Tensor) -> Tensor:
    """k_l = argmin_j |z_e,l - e_j|^2 for every position: z_e ``[B, d, *pos]``, codebook ``[K, d]`` -> ``[B, *pos]``."""
    flat = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])
    dist = (flat ** 2).sum(1, keepdim=True) - 2 * flat @ codebook.T + (codebook ** 2).sum(1)
    return dist.argmin(1).reshape(z_e.shape[0], *z_e.shape[2:])


def lookup(codebook: Tensor, index: Tensor) -> Tensor:
    """e_{k_l} for every position: index ``[B, *pos]`` -> ``[B, d, *pos]``."""
    return codebook[index].movedim(-1, 1)


def commitment_loss(z_e: Tensor, e: Tensor, beta: float) -> Tensor:
    """beta |z_e - sg[e]|^2 summed over the code vectors of every position, ``[B]`` (squared code-space units)."""
    return beta * (z_e - e.detach()).pow(2).flatten(1).sum(1)


def codebook_loss(z_e: Tensor, e: Tensor) -> Tensor:
    """|sg[z_e] - e|^2 summed over positions, ``[B]``: moves the selected codes (the non-EMA codebook)."""
    return (z_e.detach() - e).pow(2).flatten(1).sum(1)


def ema_codebook(cluster_size: Tensor, embed_sum: Tensor, codebook: Tensor, z_e: Tensor, index: Tensor,
                 decay: float) -> tuple[Tensor, Tensor, Tensor]:
    """One EMA step of the codebook (van den Oord et al. appendix A.1, eq. 6-8):

        N_i <- gamma N_i + (1 - gamma) n_i,   m_i <- gamma m_i + (1 - gamma) sum_{j: k_j = i} z_e,j,
        e_i = m_i / N_i

    with n_i the number of positions assigned to code i in this batch.  N and m start at zero and
    decay alike, so m_i / N_i is the EMA-weighted mean of the encodings code i was assigned (no
    bias correction needed); a code never assigned (N_i = 0) keeps its value.
    Returns the new (cluster_size, embed_sum, codebook)."""
    k = codebook.shape[0]
    flat = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])
    one_hot = torch.nn.functional.one_hot(index.reshape(-1), k).to(flat.dtype)         # [N, K]
    cluster_size = decay * cluster_size + (1 - decay) * one_hot.sum(0)
    embed_sum = decay * embed_sum + (1 - decay) * one_hot.T @ flat
    used = cluster_size > 1e-6
    codebook = torch.where(used[:, None], embed_sum / cluster_size.clamp(min=1e-6)[:, None], codebook)
    return cluster_size, embed_sum, codebook


# -- the posterior ---------------------------------------------------------------------------------
@dataclass
class VQPosterior:
    """q(z|x) = delta(z = onehot(k(x))): one code per position, z one-hot ``[B, K, *pos]``.

    Keeps the encoder output ``z_e`` and the input ``x`` (data space) for the VQ-VAE training
    loss, and the decoder (its codebook) that ``k`` was computed against."""

    z_e: Tensor
    index: Tensor
    num_codes: int
    decoder: nn.Module | None = None
    x: Tensor | None = None
    commitment: float = 0.25

    notes = NOTES

    @property
    def position_dims(self) -> int:
        return self.index.dim() - 1

    @property
    def probs(self) -> Tensor:
        """q(z_l = k|x): one-hot, ``[B, K, *pos]``."""
        return index_to_one_hot(self.index, self.num_codes, self.z_e.dtype, self.position_dims)

    @property
    def mean(self) -> Tensor:
        return self.probs

    def codes(self) -> Tensor:
        """k(x), ``[B, *pos]`` (zoo.contracts.Codebook)."""
        return self.index

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """The one value q puts mass on (no noise): ``[B, K, *pos]`` or ``[n, B, K, *pos]``."""
        z = self.probs
        return z if n is None else z.expand(n, *z.shape)

    sample = rsample

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) = 0 where z is the posterior's grid, -inf elsewhere; z ``[..., B, K, *pos]`` -> ``[..., B]``."""
        event = 1 + self.position_dims
        same = (z == self.probs).flatten(z.dim() - event).all(-1)
        return torch.where(same, 0.0, float("-inf")).to(z.dtype)

    def entropy(self) -> Tensor:
        """H[q(z|x)] = 0 (a point mass), ``[B]``."""
        return self.z_e.new_zeros(self.index.shape[0])

    def cross_log_prob(self, z: Tensor, chunk: int = 4096) -> Tensor:
        """log q(z_m | x_b) for every pair: 0 where z_m is x_b's grid, else -inf; z ``[M, K, *pos]`` -> ``[M, B]``."""
        mine = self.probs.flatten(1)                                   # [B, K*L]
        length = self.index[0].numel()
        rows = []
        for zc in z.flatten(1).split(chunk):
            hits = zc @ mine.T                                         # positions where z_m picks x_b's code
            one_hot = ((zc == 0) | (zc == 1)).all(1, keepdim=True) & (zc.sum(1, keepdim=True) == length)
            rows.append(torch.where((hits == length) & one_hot, 0.0, float("-inf")).to(z.dtype))
        return torch.cat(rows)

    @staticmethod
    def cat(parts: list["VQPosterior"]) -> "VQPosterior":
        p = parts[0]
        return VQPosterior(torch.cat([q.z_e for q in parts]), torch.cat([q.index for q in parts]), p.num_codes,
                           p.decoder, None, p.commitment)


# -- encoder and decoder ---------------------------------------------------------------------------
class VQEncoder(nn.Module):
    """Stride-2 convolutions -> 1x1 convolution to ``dim`` channels (z_e) -> nearest code of the decoder's codebook."""

    posterior_type = VQPosterior
    family = "vqvae"
    test_shapes = {"latent_shape": (4, 2, 2)}  # 4 codes on the 2x2 grid of an 8x8 image
    zoo_test_components = {"decoder": {"name": "vq"}, "prior": {"name": "categorical-codes"},
                           "objective": {"loss": "vqvae"}}

    def __init__(self, *, data_shape, latent_shape, channels: list[int] = (32, 64), dim: int = 16,
                 commitment: float = 0.25, activation: str = "relu"):
        super().__init__()
        self.num_codes, positions = code_shape(latent_shape, "the vq encoder")
        if len(positions) != 2:
            raise ValueError(f"the vq encoder makes a 2-d grid of codes: latent shape must be [K, h, w], "
                             f"got {list(latent_shape)}")
        self.net = nn.Sequential(conv_stack(data_shape[0], list(channels), activation),
                                 nn.Conv2d(list(channels)[-1], dim, 1))
        grid = output_shape(self.net, data_shape)[1:]
        if tuple(grid) != tuple(positions):
            raise ValueError(f"the vq encoder's {len(list(channels))} stride-2 convolutions map "
                             f"{list(data_shape[1:])} images to a {list(grid)} grid, but the latent shape asks "
                             f"for {list(positions)}: set latent.shape to [{self.num_codes}, {grid[0]}, {grid[1]}]")
        self.dim, self.commitment = int(dim), float(commitment)
        self._model = None

    def bind(self, model) -> None:
        decoder = model.decoder
        if not isinstance(decoder, VQDecoder):
            raise ValueError(f"the vq encoder quantises against the vq decoder's codebook; the decoder is "
                             f"{type(decoder).__name__}")
        if tuple(decoder.codebook.shape) != (self.num_codes, self.dim):
            raise ValueError(f"the vq encoder's codes ({self.num_codes} x dim {self.dim}) differ from the vq decoder's "
                             f"codebook {list(decoder.codebook.shape)}: give both the same dim")
        if not c.has(model.prior, c.DiscreteSupport):
            raise ValueError(f"a vq posterior is one-hot: the prior must be a prior over codes "
                             f"(e.g. categorical-codes), not {type(model.prior).__name__}")
        object.__setattr__(self, "_model", weakref.ref(model))

    def forward(self, x: Tensor) -> VQPosterior:
        model = self._model() if self._model is not None else None
        if model is None:
            raise RuntimeError("the vq encoder is not bound to a model: build it inside a LatentModel")
        z_e = self.net(x)
        index = nearest_codes(z_e, model.decoder.codebook.detach())
        return VQPosterior(z_e, index, self.num_codes, model.decoder, x, self.commitment)


class VQDecoder(nn.Module):
    """One-hot codes -> codebook vectors e_z ``[dim, h, w]`` -> 3x3 convolution and stride-2 transposed
    convolutions (one per ``channels`` entry) -> likelihood parameters, centre-cropped to the image size.

    Owns the codebook ``[K, dim]``: a buffer updated by EMA (``ema: 0.99``) or a parameter trained
    by the codebook loss (``ema: null``)."""

    family = "vqvae"
    test_shapes = {"latent_shape": (4, 2, 2)}
    zoo_test_components = {"encoder": {"name": "vq"}, "prior": {"name": "categorical-codes"},
                           "objective": {"loss": "vqvae"}}

    def __init__(self, *, data_shape, latent_shape, channels: list[int] = (64, 32), dim: int = 16,
                 ema: float | None = 0.99, init: str = "data", likelihood: str | dict = "bernoulli",
                 activation: str = "relu"):
        super().__init__()
        from zoo.likelihoods import make_likelihood

        k, positions = code_shape(latent_shape, "the vq decoder")
        if len(positions) != 2:
            raise ValueError(f"the vq decoder reads a 2-d grid of codes: latent shape must be [K, h, w], "
                             f"got {list(latent_shape)}")
        if ema is not None and ema != 0 and not 0 < float(ema) < 1:
            raise ValueError(f"the vq decoder's ema decay must be in (0, 1) or null (a trained codebook), got {ema}")
        if init not in ("data", "uniform"):
            raise ValueError(f"the vq decoder's init must be 'data' or 'uniform', got {init!r}")
        self.likelihood = make_likelihood(likelihood)
        self.ema = float(ema) if ema else None
        self.init = init
        self.data_shape = tuple(data_shape)
        start = torch.empty(k, dim).uniform_(-1 / k, 1 / k, generator=torch.Generator().manual_seed(0))
        if self.ema:
            self.register_buffer("codebook", start)
            self.register_buffer("cluster_size", torch.zeros(k))
            self.register_buffer("embed_sum", torch.zeros(k, dim))
        else:
            self.codebook = nn.Parameter(start)
        self.register_buffer("initialised", torch.tensor(0.0 if init == "data" else 1.0))
        channels = list(channels)
        layers: list[nn.Module] = [nn.Conv2d(dim, channels[0], 3, padding=1), act_layer(activation)]
        for a, b in zip([channels[0], *channels[:-1]], channels):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), act_layer(activation)]
        layers.append(nn.Conv2d(channels[-1], self.likelihood.params_per_dim * data_shape[0], 3, padding=1))
        self.net = nn.Sequential(*layers)
        out = [p * 2 ** len(channels) for p in positions]
        if out[0] < data_shape[1] or out[1] < data_shape[2]:
            raise ValueError(f"the vq decoder's {len(channels)} upsamplings of the {list(positions)} grid give {out}, "
                             f"smaller than the images {list(data_shape[1:])}: add a channels entry")

    def embed(self, z: Tensor) -> Tensor:
        """One-hot (or any weights over codes) ``[B, K, h, w]`` -> sum_k z_k e_k, ``[B, dim, h, w]``."""
        return (z.movedim(1, -1) @ self.codebook).movedim(-1, 1)

    def from_embedding(self, e: Tensor):
        """p(x | codebook vectors e ``[B, dim, h, w]``)."""
        out = self.net(e)
        _, h, w = self.data_shape
        top, left = (out.shape[2] - h) // 2, (out.shape[3] - w) // 2
        return self.likelihood(out[:, :, top:top + h, left:left + w])

    def forward(self, z: Tensor):
        return self.from_embedding(self.embed(z))

    @torch.no_grad()
    def init_codebook(self, z_e: Tensor, generator: torch.Generator | None = None) -> None:
        """The codebook <- K encodings drawn from this batch (with replacement when there are fewer)."""
        flat = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])
        k = self.codebook.shape[0]
        pick = torch.randperm(len(flat), generator=generator, device=flat.device)[:k] if len(flat) >= k else \
            torch.randint(0, len(flat), (k,), generator=generator, device=flat.device)
        self.codebook.copy_(flat[pick])
        if self.ema:
            self.cluster_size.zero_()
            self.embed_sum.zero_()
        self.initialised.fill_(1.0)

    @torch.no_grad()
    def ema_update(self, z_e: Tensor, index: Tensor) -> None:
        """One EMA step of the codebook buffers (:func:`ema_codebook`)."""
        n, m, e = ema_codebook(self.cluster_size, self.embed_sum, self.codebook, z_e, index, self.ema)
        self.cluster_size.copy_(n)
        self.embed_sum.copy_(m)
        self.codebook.copy_(e)


# -- the training loss -----------------------------------------------------------------------------
def vqvae_loss(prior, q, loss: str):
    """The VQ-VAE loss (paper eq. 3) for a batch and the true ELBO terms of the same forward pass.

    Per sample: distortion -log p(x | z_q) (nats, z_q straight-through), rate -log p(k(x)) (nats;
    it trains a learned prior, no gradient reaches the encoder), commitment beta |z_e - sg[e]|^2
    and, without EMA, the codebook term |sg[z_e] - e|^2 (squared code-space units, not nats).
    In training mode the EMA codebook is updated after the loss is computed (with this step's codes).
    Returns (mean total loss, ELBO(elbo = -(distortion + rate), distortion, rate, extras))."""
    from zoo.model import ELBO

    if loss != "vqvae":
        raise ValueError(f"the code priors define objective.loss 'vqvae' (the VQ-VAE loss), not {loss!r}; "
                         f"use 'elbo' for the bound itself")
    if not isinstance(q, VQPosterior) or q.decoder is None or q.x is None:
        raise ValueError("objective.loss 'vqvae' trains a VQ-VAE: it needs the vq encoder and the vq decoder")
    dec, z_e, index = q.decoder, q.z_e, q.index
    if dec.training and not bool(dec.initialised):
        dec.init_codebook(z_e.detach())
        index = nearest_codes(z_e.detach(), dec.codebook.detach())
    e = lookup(dec.codebook, index)
    z_q = z_e + (e - z_e).detach()                       # straight-through: d loss / d z_e = d loss / d z_q
    distortion = -dec.from_embedding(z_q).log_prob(q.x)
    z = index_to_one_hot(index, q.num_codes, z_e.dtype, index.dim() - 1)
    rate = -prior.log_prob(z)
    commit = commitment_loss(z_e, e, q.commitment)
    extras = {"commitment": commit.detach()}
    total = distortion + rate + commit
    if not dec.ema:
        book = codebook_loss(z_e, e)
        total = total + book
        extras["codebook_loss"] = book.detach()
    elif dec.training:
        dec.ema_update(z_e.detach(), index)
    terms = ELBO(-(distortion + rate).detach(), distortion.detach(), rate.detach(), extras)
    return total.mean(), terms
