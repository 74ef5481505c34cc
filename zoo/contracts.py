"""The contract between latent-zoo's core and its plugins, as code.

A named model is the seed's triple, assembled from three registered components:

    prior p(z)  --decoder p(x|z)-->  x  --encoder q(z|x)-->  z

Each kind has a *required* protocol below (what every component of that kind must have) and
*capabilities*: optional protocols or declared attributes that the core dispatches on.  A
component states a capability by having the members of its protocol (checked with
``isinstance`` against the runtime-checkable protocol) or by a declared class attribute
(``exact``, ``fixed``, ``family``, ``samplers``, ``posterior_type``, ``test_shapes``).  Nothing
in the core looks for optional members any other way: :func:`has` and the ``is_*`` helpers here
are the only place capabilities are read.

Conventions (every kind): tensors are batch-first; a distribution's ``log_prob`` sums over the
event (every dimension after the batch) and returns one value per sample in **nats**, ``[B]``
(or ``[S, B]`` for ``S`` leading sample dimensions).  Data enter a model as images in [0, 1]
(or uint8 0..255) and are mapped to the likelihood's data space by ``likelihood.prepare``.

Required
    Posterior      q(z|x) for a batch: ``rsample(n=None, generator=None)``, ``log_prob(z)``, ``mean``
    Observation    p(x|z) for a batch: ``log_prob(x)``, ``mean``, ``sample(generator=None)``
    Likelihood     ``name``, ``discrete``, ``prepare(x01)``, ``to_unit(x)`` (the decoder's ``.likelihood``)
    Encoder        ``encoder(x) -> Posterior`` (an ``nn.Module``)
    Decoder        ``decoder(z) -> Observation`` and ``decoder.likelihood``
    Prior          ``log_prob(z)``, ``sample(n, generator=None)``

Optional, posterior
    ClosedFormEntropy       ``entropy() -> [B]``: H[q(z|x)] in closed form
    PerDimLogProb           ``log_prob_per_dim(z)``: log q elementwise (per latent dimension)
    AggregatePosterior      ``cross_log_prob(z) -> [M, B]`` and ``cat(parts)``: exact aggregate posterior
    PerDimAggregatePosterior ``cross_log_prob_per_dim(z) -> [M, B, D]``: the same per latent dimension; diagnose
                            then splits the rate into index-code MI, total correlation and dimension-wise KL
    EnumerablePosterior     ``enumerate() -> (values [K, ...], log q [B, K])``: a small discrete support
    Codebook                ``codes() -> long [B, *positions]`` and ``num_codes``: a posterior that picks one
                            entry of a shared codebook per position (VQ-VAE); diagnose reports codebook
                            usage and perplexity, the discrete analogue of active units
    DiagonalCovariance      ``variance``: Var_q[z_d|x] per dimension, ``[B, *latent]``, for a posterior whose
                            covariance is diagonal (DIP-VAE-II's closed-form Cov_q(z))
    Detachable              ``detach()``: the same distribution with its parameters' gradients stopped (the
                            doubly-reparameterised IWAE gradient, ``objective: {iwae_k: K, gradient: dreg}``)
    ``fixed = True``        a parameter-free noising process (no active units, no MI to report)

Optional, prior
    ClosedFormCrossEntropy  ``cross_entropy(q) -> [B]`` = -E_q log p(z) in closed form
    PerDimKL                ``kl_per_dim(q) -> [B, *latent_shape]`` (or None for a posterior it has none for)
    StructuredInference     ``infer(q) -> (z, rate [B], extras)`` for structured posteriors
    SurrogateLoss           ``training_loss(q, name, **options) -> (loss, ELBO)``, e.g. DDPM's L_simple
    DiscreteSupport         ``support() -> [K, *latent_shape]``: log_prob sums to 1 over it
    GaussianForwardProcess  ``forward_marginals() -> (a_t, s_t)``: the noising process q(x_t|x_0) (diffusion)
    Denoiser                ``denoise(z, log_snr)`` and ``log_snr_range()``: the learned E[x|z] (I-MMSE curve)
    ``exact = False``       log_prob is a (possibly stochastic) lower bound, not log p(z)
    ``estimator: str``      how the rate is estimated (shown by ``zoo diagnose``)
    ``samplers: tuple``     names of registered samplers that draw from this prior (``zoo sample --steps``)
    ``manifold = "sphere"`` z lies on the unit sphere S^{d-1} and log_prob is a density w.r.t. its surface
                            measure (the conformance kit integrates over the sphere)

Optional, likelihood
    ParametricLikelihood    ``params_per_dim`` and ``likelihood(params) -> Observation``: usable by
                            name by any built-in decoder (``decoder: {likelihood: NAME}``)
    FittableLikelihood      ``fit(model, images) -> dict`` and ``describe() -> dict``: free parameters
                            fitted to data, not trained (e.g. the noise scale stated for a
                            deterministic decoder); ``zoo diagnose`` fits them on held-out images

Optional, any component
    Binds                   ``bind(model)``: called once the three parts are assembled (keep a weak
                            reference; raise ValueError naming what does not fit)
    ``family: str``         a family tag for the Hub card (``vae``, ``gmm``, ``diffusion``, ...)
    ``posterior_type``      (encoders) the class ``forward`` returns, so combinations are checked
                            before any data is seen
    ``test_shapes``         ``{"latent_shape": ..., "data_shape": ...}`` the conformance kit should use
    ``notes: dict``         (posteriors and priors) why a diagnostic is not available or how it is
                            estimated for this component, by key ``mi``, ``nll``, ``kl_per_dim``,
                            ``active_units`` (added to ``zoo diagnose``'s estimator texts)

Training objectives (card ``zoo.objective: {name: NAME, ...}``, registered with ``register_objectives``)
    Objective               ``objective(model, x) -> (loss, ELBO terms)``; absent or ``elbo``: the built-in
                            beta-ELBO / IWAE path of ``LatentModel.objective``
    CoupledObjective        ``coupled_parameters(model)`` and ``coupled_loss(name, model, x)``: parameter sets
                            with optimisers of their own, stepped after the main one on the same batch
                            (FactorVAE's discriminator, PIWAE's inference network)

Other registered kinds (see :mod:`zoo.hookspecs`): Converter, Fitter, PriorFitter, Sampler, DataSource, Command.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from torch import Tensor

__all__ = [
    "Posterior", "Observation", "Likelihood", "ParametricLikelihood", "FittableLikelihood", "Encoder", "Decoder",
    "Prior", "ClosedFormEntropy", "PerDimLogProb", "AggregatePosterior", "PerDimAggregatePosterior",
    "EnumerablePosterior", "Codebook", "Detachable", "DiagonalCovariance",
    "ClosedFormCrossEntropy", "PerDimKL", "StructuredInference", "SurrogateLoss", "DiscreteSupport", "Denoiser", "Binds",
    "Converter", "Fitter", "PriorFitter", "FittedPrior", "Sampler", "SamplerOption", "DataSource", "Objective",
    "CoupledObjective",
    "has", "missing_members", "is_exact", "is_fixed", "family_of", "rate_estimator", "declared_samplers",
    "posterior_type", "notes_of", "manifold_of", "factors_of", "label_names_of", "NOTE_KEYS", "MANIFOLDS", "REQUIRED",
]


# ------------------------------------------------------------------------------------- required

@runtime_checkable
class Posterior(Protocol):
    """q(z|x) for a batch of B inputs."""

    @property
    def mean(self) -> Tensor:
        """E_q[z], ``[B, *latent_shape]``."""

    def rsample(self, n: int | None = None, generator: Any = None) -> Tensor:
        """A reparameterised sample ``[B, ...]``, or ``[n, B, ...]`` when ``n`` is given."""

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) in nats, ``[B]`` (or ``[S, B]`` for z with a leading sample dimension)."""


@runtime_checkable
class Observation(Protocol):
    """p(x|z) for a batch, in the likelihood's data space."""

    @property
    def mean(self) -> Tensor:
        """E[x|z], ``[B, *data_shape]``."""

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x|z) in nats summed over every data dimension, ``[B]``."""

    def sample(self, generator: Any = None) -> Tensor:
        """x ~ p(x|z), ``[B, *data_shape]``."""


@runtime_checkable
class Likelihood(Protocol):
    """How a decoder's data space relates to images; the decoder's ``.likelihood``."""

    name: str          # shown in reports and cards
    discrete: bool     # True: log_prob is a probability mass, so bits/dim compare across models

    def prepare(self, x01: Tensor) -> Tensor:
        """Images in [0, 1] -> the data space ``log_prob`` scores (e.g. binarised, or scaled to [-1, 1])."""

    def to_unit(self, x: Tensor) -> Tensor:
        """Data-space values -> images in [0, 1]."""


@runtime_checkable
class ParametricLikelihood(Likelihood, Protocol):
    """A likelihood a built-in decoder can drive: the network outputs ``params_per_dim`` maps per data channel."""

    params_per_dim: int

    def __call__(self, params: Tensor) -> Observation:
        """Network output ``[B, params_per_dim * C, H, W]`` -> p(x|z)."""


@runtime_checkable
class FittableLikelihood(Protocol):
    """A likelihood whose free parameters are fitted to data with the networks held fixed."""

    def fit(self, model: Any, images: Tensor) -> dict[str, Any]:
        """Fit by maximum likelihood on ``images`` (uint8 or [0, 1]; they are not evaluated afterwards);
        set the parameters and return what was fitted and how (values, ``n``, ``method``)."""

    def describe(self) -> dict[str, Any]:
        """The parameters in use (for reports), and whether they were fitted."""


@runtime_checkable
class Encoder(Protocol):
    """An ``nn.Module``: ``encoder(x) -> Posterior`` for x in the likelihood's data space."""

    def __call__(self, x: Tensor) -> Posterior: ...


@runtime_checkable
class Decoder(Protocol):
    """An ``nn.Module``: ``decoder(z) -> Observation``; ``.likelihood`` maps images to its data space."""

    likelihood: Likelihood

    def __call__(self, z: Tensor) -> Observation: ...


@runtime_checkable
class Prior(Protocol):
    """p(z) over ``latent_shape``."""

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) in nats (or a lower bound when ``exact = False``); any leading dimensions."""

    def sample(self, n: int, generator: Any = None) -> Tensor:
        """``[n, *latent_shape]``."""


@runtime_checkable
class DeclaredSize(Protocol):
    """Optional on a component's class: its parameter count from the card's arguments by arithmetic alone, so the
    assembler refuses an absurd size before building anything (components without it are checked as they
    allocate, :mod:`zoo.sizeguard`).  Exact or a lower bound, never more than the component holds."""

    @staticmethod
    def parameter_count(*, data_shape: tuple[int, ...], latent_shape: tuple[int, ...], **args: Any) -> int: ...


REQUIRED: dict[str, type] = {"encoder": Encoder, "decoder": Decoder, "prior": Prior,
                             "likelihood": Likelihood, "posterior": Posterior, "observation": Observation}


# --------------------------------------------------------------------------- optional: posterior

@runtime_checkable
class ClosedFormEntropy(Protocol):
    def entropy(self) -> Tensor:
        """H[q(z|x)] in nats, ``[B]``."""


@runtime_checkable
class PerDimLogProb(Protocol):
    def log_prob_per_dim(self, z: Tensor) -> Tensor:
        """log q(z_d|x) elementwise, the shape of ``z``."""


@runtime_checkable
class AggregatePosterior(Protocol):
    """What the exact aggregate posterior q(z) = 1/N sum_n q(z|x_n) needs (ELBO surgery in diagnose)."""

    def cross_log_prob(self, z: Tensor) -> Tensor:
        """log q(z_m | x_b) for every pair: z ``[M, ...]`` -> ``[M, B]``."""

    def cat(self, parts: Sequence[Any]) -> Any:
        """One posterior from per-batch posteriors (a staticmethod)."""


@runtime_checkable
class PerDimAggregatePosterior(Protocol):
    """An aggregate posterior whose marginals q(z_d) = 1/N sum_n q(z_d|x_n) are available (total correlation)."""

    def cross_log_prob_per_dim(self, z: Tensor) -> Tensor:
        """log q(z_{m,d} | x_b) for every pair and (flattened) latent dimension: z ``[M, ...]`` -> ``[M, B, D]``;
        its sum over d is ``cross_log_prob(z)``."""


@runtime_checkable
class EnumerablePosterior(Protocol):
    """A discrete posterior with a small support: the ELBO and log p(x) become exact sums."""

    def enumerate(self) -> tuple[Tensor, Tensor]:
        """(values ``[K, *latent_shape]``, log q(z_k|x) ``[B, K]``)."""


@runtime_checkable
class Codebook(Protocol):
    """A posterior that assigns one of ``num_codes`` shared codebook entries to each latent position."""

    num_codes: int

    def codes(self) -> Tensor:
        """The code index chosen at each position, integer ``[B, *positions]``."""


@runtime_checkable
class DiagonalCovariance(Protocol):
    @property
    def variance(self) -> Tensor:
        """Var_q[z_d | x] for each latent dimension, ``[B, *latent_shape]``; the covariance is diagonal."""


@runtime_checkable
class Detachable(Protocol):
    def detach(self) -> Any:
        """The same posterior with its parameters detached: log_prob(z) then carries gradient through z only."""


# ------------------------------------------------------------------------------- optional: prior

@runtime_checkable
class ClosedFormCrossEntropy(Protocol):
    def cross_entropy(self, q: Any) -> Tensor:
        """-E_q[log p(z)] in closed form, ``[B]`` (the rate is then cross_entropy - entropy)."""


@runtime_checkable
class PerDimKL(Protocol):
    def kl_per_dim(self, q: Any) -> Tensor | None:
        """KL(q(z_d|x) || p(z_d)) per latent dimension, ``[B, *latent_shape]``; None when this
        posterior's KL does not split per dimension in closed form (diagnose then reports none)."""


@runtime_checkable
class StructuredInference(Protocol):
    def infer(self, q: Any) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(z, rate ``[B]``, extras) for a posterior only this prior can score (top-down, diffusion)."""


@runtime_checkable
class SurrogateLoss(Protocol):
    def training_loss(self, q: Any, loss: str, **options: Any) -> tuple[Tensor, Any]:
        """(scalar loss, ELBO terms for logging) for card ``objective: {loss: NAME, **options}`` (the card's
        objective fields besides beta, iwae_k, loss, gradient and name are the loss's options)."""


@runtime_checkable
class GaussianForwardProcess(Protocol):
    def forward_marginals(self) -> tuple[Tensor, Tensor]:
        """(a_t, s_t), each ``[T]`` for t = 1..T: the noising process q(x_t|x_0) = N(a_t x_0, s_t^2 I) (diffusion)."""


@runtime_checkable
class Denoiser(Protocol):
    """A diffusion prior's learned denoiser, for the I-MMSE information curve (zoo.denoiser_information)."""

    def denoise(self, z: Tensor, log_snr: Tensor) -> Tensor:
        """The model's E[x | z] for z = alpha x + sigma eps, alpha^2 = sigmoid(log_snr), sigma^2 = sigmoid(-log_snr); ``log_snr`` ``[B]``."""

    def log_snr_range(self) -> tuple[float, float]:
        """(lowest, highest) log-SNR the denoiser was trained on."""


@runtime_checkable
class DiscreteSupport(Protocol):
    def support(self) -> Tensor:
        """Every value z can take, ``[K, *latent_shape]``; exp(log_prob) sums to 1 over it."""


# ----------------------------------------------------------------------------- optional: any kind

@runtime_checkable
class Binds(Protocol):
    def bind(self, model: Any) -> None:
        """Called once the model is assembled; raise ValueError naming what does not fit."""


# ---------------------------------------------------------------------------- other registered kinds

@runtime_checkable
class Converter(Protocol):
    """A weights converter: upstream tensors -> the assembled model's state-dict keys."""

    def __call__(self, state: dict[str, Tensor]) -> dict[str, Tensor]: ...


@runtime_checkable
class Fitter(Protocol):
    """A fitting algorithm other than gradient descent (``zoo train --algorithm NAME``), e.g. EM.

    Called as ``fit(model, x, seed=..., iters=..., tol=...)`` with x the training images (uint8 or
    float in [0, 1]); returns the per-iteration objective (nats per image) it logged."""

    def __call__(self, model: Any, x: Tensor, *, seed: int, iters: int, tol: float) -> list[float]: ...


@dataclass(frozen=True)
class SamplerOption:
    """One option a sampler (``zoo sample --NAME``) or a prior fitter (``zoo fit-prior --NAME``) accepts."""

    type: Callable[[str], Any]
    default: Any
    help: str


@dataclass
class FittedPrior:
    """What a PriorFitter returns: the registered prior it fitted (``name``, card arguments ``args``), the
    fitted module itself (its state dict becomes the new run's ``prior.*`` weights) and the per-iteration
    objective it logged (mean log-density of the latents in nats, or the fitter's bound on it)."""

    name: str
    args: dict[str, Any]
    module: Any
    history: list[float]
    method: str = ""


@runtime_checkable
class PriorFitter(Protocol):
    """Fits a density to latent codes after training (``zoo fit-prior RUN --prior NAME``), e.g. EM for a
    Gaussian mixture on a VAE's aggregate posterior.

    Called as ``fit(z, latent_shape=..., seed=..., **options)`` with z the codes ``[N, D]`` (posterior
    means or samples on the training split); ``options`` names what it accepts.  Returns a FittedPrior
    whose ``name`` is a registered prior that ``args`` rebuild (the card's ``prior`` section)."""

    options: Mapping[str, SamplerOption]

    def __call__(self, z: Tensor, *, latent_shape: tuple[int, ...], seed: int, **options: Any) -> FittedPrior: ...


@runtime_checkable
class Sampler(Protocol):
    """A way to draw images from a model whose prior lists the sampler in ``samplers``.

    ``options`` names what it accepts; ``sampler(model, n, generator=g, **options)`` returns
    ``n`` images in [0, 1]."""

    options: Mapping[str, SamplerOption]

    def __call__(self, model: Any, n: int, *, generator: Any = None, **options: Any) -> Tensor: ...


@runtime_checkable
class DataSource(Protocol):
    """An embedded data set, ``--data zoo:NAME``: the images ship inside an installed package.

    ``read()`` returns (uint8 images ``[N, H, W]`` or ``[N, C, H, W]``, int labels ``[N]``);
    ``splits`` maps split name -> size (the test split is drawn per label, seeded).  Optional, declared:
    ``factors`` (names of K known generative factors; ``read()`` then also returns their values ``[N, K]``,
    kept as columns, and diagnose reports MIG) and ``label_names`` (the label classes; default "0".."9")."""

    name: str
    shape: tuple[int, int, int]
    splits: Mapping[str, int]
    license: str
    credit: str

    def read(self) -> tuple[Any, Any]: ...


@runtime_checkable
class Objective(Protocol):
    """A training objective, card ``zoo.objective: {name: NAME, **options}``; the registered factory is
    called as ``factory(data_shape=, latent_shape=, **options)`` (``beta`` among the options: ``--beta``
    sets it).  An objective with parameters of its own is an ``nn.Module``: they are saved with the model."""

    def __call__(self, model: Any, x: Tensor) -> tuple[Tensor, Any]:
        """(scalar loss to minimise, nats per image; the model's ``ELBO`` terms of the batch, for logging)
        for ``x`` already in the likelihood's data space."""


@runtime_checkable
class CoupledObjective(Protocol):
    """An objective that trains some parameters with optimisers of their own (a second player)."""

    def coupled_parameters(self, model: Any) -> Mapping[str, Mapping[str, Any]]:
        """name -> ``{"params": [...], **optimiser options}``: each set gets an optimiser of the run's class
        (options such as ``lr`` override the run's) and is left out of the main optimiser."""

    def coupled_loss(self, name: str, model: Any, x: Tensor) -> Tensor:
        """The scalar loss optimiser ``name`` minimises on the same batch, stepped after the main step."""


# -------------------------------------------------------------------------------------- queries

def has(obj: Any, capability: type) -> bool:
    """Whether ``obj`` offers ``capability`` (one of the protocols above)."""
    return isinstance(obj, capability)


def missing_members(obj: Any, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``obj`` lacks (empty when it conforms)."""
    names: list[str] = []
    for klass in protocol.__mro__:
        if klass in (object, Protocol, Any) or not getattr(klass, "_is_protocol", False):
            continue
        for name in list(vars(klass).get("__annotations__", {})) + [
                n for n, v in vars(klass).items() if callable(v) or isinstance(v, property)]:
            if name.startswith("_") and name != "__call__":
                continue
            if name not in names:
                names.append(name)
    return [n for n in names if not _has_member(obj, n)]


def _has_member(obj: Any, name: str) -> bool:
    if name == "__call__":
        return callable(obj)
    try:
        return inspect.getattr_static(obj, name, _MISSING) is not _MISSING or hasattr(obj, name)
    except Exception:  # noqa: BLE001 - a property that raises still exists
        return True


_MISSING = object()


def is_exact(prior: Any) -> bool:
    """False when the prior declares ``exact = False``: its log_prob is a bound on log p(z)."""
    return getattr(prior, "exact", True) is not False


def is_fixed(posterior: Any) -> bool:
    """True when the posterior declares ``fixed = True`` (a parameter-free noising process)."""
    return getattr(posterior, "fixed", False) is True


def rate_estimator(prior: Any) -> str | None:
    """The prior's own description of how its rate is estimated, if it declares one."""
    value = getattr(prior, "estimator", None)
    return value if isinstance(value, str) else None


def family_of(component: Any) -> str | None:
    """The declared family tag of a component (or its class), if any."""
    value = getattr(component, "family", None)
    return value if isinstance(value, str) else None


def declared_samplers(prior: Any) -> tuple[str, ...]:
    """Names of the registered samplers the prior says draw from it."""
    value = getattr(prior, "samplers", ())
    return tuple(value) if isinstance(value, (tuple, list)) else ()


NOTE_KEYS = ("mi", "nll", "kl_per_dim", "active_units")
MANIFOLDS = ("sphere",)


def notes_of(component: Any) -> dict[str, str]:
    """A posterior's or prior's declared ``notes``: diagnostic key (``NOTE_KEYS``) -> why it is not
    available or how it is estimated for it (e.g. a flow with no inverse has no aggregate posterior)."""
    value = getattr(component, "notes", None)
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if k in NOTE_KEYS and isinstance(v, str)}


def factors_of(source: Any) -> tuple[str, ...]:
    """The known generative factors a data source declares (``factors``), or () when it declares none."""
    value = getattr(source, "factors", ())
    return tuple(value) if isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value) else ()


def label_names_of(source: Any) -> tuple[str, ...] | None:
    """The names of a data source's label classes (``label_names``), or None for the default "0".."9"."""
    value = getattr(source, "label_names", None)
    return tuple(value) if isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value) else None


def manifold_of(prior: Any) -> str | None:
    """The manifold the prior's z lies on (``"sphere"``: the unit sphere), if it declares one."""
    value = getattr(prior, "manifold", None)
    return value if value in MANIFOLDS else None


def posterior_type(encoder: Any) -> type | None:
    """The posterior class an encoder declares its ``forward`` returns, if it declares one."""
    value = getattr(encoder, "posterior_type", None)
    return value if isinstance(value, type) else None
