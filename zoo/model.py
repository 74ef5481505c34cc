"""LatentModel: a prior p(z), a decoder p(x|z) and an encoder q(z|x), and their ELBO.

    log p(x) >= ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))
                        =      -distortion        -      rate

The components honour :mod:`zoo.contracts`; the model dispatches on the capabilities they
declare there (closed-form KL, structured inference, enumerable posteriors, surrogate losses)
and checks the shapes they return (every per-sample term must be ``[B]``), naming the component
and the distribution that registered it when one does not.

Training objective (card ``zoo.objective``): ``model.objective(x)`` -> (loss, terms), the
beta-ELBO, or with ``iwae_k: K > 1`` the K-sample importance-weighted bound (Burda et al. 2015),
or with ``loss: NAME`` a surrogate of the prior's ``training_loss(q, NAME)`` (DDPM's L_simple),
or with ``name: NAME`` a registered objective (zoo.contracts.Objective: beta-TCVAE, FactorVAE, ...).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from zoo import contracts as c
from zoo.distributions import bits_per_dim
from zoo.errors import CardError, ContractError, InputError, ShapeError, UsageError, ZooError

if TYPE_CHECKING:  # pragma: no cover
    from zoo.outputs import ImageObservation, ModelOutput


# the generic fields of ``zoo.objective``; the rest are a surrogate loss's own options (the typed card parses them,
# zoo.cards.spec.OBJECTIVE_FIELDS, and hands the model contracts.ObjectiveSettings; kept equal by a test)
ELBO_OBJECTIVE_FIELDS = frozenset({"beta", "iwae_k", "loss", "gradient", "name"})

# What LatentModel's file and Hub methods run, installed by the loader (zoo.loading) when it is imported: the model
# module knows nothing of files or the Hub (one-way dependencies, DESIGN.md), as huggingface_hub's ModelHubMixin
# keeps its file and Hub logic apart from the model classes that use it.
_PRETRAINED_IO: Any = None


def install_pretrained_io(io: Any) -> None:
    """Install the object behind ``LatentModel.from_pretrained`` / ``save_pretrained`` / ``push_to_hub``: it has
    ``from_pretrained(cls, repo_or_path, **options)``, ``save_pretrained(model, folder, **options)`` and
    ``push_to_hub(model, repo_id, **options)`` (zoo.loading.PretrainedIO)."""
    global _PRETRAINED_IO
    _PRETRAINED_IO = io


def _pretrained_io(method: str) -> Any:
    if _PRETRAINED_IO is None:
        raise ZooError(f"LatentModel.{method} is provided by the loader, which is not imported yet: use "
                       f"zoo.LatentModel (or import zoo.loading) first")
    return _PRETRAINED_IO


@dataclass
class ELBO:
    """Per-sample ELBO terms in nats: ``elbo = -(distortion + rate)``."""

    elbo: Tensor
    distortion: Tensor
    rate: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    def loss(self, beta: float = 1.0) -> Tensor:
        """Mean negative beta-ELBO over the batch: distortion + beta * rate (nats)."""
        return (self.distortion + beta * self.rate).mean()

    def __getitem__(self, key: str) -> Tensor:
        return self.as_dict()[key]

    def as_dict(self) -> dict[str, Tensor]:
        return {"elbo": self.elbo, "distortion": self.distortion, "rate": self.rate, **self.extras}

    def __repr__(self) -> str:
        def mean(t: Tensor) -> str:
            return f"{float(t.detach().float().mean()):.4g}" if t.numel() else "n/a"

        extras = f", extras={sorted(self.extras)}" if self.extras else ""
        return (f"ELBO(batch={self.elbo.shape[0] if self.elbo.dim() else 1}, elbo={mean(self.elbo)}, "
                f"distortion={mean(self.distortion)}, rate={mean(self.rate)} nats (batch means){extras})")


class LatentModel(nn.Module):
    """The assembled model a card describes; build it with ``zoo.load`` or ``zoo.build``."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: nn.Module, *,
                 data_shape: tuple[int, ...], latent_shape: tuple[int, ...],
                 name: str = "model", beta: float = 1.0, config: dict[str, Any] | None = None,
                 sources: dict[str, str] | None = None, objective: Any = None,
                 objective_settings: c.ObjectiveSettings | None = None,
                 default_sampler: tuple[str, dict[str, Any]] | None = None):
        super().__init__()
        # a registered objective (card zoo.objective.name); an nn.Module one saves its parameters with the model
        self.training_objective = objective
        # the built-in bound's settings, typed (the card's zoo.objective, handed over by the assembler); None: the
        # beta-ELBO.  ``config`` is the card's block as written, a record the model does not parse.
        self.objective_settings = objective_settings
        # (name, options) of model.sample's default registered sampler (the card's zoo.sampler), or None
        self.default_sampler = default_sampler
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        self.data_shape = tuple(data_shape)
        self.latent_shape = tuple(latent_shape)
        self.name = name
        self.beta = beta
        self.config = config or {}
        # kind -> "NAME from DIST (module)", for errors that name the component at fault
        self.sources = dict(sources or {})
        self.info: dict[str, Any] = {}  # provenance: weights file, revision, EMA or raw, ...
        self.plugins: dict[str, dict[str, Any]] = {}  # kind -> name, distribution, version (set by assemble)
        self.card = None  # the Card the model was assembled from (set by assemble)
        # runs a registered sampler, run_sampler(model, name, n, generator=..., **options) (set by assemble, which
        # knows the registry: zoo.sampling.run_sampler); None for a model not assembled from a card
        self.run_sampler = None
        for kind, part in (("encoder", encoder), ("decoder", decoder), ("prior", prior)):
            if not c.has(part, c.Binds):
                continue
            try:  # components that need the others (e.g. an exact posterior) keep a weak reference
                part.bind(self)
            except (ValueError, TypeError) as e:
                raise ContractError(f"the {kind} {self.sources.get(kind, type(part).__name__)} does not fit "
                                    f"this model: {e}") from e

    # -- the Hub-standard API (provided by the loader, zoo.loading.PretrainedIO; see install_pretrained_io) ----
    @classmethod
    def from_pretrained(cls, repo_or_path: str | Any, *, revision: str | None = None, token: str | bool | None = None,
                        cache_dir: str | None = None, local_files_only: bool | None = None,
                        force_download: bool = False, device: Any = None, dtype: torch.dtype | None = None,
                        weights: str | None = None, trust_modules: bool = False) -> "LatentModel":
        """``zoo.load`` with huggingface_hub's download options: a card name, a run folder (``save_pretrained``),
        ``org/name`` or ``hf://org/name@rev``.  Strict loading, safetensors only, nothing unpickled; a card naming
        its own Python classes (zoo.byo) is imported only with ``trust_modules=True``."""
        return _pretrained_io("from_pretrained").from_pretrained(
            cls, repo_or_path, revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only,
            force_download=force_download, device=device, dtype=dtype, weights=weights, trust_modules=trust_modules)

    def save_pretrained(self, folder: str | Any, *, overwrite: bool = False) -> Any:
        """Write ``model.safetensors``, ``config.json`` and ``README.md`` (the card) into ``folder``:
        what ``from_pretrained`` and ``zoo push`` read.  A folder of the user's files or a training run is
        refused (``overwrite=True``: a run is replaced whole; the user's files are never replaced)."""
        if self.card is None:
            raise CardError(f"model {self.name!r} has no card to save with it (build it with zoo.build or zoo.load)")
        return _pretrained_io("save_pretrained").save_pretrained(self, folder, overwrite=overwrite)

    def push_to_hub(self, repo_id: str, *, private: bool = False, revision: str | None = None,
                    create_pr: bool = False, token: str | None = None, commit_message: str | None = None
                    ) -> dict[str, Any]:
        """``save_pretrained`` into a temporary folder, then ``zoo push`` it to ``repo_id`` (one commit)."""
        return _pretrained_io("push_to_hub").push_to_hub(self, repo_id, private=private, revision=revision,
                                                         create_pr=create_pr, token=token,
                                                         commit_message=commit_message)

    # -- data ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the weights (float32 unless the model was moved, e.g. ``.double()``)."""
        for t in self.parameters():
            if t.dtype.is_floating_point:
                return t.dtype
        return torch.float32

    @property
    def num_data_dims(self) -> int:
        return math.prod(self.data_shape)

    def prepare(self, x: Tensor) -> Tensor:
        """Images (uint8 0..255 or float in [0, 1]; a tensor or a numpy array), ``[B, C, H, W]`` -> the
        likelihood's data space.  Anything else is refused by name: other types, NaN or infinite pixels,
        floats outside [0, 1] (e.g. images still in 0..255 or in [-1, 1])."""
        if not isinstance(x, Tensor):
            import numpy as np

            if not isinstance(x, np.ndarray):
                raise InputError(f"model {self.name!r} takes images as a torch.Tensor or numpy.ndarray, "
                                f"got {type(x).__name__}")
            x = torch.from_numpy(np.ascontiguousarray(x))
        if x.dim() != len(self.data_shape) + 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ShapeError(f"model {self.name!r} expects images of shape {list(self.data_shape)} "
                             f"(channels, height, width), got {list(x.shape[1:])}")
        if x.dtype == torch.bool or not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise InputError(f"model {self.name!r} takes uint8 (0..255) or float (0..1) images, got {x.dtype}")
        dtype = self.dtype
        x = x.to(self.device)
        if x.dtype == torch.uint8:
            x = x.to(dtype) / 255.0
        else:
            lo, hi = torch.aminmax(x.detach())
            lo, hi = float(lo), float(hi)  # one host sync per batch of float images (uint8 needs none)
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise InputError(f"model {self.name!r}: the images contain NaN or infinite pixels")
            if lo < -1e-6 or hi > 1 + 1e-6:
                raise InputError(f"model {self.name!r}: float images must lie in [0, 1], got values in "
                                 f"[{lo:.4g}, {hi:.4g}] (uint8 images 0..255 are accepted as they are; divide "
                                 f"floats in 0..255 by 255)")
            x = x.to(dtype)
        return self.decoder.likelihood.prepare(x)

    def to_images(self, x: Tensor) -> Tensor:
        """Data-space values -> images in [0, 1]."""
        return self.decoder.likelihood.to_unit(x)

    # -- the three maps --------------------------------------------------------------------------
    def encode(self, x: Tensor):
        """q(z|x) for images ``x``: the encoder's posterior (zoo.contracts.Posterior: ``mean``, ``rsample``,
        ``log_prob``, and what it declares beside them)."""
        return self.encoder(self.prepare(x))

    def decode(self, z: Tensor) -> "ImageObservation":
        """p(x|z) (zoo.outputs.ImageObservation): ``log_prob(images)`` takes images as the model does (uint8 or
        [0, 1] floats, prepared into the likelihood's space as the ELBO prepares them), ``mean``, ``images`` and
        ``sample``; ``.observation`` is the decoder's own p(x|z) in the likelihood's data space."""
        from zoo.outputs import ImageObservation

        return ImageObservation(self.decoder(z), self)

    def forward(self, x: Tensor, *, prepared: bool = False) -> "ModelOutput":
        """The ELBO terms of images ``x`` with q(z|x), the z they were scored at and p(x|z) (zoo.outputs.ModelOutput):
        ``model(x).elbo`` equals ``model.elbo(x).elbo`` for the same random state."""
        from zoo.outputs import ImageObservation, ModelOutput

        terms, q, z, obs = self._elbo_parts(x if prepared else self.prepare(x))
        return ModelOutput(terms.elbo, terms.distortion, terms.rate, q, z,
                           None if obs is None else ImageObservation(obs, self), dict(terms.extras),
                           self.num_data_dims)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean of p(x | z = E_q[z|x]) as images in [0, 1]."""
        return self.to_images(self.decoder(self.encode(x).mean).mean)

    @torch.no_grad()
    def sample(self, n: int, *, mean: bool = True, generator: torch.Generator | None = None,
               sampler: str | None = None, **options: Any) -> Tensor:
        """n images in [0, 1] from z ~ p(z), x ~ p(x|z) (or its mean when ``mean``).

        ``sampler``: a registered sampler the prior lists in ``samplers`` (e.g. ``"ddim"`` with
        ``steps=50, eta=0.0``); its ``options`` are the keyword arguments."""
        if sampler is None and not options and self.default_sampler is not None:
            sampler, options = self.default_sampler[0], dict(self.default_sampler[1])  # the card's default
        if sampler is not None:
            if self.run_sampler is None:
                raise UsageError(f"model {self.name!r}: sampler {sampler!r} is a registered sampler, and this model "
                                 f"was not assembled from a card (zoo.build / zoo.load look samplers up)")
            return self.run_sampler(self, sampler, n, generator=generator, **options)
        if options:
            raise TypeError(f"sampling options {sorted(options)} need a sampler (sampler=NAME)")
        z = self.prior.sample(n, generator=generator)
        obs = self.decoder(z)
        return self.to_images(obs.mean if mean else obs.sample(generator))

    # -- the bound -----------------------------------------------------------------------------
    def posterior(self, x: Tensor):
        """q(z|x) for ``x`` already in the likelihood's data space."""
        return self.encoder(x)

    def elbo(self, x: Tensor, beta: float = 1.0, *, prepared: bool = False) -> ELBO:
        """Per-sample ELBO, distortion -E_q log p(x|z) and rate KL(q(z|x)||p(z)), nats.

        ``beta`` does not change the returned terms (the ELBO is the ELBO); pass it to
        ``ELBO.loss(beta)`` for the beta-VAE objective distortion + beta * rate."""
        return self.elbo_and_posterior(x if prepared else self.prepare(x))[0]

    def elbo_and_posterior(self, x: Tensor) -> tuple[ELBO, Any]:
        """The ELBO terms of prepared ``x`` and the posterior q(z|x) they were computed with."""
        return self._elbo_parts(x)[:2]

    def _elbo_parts(self, x: Tensor) -> tuple[ELBO, Any, Tensor | None, Any]:
        """ELBO terms, q(z|x), the z the distortion was scored at and the decoder's p(x|z) for it (z and p(x|z)
        None for an exact sum over a discrete posterior's support)."""
        q = self.posterior(x)
        if self.enumerates(q):
            return self._exact_elbo(x, q), q, None, None
        z, rate, extras = self.rate(q)
        obs = self.decoder(z)
        distortion = -self._check(obs.log_prob(x), (x.shape[0],), "decoder", "observation log_prob(x)")
        return ELBO(-(distortion + rate), distortion, rate, extras), q, z, obs

    def enumerates(self, q) -> bool:
        """True when E_q is an exact sum over q's discrete support (and the prior scores z itself)."""
        return c.has(q, c.EnumerablePosterior) and not c.has(self.prior, c.StructuredInference)

    def _enumerated_log_joint(self, x: Tensor, q) -> tuple[Tensor, Tensor, Tensor]:
        """For a discrete posterior: log q(z_k|x), log p(x|z_k) and log p(z_k) for every z_k of the support, [B, K]."""
        values, log_q = q.enumerate()                              # [K, ...], [B, K]
        b, k = log_q.shape
        z = values.unsqueeze(0).expand(b, *values.shape).reshape(b * k, *values.shape[1:])
        xs = x.unsqueeze(1).expand(b, k, *x.shape[1:]).reshape(b * k, *x.shape[1:])
        log_lik = self._log_lik(z, xs).reshape(b, k)
        log_p = self._check(self.prior.log_prob(values), (k,), "prior", "log_prob of the support")
        return log_q, log_lik, log_p.unsqueeze(0).expand(b, k)

    def _exact_elbo(self, x: Tensor, q) -> ELBO:
        """E_q exactly, as a sum over the support: distortion = -sum_k q_k log p(x|z_k),
        rate = sum_k q_k (log q_k - log p(z_k))."""
        log_q, log_lik, log_p = (t.double() for t in self._enumerated_log_joint(x, q))
        # in float64: with the exact posterior the sum is log p(x) to rounding (float32 loses ~1e-3 nats
        # on 64-pixel Gaussian log-likelihoods of a few hundred nats); the terms keep the model's dtype
        w = log_q.exp()
        distortion = -(w * log_lik).sum(1)
        rate = (w * (log_q - log_p)).sum(1)
        dtype = x.dtype if x.is_floating_point() else torch.float32
        return ELBO((-(distortion + rate)).to(dtype), distortion.to(dtype), rate.to(dtype), {})

    def rate(self, q) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Sample z ~ q and compute KL(q||p): closed form where the prior offers it, else one-sample MC."""
        if c.has(self.prior, c.StructuredInference):
            z, rate, extras = self.prior.infer(q)
            return z, self._check(rate, (z.shape[0],), "prior", "infer(q) rate"), extras
        z = q.rsample()
        b = z.shape[0]
        if c.has(self.prior, c.ClosedFormCrossEntropy) and c.has(q, c.ClosedFormEntropy):
            # KL(q||p) = -H[q] - E_q[log p(z)]
            cross = self._check(self.prior.cross_entropy(q), (b,), "prior", "cross_entropy(q)")
            return z, cross - self._check(q.entropy(), (b,), "encoder", "posterior entropy()"), {}
        log_q = self._check(q.log_prob(z), (b,), "encoder", "posterior log_prob(z)")
        return z, log_q - self._check(self.prior.log_prob(z), (b,), "prior", "log_prob(z)"), {}

    def _log_lik(self, z: Tensor, x: Tensor) -> Tensor:
        return self._check(self.decoder(z).log_prob(x), (x.shape[0],), "decoder", "observation log_prob(x)")

    # -- importance weighting ------------------------------------------------------------------
    def log_weights(self, x: Tensor, k: int, q=None) -> tuple[Tensor, Tensor]:
        """log p(x|z_i) and log p(z_i) - log q(z_i|x) for z_1..z_k ~ q(z|x), each ``[k, B]`` (nats).

        The one importance-weight computation behind ``log_likelihood`` and the IWAE objective."""
        q = self.posterior(x) if q is None else q
        b = x.shape[0]
        z = q.rsample(k)                                                        # [k, B, ...]
        log_lik = torch.stack([self._log_lik(z[i], x) for i in range(k)])
        log_p = self._check(self.prior.log_prob(z), (k, b), "prior", "log_prob(z) of [k, B, ...] samples")
        log_q = self._check(q.log_prob(z), (k, b), "encoder", "posterior log_prob(z) of [k, B, ...] samples")
        return log_lik, log_p - log_q

    def objective(self, x: Tensor, beta: float | None = None, *, prepared: bool = False) -> tuple[Tensor, ELBO]:
        """The card objective's training loss (card ``zoo.objective``), and the ELBO terms (for logging).

        ``zoo.objective.iwae_k`` 1 (default): mean of distortion + beta * rate (the beta-ELBO).
        ``iwae_k`` K > 1: minus the K-sample importance-weighted bound (Burda et al. 2015)
            log 1/K sum_i p(x|z_i) [p(z_i) / q(z_i|x)]^beta,  z_i ~ q(z|x),
        which is the IWAE bound at beta = 1; ``terms`` then hold the K-sample average of the
        ELBO terms and ``terms.extras["iwae"]`` the bound.  ``beta`` defaults to the card's.
        ``gradient: dreg`` with ``iwae_k`` K > 1: the same bound, with the doubly-reparameterised encoder
            gradient (Tucker et al. 2018, :func:`dreg_scale`).
        ``loss`` other than ``elbo`` (e.g. ``simple`` for DDPM): ``prior.training_loss(q, loss)``
        returns (loss, terms); ``elbo()`` still reports the true bound.
        ``name`` other than ``elbo``: the registered objective's ``objective(model, x)`` (its options, beta
        included, come from the card; the ``beta`` argument is not used)."""
        x = x if prepared else self.prepare(x)
        if self.training_objective is not None:
            return self.training_objective(self, x)
        beta = self.beta if beta is None else float(beta)
        settings = self.objective_settings
        k = 1 if settings is None else int(settings.iwae_k)
        loss_name = "elbo" if settings is None else settings.loss
        if loss_name != "elbo":  # a surrogate the prior defines, e.g. DDPM's L_simple
            if not c.has(self.prior, c.SurrogateLoss):
                raise CardError(f"objective.loss {loss_name!r} needs a prior with training_loss(q, loss); "
                                f"{self.sources.get('prior', type(self.prior).__name__)} has none (use 'elbo')")
            options = settings.arguments()  # the surrogate loss's own options
            return self.prior.training_loss(self.posterior(x), loss_name, **options)
        if k <= 1:
            terms = self.elbo(x, prepared=True)
            return terms.loss(beta), terms
        q = self.posterior(x)
        if self.enumerates(q):  # the enumerated ELBO of an exact posterior is already log p(x)
            terms = self._exact_elbo(x, q)
            return terms.loss(beta), terms
        if settings.gradient == "dreg":
            return self._dreg_objective(x, k, q, beta)
        log_lik, log_ratio = self.log_weights(x, k, q)
        bound = torch.logsumexp(log_lik + beta * log_ratio, 0) - math.log(k)
        terms = ELBO((log_lik + log_ratio).mean(0), -log_lik.mean(0), -log_ratio.mean(0), {"iwae": bound})
        return -bound.mean(), terms

    def _dreg_objective(self, x: Tensor, k: int, q, beta: float) -> tuple[Tensor, ELBO]:
        """The K-sample bound with the DReG gradient (Tucker et al. 2018, eq. 7): log q is scored with q's
        parameters stopped, so the encoder's gradient flows through z only, and a hook scales dL/dz_i by
        :func:`dreg_scale`; the decoder's and prior's gradient stays IWAE's, sum_i w~_i d log w_i.
        The loss value is minus the bound, as without DReG."""
        if not c.has(q, c.Detachable):
            raise CardError(f"objective.gradient 'dreg' needs a posterior with detach() (zoo.contracts.Detachable); "
                            f"{self.sources.get('encoder', type(self.encoder).__name__)} gives a "
                            f"{type(q).__name__} without it (use gradient: reparam)")
        b = x.shape[0]
        z = q.rsample(k)                                                        # [k, B, ...]
        log_lik = torch.stack([self._log_lik(z[i], x) for i in range(k)])
        log_p = self._check(self.prior.log_prob(z), (k, b), "prior", "log_prob(z) of [k, B, ...] samples")
        log_q = self._check(q.detach().log_prob(z), (k, b), "encoder", "posterior log_prob(z) of [k, B, ...] samples")
        log_ratio = log_p - log_q
        log_w = log_lik + beta * log_ratio
        if z.requires_grad:
            scale = dreg_scale(torch.softmax(log_w.detach(), 0), beta)
            z.register_hook(lambda g: g * scale.reshape(*scale.shape, *([1] * (g.dim() - scale.dim()))))
        bound = torch.logsumexp(log_w, 0) - math.log(k)
        terms = ELBO((log_lik + log_ratio).mean(0), -log_lik.mean(0), -log_ratio.mean(0), {"iwae": bound})
        return -bound.mean(), terms

    def log_likelihood(self, x: Tensor, k: int = 100, *, prepared: bool = False) -> Tensor:
        """Importance-weighted bound (Burda et al. 2015), nats per sample:
        log p(x) >= log 1/k sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x).  Tight as k -> inf.
        Exact (a sum over the support) for an enumerable discrete posterior."""
        x = x if prepared else self.prepare(x)
        q = self.posterior(x)
        if self.enumerates(q):  # discrete z: log p(x) = logsumexp_k log p(x|z_k) p(z_k), exactly
            _, log_lik, log_p = self._enumerated_log_joint(x, q)
            return torch.logsumexp(log_lik.double() + log_p.double(), 1)
        log_lik, log_ratio = self.log_weights(x, k, q)
        return torch.logsumexp(log_lik + log_ratio, 0) - math.log(k)

    def bits_per_dim(self, nats: Tensor | float) -> Tensor | float:
        """nats per image -> bits per data dimension."""
        return bits_per_dim(nats, self.num_data_dims)

    # -- contract checks -----------------------------------------------------------------------
    def _check(self, t: Any, shape: tuple[int, ...], kind: str, what: str) -> Tensor:
        """``t`` must be a tensor of ``shape``; else a ContractError naming the component and its plugin."""
        if isinstance(t, Tensor) and tuple(t.shape) == shape:
            return t
        got = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
        who = self.sources.get(kind, type(getattr(self, kind)).__name__)
        raise ContractError(f"model {self.name!r}: the {kind} {who} returned {what} of shape {got}; the contract "
                            f"(zoo.contracts) asks for one value per sample, shape {list(shape)}")



def dreg_scale(weights: Tensor, beta: float = 1.0) -> Tensor:
    """The factor on d log w_i / dz_i that turns IWAE's weighted pathwise gradient into DReG's
    (Tucker et al. 2018, eq. 7): the encoder gradient is sum_i w~_i^2 d log w_i/dz_i dz_i/dphi at beta = 1.
    In general (weights ``[k, B]`` normalised, w_i = p(x|z_i) [p(z_i)/q(z_i|x)]^beta), the score term
    -beta E[w~_i d log q/dphi] becomes -beta E[w~_i (1 - w~_i) d log w_i/dz_i dz_i/dphi], so the factor
    on the pathwise term is (1 - beta) + beta w~_i.  Dimensionless."""
    return (1.0 - beta) + beta * weights

