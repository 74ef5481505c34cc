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
    ``results: tuple``      (priors, encoders, decoders) the extra results it adds to the ELBO terms' ``extras``,
                            each a :class:`Series` (per layer, per step: ``[B, K]``) or a :class:`Term` (``[B]``):
                            diagnose reports, prints and plots them, compare and sweep tabulate them, by the
                            declaration alone (see :func:`results_of`)

Declared attributes the core reads (one line each in :data:`ATTRIBUTES`, and in README's contract table)
    ``test_shapes``, ``test_args``, ``zoo_test_components`` (any component's class): what the conformance kit
                            (zoo.testing) builds it with
    ``parameter_count``     (DeclaredSize, a component's class) its size from the card's arguments (zoo.sizeguard)
    ``config: dict``        (a bring-your-own ``nn.Module``, ``zoo.build``) its constructor arguments, written into
                            the card so the reloaded model is rebuilt with them
    ``data_space: str``     (likelihood) ``binarised``, ``8-bit`` or ``continuous``: the data space it scores

Training objectives (card ``zoo.objective: {name: NAME, ...}``, registered with ``register_objectives``)
    Objective               ``objective(model, x) -> (loss, ELBO terms)``; absent or ``elbo``: the built-in
                            beta-ELBO / IWAE path of ``LatentModel.objective``
    CoupledObjective        ``coupled_parameters(model)`` and ``coupled_loss(name, model, x)``: parameter sets
                            with optimisers of their own, stepped after the main one on the same batch
                            (FactorVAE's discriminator, PIWAE's inference network)
    ObjectiveSettings       ``iwae_k``, ``loss``, ``gradient`` and ``arguments()``: the built-in bound's settings
                            that ``LatentModel.objective`` reads (the typed card's ``zoo.objective`` is one; the
                            assembler hands it to the model, which parses no card)

Other registered kinds (see :mod:`zoo.hookspecs`): Converter, Fitter, PriorFitter (returns a FittedPrior), Sampler
(its options are SamplerOption), DataSource (optional ``factors``, ``label_names``, and ``hub_id``, ``title``,
``homepage``, ``notes`` as :class:`zoo.data.EmbeddedDataset` has them), Command.
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
    "ClosedFormCrossEntropy", "PerDimKL", "StructuredInference", "SurrogateLoss", "DiscreteSupport",
    "GaussianForwardProcess", "Denoiser", "Binds", "DeclaredSize",
    "Converter", "Fitter", "PriorFitter", "FittedPrior", "Sampler", "SamplerOption", "DataSource", "Objective",
    "CoupledObjective", "ObjectiveSettings", "Series", "Term",
    "has", "missing_members", "is_exact", "is_fixed", "family_of", "rate_estimator", "declared_samplers",
    "posterior_type", "notes_of", "manifold_of", "factors_of", "label_names_of", "results_of", "declared_results",
    "result_record", "NOTE_KEYS", "MANIFOLDS", "REQUIRED", "ATTRIBUTES",
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


class ObjectiveSettings(Protocol):
    """The settings of the built-in beta-ELBO / IWAE bound that ``LatentModel.objective`` reads, typed (the card's
    ``zoo.objective`` as zoo.cards.spec.ObjectiveSpec parses it; the assembler passes it to the model)."""

    iwae_k: int      # importance samples of the bound (1: the ELBO)
    loss: str        # "elbo", or a surrogate the prior's training_loss knows (SurrogateLoss), e.g. "simple"
    gradient: str    # "reparam", or "dreg" (the doubly-reparameterised gradient of the iwae_k > 1 bound)

    def arguments(self) -> dict[str, Any]:
        """A surrogate loss's own options, as keyword arguments of ``prior.training_loss``."""


# ------------------------------------------------------------------------ results a component declares

RESERVED_RESULT_NAMES = ("elbo", "distortion", "rate", "n")


@dataclass(frozen=True)
class Term:
    """A per-image scalar a component adds to the ELBO terms' ``extras[name]`` (``[B]``, in ``unit``).

    ``zoo diagnose`` reports its mean and standard error over the N images (``report[name]``, ``report[name +
    "_se"]``) and prints it as ``label``; ``total`` names the reported term (``"rate"``, ...) that the declared
    parts with the same ``total`` add up to, where they do."""

    name: str
    label: str
    unit: str = "nats"
    total: str | None = None

    def __post_init__(self) -> None:
        _check_result(self)


@dataclass(frozen=True)
class Series:
    """Per-index results a component adds to the ELBO terms' ``extras[name]``: ``[B, K]``, one value per image
    and item (a layer, a diffusion step), in ``unit``.

    When only some items are evaluated for an image (a sub-sampled sum), ``extras[name + "_count"]`` ``[B, K]``
    is 1 where item k was evaluated for that image and 0 elsewhere.  ``zoo diagnose`` reports each item's mean
    over the images it was evaluated on (``report[name]``, a list, None where it never was) and its standard
    error (``report[name + "_se"]``); prints, plots (one panel per series), compares and sweeps it by these
    fields alone.

    ``label`` what the series is (``"KL per layer"``); ``index`` the symbol of one item (``"t"``, ``"layer"``)
    and ``items`` their plural noun (``"steps"``, ``"layers"``); ``start`` the index of the first item;
    ``log_scale`` plot the values on a log axis; ``total`` the reported term the items (with the declared
    Terms of the same ``total``) add up to, e.g. ``"rate"``; ``note`` one phrase on the ordering or meaning
    of the index (``"bottom layer first"``), shown beside the label and on the plot's axis."""

    name: str
    label: str
    index: str = "index"
    items: str = "items"
    start: int = 1
    unit: str = "nats"
    log_scale: bool = False
    total: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        _check_result(self)
        if isinstance(self.start, bool) or not isinstance(self.start, int):
            raise ValueError(f"Series {self.name!r}: start must be an integer, got {self.start!r}")


def _check_result(result: Any) -> None:
    kind = type(result).__name__
    if not isinstance(result.name, str) or not result.name.isidentifier():
        raise ValueError(f"{kind}: name must be an identifier (its extras key), got {result.name!r}")
    if result.name in RESERVED_RESULT_NAMES or result.name.endswith(("_se", "_count")):
        raise ValueError(f"{kind} {result.name!r}: the name is one of the ELBO's own terms "
                         f"{list(RESERVED_RESULT_NAMES)} or ends in _se / _count (kept for its standard error "
                         f"and evaluation counts)")
    for field_name in ("label", "unit"):
        if not isinstance(getattr(result, field_name), str) or not getattr(result, field_name):
            raise ValueError(f"{kind} {result.name!r}: {field_name} must be a non-empty string, "
                             f"got {getattr(result, field_name)!r}")
    if result.total is not None and not isinstance(result.total, str):
        raise ValueError(f"{kind} {result.name!r}: total must be the name of a reported term or None, "
                         f"got {result.total!r}")


def results_of(component: Any) -> tuple[Series | Term, ...]:
    """The extra results a component (or its class) declares in ``results``: () when it declares none.
    Anything but a tuple or list of Series / Term is a ContractError naming the component's class."""
    value = getattr(component, "results", ())
    if value is None:
        return ()
    if isinstance(value, (tuple, list)) and all(isinstance(r, (Series, Term)) for r in value):
        names = [r.name for r in value]
        if len(set(names)) == len(names):
            return tuple(value)
    from zoo.errors import ContractError

    cls = component if isinstance(component, type) else type(component)
    raise ContractError(f"{cls.__module__}.{cls.__qualname__}.results must be a tuple of zoo.contracts.Series / "
                        f"Term with distinct names, got {value!r}")


def result_record(result: Series | Term) -> dict[str, Any]:
    """A declaration as plain data (``kind`` plus its fields), as diagnose stores it in
    ``report["declared_results"]`` so that saved reports format and plot as the live ones do."""
    from dataclasses import asdict

    return {"kind": type(result).__name__.lower(), **asdict(result)}


def declared_results(report: Mapping[str, Any]) -> list[Series | Term]:
    """The declarations a diagnose report carries (``report["declared_results"]``), whose values it holds."""
    out: list[Series | Term] = []
    for record in report.get("declared_results") or ():
        fields = {k: v for k, v in record.items() if k != "kind"}
        result = Series(**fields) if record.get("kind") == "series" else Term(**fields)
        if report.get(result.name) is not None:
            out.append(result)
    return out


# Every attribute the core reads from a plugin's component beside the protocols' members, one line each
# (README's contract table lists the same; tests/test_contracts.py checks both).
ATTRIBUTES: dict[str, str] = {
    "exact": "prior: False when log_prob is a (stochastic) lower bound on log p(z) (is_exact)",
    "fixed": "posterior: True for a parameter-free noising process (is_fixed)",
    "estimator": "prior: how its rate is estimated, printed by diagnose (rate_estimator)",
    "samplers": "prior: names of registered samplers that draw from it (declared_samplers)",
    "manifold": "prior: 'sphere' when z lies on the unit sphere (manifold_of)",
    "family": "any component: a family tag for the Hub card (family_of)",
    "posterior_type": "encoder: the class forward returns, for checks at build time (posterior_type)",
    "notes": "posterior, prior: why a diagnostic is not available or how it is estimated (notes_of)",
    "results": "prior, encoder, decoder: the Series / Term it adds to the ELBO extras (results_of)",
    "test_shapes": "any component's class: latent_shape / data_shape for the conformance kit (zoo.testing)",
    "test_args": "any component's class: small constructor arguments for the conformance kit (zoo.testing)",
    "zoo_test_components": "any component's class: the partner components the kit builds it with (zoo.testing)",
    "parameter_count": "any component's class: its size from the card's arguments, DeclaredSize (zoo.sizeguard)",
    "config": "a bring-your-own nn.Module (zoo.build): its constructor arguments, written into the card",
    "data_space": "likelihood: 'binarised', '8-bit' or 'continuous', the data space it scores (zoo.data_space)",
    "factors": "data source: names of its known generative factors (factors_of)",
    "label_names": "data source: names of its label classes (label_names_of)",
}


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
