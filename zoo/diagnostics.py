"""The seed's measurements for any model and data set: ``diagnose(model, data) -> dict``.

All values are means over the data, in nats unless the key ends in ``_bpd`` (bits per data
dimension).  The ELBO-surgery split of the rate (Hoffman & Johnson 2016) uses the *exact*
aggregate posterior of the evaluated set, q(z) = 1/N sum_n q(z|x_n):

    E_x KL(q(z|x) || p(z))  =  I_q(x; z)  +  KL(q(z) || p(z))
    I_q(x; z)     = H[q(z)] - E_x H[q(z|x)]
    KL(q(z)||p(z)) = -H[q(z)] - E_q(z)[log p(z)]

H[q(z)] is a Monte Carlo average of -log q(z) over z ~ q(z|x_n); every other term is in closed
form where the posterior and prior allow it, so the identity holds exactly and a collapsed
posterior (q(z|x) = p(z) for all x) reads I = 0, not log N.

For a posterior with per-dimension cross densities (``zoo.contracts.PerDimAggregatePosterior``, every
diagonal-Gaussian posterior) the rate is also split into index-code MI, total correlation and
dimension-wise KL (Chen et al. 2018) with the same full-set aggregate posterior (zoo.decomposition).

A posterior that picks codebook entries (``zoo.contracts.Codebook``, VQ-VAE) also gets codebook
usage (codes assigned at least once) and perplexity exp(H[code frequencies]) <= usage <= K.  A
posterior's or prior's declared ``notes`` say why a diagnostic is not available or how it is
estimated for it (they are added to the estimator texts).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from zoo import contracts as c
from zoo.dataset_elbo import DatasetELBO, dataset_elbo
from zoo.model import LatentModel

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2015: unit d is active when Cov_x(E_q[z_d]) > 0.01
SATURATION = 0.95        # (zoo.forward_information's curve) a lower bound above this fraction of log N is saturated
SATURATION_MARGIN = 1.0  # nats: an I_q lower bound within this of log N is saturated (diagnose's rule, saturation())
BRACKET_TOLERANCE = 0.5  # nats: ... as is a bracket [lower, upper] wider than this and BRACKET_RELATIVE * lower
BRACKET_RELATIVE = 0.25


@torch.no_grad()
def diagnose(model: LatentModel, data: Tensor | str, *, split: str = "test", batch_size: int = 500,
             iwae_k: int = 100, mi_samples: int = 10, max_points: int = 10000, seed: int | None = None,
             image_key: str | None = None, data_config: str | None = None,
             fit_points: int | None = None, factors: Any = None, mi_split: str | None = "auto") -> dict[str, Any]:
    """ELBO, distortion, rate, I_q(x;z), marginal KL, active units, KL per dimension, IWAE NLL.

    ``data``: a data spec (``zoo:digits``, a Hub id, a local path; ``image_key`` names its image column)
    or images; ``iwae_k=0`` skips the IWAE estimate.  ``seed`` fixes every random draw; the default is
    a seed of the model's own (from its name), so the Monte Carlo errors of two models are independent.
    Every Monte Carlo number comes with its standard error over the N images (``KEY_se``).

    A likelihood with parameters fitted to data (zoo.contracts.FittableLikelihood, e.g. the noise
    scale stated for a deterministic decoder) is first fitted on the first ``fit_points`` images,
    which are then left out of every other number (default None: a quarter of them; 0: keep the
    parameters as they are).

    Data with known generative factors (``zoo:shapes``; or ``factors``, a :class:`zoo.data.Factors` row-aligned
    with tensor ``data``) also get the mutual information gap of the posterior means (:mod:`zoo.disentanglement`).

    ``mi_split`` (data specs only): the split of the I_q terms (I_q, marginal KL, the TC split).  ``"auto"``
    (default): ``split``'s, unless its I_q is saturated (:func:`saturation`) and the ``train`` split has more
    points, which then gives them (at most ``max_points``); a split name: that split; None: ``split``'s.
    ``mi_split``, ``mi_n`` and ``mi_rate`` say which split, how many points and whose rate they used."""
    from zoo.errors import InputError

    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise InputError(f"max_points (--max-points) must be a positive integer, got {max_points!r}")
    if isinstance(iwae_k, bool) or not isinstance(iwae_k, int) or iwae_k < 0:
        raise InputError(f"iwae_k (--k) must be an integer >= 1 (or 0 to skip the IWAE estimate), got {iwae_k!r}")
    source = data if isinstance(data, str) else "tensor"
    options: dict[str, Any] = {}
    if isinstance(data, str):
        from zoo.data import card_source_options, load_tensors

        options = card_source_options(data, model.card.spec.data if model.card is not None else {}, image_key)
        if data_config:
            options["config"] = data_config
        if factors is None and not options.get("image_key") and not data_config:
            from zoo.data import load_factors

            factors = load_factors(data, split)
        data = load_tensors(data, split, **options)
    model.eval()
    if factors is not None and len(factors) != len(data):
        raise InputError(f"diagnose: {len(factors)} rows of factors for {len(data)} images ({source})")
    data = data[:max_points]
    factors = factors.take(slice(0, max_points)) if factors is not None else None
    if len(data) == 0:
        raise InputError(f"diagnose: no images to evaluate ({source}, split {split!r} is empty)")
    seed = default_seed(model) if seed is None else seed
    likelihood = model.decoder.likelihood
    fittable = c.has(likelihood, c.FittableLikelihood)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        n_fit = _fit_count(len(data), fit_points) if fittable else 0
        fit = likelihood.fit(model, data[:n_fit]) if n_fit else None
        data = data[n_fit:]
        evaluation = dataset_elbo(model, data, batch_size=batch_size, keep_posteriors=True)
        report = _bound_terms(model, evaluation)
        _declared(model, report, evaluation)
        if factors is not None:
            report.update(disentanglement(evaluation.posteriors, factors.take(slice(n_fit, None))))
        report.update(codebook_usage(evaluation.posteriors))
        posterior = _concat(evaluation.posteriors)
        kind, rate_how = _rate_kind(model, evaluation)
        _clip_sampled_rate(report, kind)
        report.update(aggregate_posterior_split(model, posterior, mi_samples, rate=report["rate"],
                                                rates=evaluation.terms["rate"]))
        if report.get("mutual_information") is not None:
            report.update({"mi_split": split if source != "tensor" else None, "mi_n": report["n"],
                           "mi_rate": report["rate"]})
        other = _mi_split_choice(report, source, split, mi_split)
        if other:
            report.update(_split_on(model, source, other, options, max_points=max_points, batch_size=batch_size,
                                    samples=mi_samples, first=report))
        if evaluation.exact:
            # the ELBO of an exact discrete posterior is log p(x) itself: no importance sampling to do
            report.update({"nll": -report["elbo"], "nll_se": report["elbo_se"], "iwae_k": 0, "nll_kind": "exact",
                           "nll_estimator": "exact: log p(x) summed over the discrete latent's support"})
        elif not c.is_exact(model.prior):
            # log p(z) is itself a stochastic bound (e.g. a diffusion prior): importance weights built
            # from it are not unbiased, so the IWAE value would not be a bound; report the ELBO's
            report.update({"nll": -report["elbo"], "nll_se": report["elbo_se"], "iwae_k": 0,
                           "nll_kind": "negative ELBO",
                           "nll_estimator": "the negative ELBO (the model's variational bound); no IWAE: "
                                            "the prior's log p(z) is a stochastic bound (prior.exact = False)"})
        elif _point_mass(evaluation.posteriors):
            # every importance sample of a point-mass q(z|x) is the same z: the k-sample bound is the ELBO
            report.update({"nll": -report["elbo"], "nll_se": report["elbo_se"], "iwae_k": 0,
                           "nll_kind": "negative ELBO",
                           "nll_estimator": "the negative ELBO: q(z|x) is a point mass (H[q(z|x)] = 0), so every "
                                            "importance sample is the same z and the IWAE bound equals the ELBO "
                                            "for any k"})
        else:
            report.update(_iwae(model, data, iwae_k, batch_size))
        _add_notes(report, evaluation.posteriors[0] if evaluation.posteriors else None, model.prior)
        if c.has(model.prior, c.Denoiser):  # what a diffusion model learned: I-MMSE on its denoiser
            from zoo.denoiser_information import model_information

            report["learned_information"] = model_information(model, data, posteriors=evaluation.posteriors, seed=seed)
    report.update({"model": model.name, "data": source, "split": split if source != "tensor" else None,
                   "likelihood": likelihood.name, "discrete_likelihood": likelihood.discrete, "seed": seed,
                   "rate_kind": kind})
    rate_text = "; ".join(v for v in (report.get("rate_estimator"), rate_how) if v)
    if rate_text:
        report["rate_estimator"] = rate_text
    if fittable:
        report.update({"likelihood_params": likelihood.describe(), "likelihood_fit": fit, "n_fit": n_fit})
    for key in ("elbo", "distortion", "rate", "nll"):
        if report.get(key) is not None:
            value = -report[key] if key == "elbo" else report[key]
            report[f"{key}_bpd"] = float(model.bits_per_dim(value))
    return report


def _rate_kind(model: LatentModel, evaluation: DatasetELBO) -> tuple[str, str | None]:
    """How the reported rate was computed: ``exact KL`` (closed form, an exact sum over a discrete support, or
    a point-mass posterior), ``Monte Carlo KL`` (log q(z|x) - log p(z) at one z per point: unbiased, noisy)
    or ``upper bound`` (the prior's log p(z) is a bound, prior.exact = False); and a sentence saying so."""
    first = evaluation.posteriors[0] if evaluation.posteriors else None
    if not c.is_exact(model.prior):
        return "upper bound", None
    if evaluation.exact:
        return "exact KL", None
    if c.has(model.prior, c.StructuredInference):
        return "Monte Carlo KL", "the prior's own one-sample estimate of the KL (structured inference)"
    if first is not None and c.has(model.prior, c.ClosedFormCrossEntropy) and c.has(first, c.ClosedFormEntropy):
        return "exact KL", None
    if _point_mass(evaluation.posteriors):
        return "exact KL", "q(z|x) is a point mass: log q(z|x) - log p(z) at its one z is the KL exactly"
    return "Monte Carlo KL", ("Monte Carlo KL: log q(z|x) - log p(z) at one z ~ q(z|x) per point (no closed form "
                              "for this prior), mean with its standard error over the N points")


def _clip_sampled_rate(report: dict[str, Any], kind: str) -> None:
    """A Monte Carlo KL whose mean falls below 0 is reported as 0 (a KL is never negative), with the estimate
    and its SE in the rate estimator text; the ELBO keeps the unclipped one-sample terms."""
    if kind == "Monte Carlo KL" and report.get("rate", 0.0) < 0:
        note = (f"the Monte Carlo mean {report['rate']:.4f} +- {report.get('rate_se', float('nan')):.4f} is below 0, "
                f"reported as 0 (a KL is never negative); the ELBO keeps the unclipped terms")
        report["rate"] = 0.0
        report["rate_estimator"] = "; ".join(v for v in (report.get("rate_estimator"), note) if v)


def _point_mass(posteriors: list) -> bool:
    """True when every q(z|x) declares a closed-form entropy of exactly 0 (a deterministic code, e.g. VQ-VAE)."""
    if not posteriors or not c.has(posteriors[0], c.ClosedFormEntropy):
        return False
    return all(bool((q.entropy() == 0).all()) for q in posteriors)


def _mi_split_choice(report: dict[str, Any], source: str, split: str, mi_split: str | None) -> str | None:
    """The split whose points should give the I_q terms instead of ``split``'s (None: keep them)."""
    if source == "tensor" or mi_split is None or mi_split == split or report.get("mutual_information") is None:
        return None
    if mi_split == "auto":
        return "train" if report.get("mi_saturated") and split != "train" else None
    return mi_split


def _split_on(model: LatentModel, source: str, split: str, options: dict[str, Any], *, max_points: int,
              batch_size: int, samples: int, first: dict[str, Any]) -> dict[str, Any]:
    """The I_q terms on ``split`` (its first ``max_points`` images), with that split's own rate, replacing
    ``first``'s (from the split diagnose evaluated) when it has more points, or when it was asked for by name."""
    from zoo.data import load_tensors
    from zoo.errors import ZooError

    keys = [k for k in first if k.startswith(("mutual_information", "mi_", "marginal_kl", "total_correlation",
                                               "dimension_wise_kl", "index_code_mi", "rate_split", "tc_"))]
    try:
        x = load_tensors(source, split, **options)[:max_points]
    except (ZooError, OSError, ValueError) as e:
        return {"mi_estimator": f"{first['mi_estimator']}; the {split!r} split could not be loaded for the I_q "
                                f"terms ({e}), so they stay on {first.get('mi_split')!r}"}
    if len(x) <= first["mi_n"] and first.get("mi_saturated"):
        return {"mi_estimator": f"{first['mi_estimator']}; the {split!r} split has no more points ({len(x)})"}
    evaluation = dataset_elbo(model, x, batch_size=batch_size, keep_posteriors=True)
    rate = _mean_se(evaluation.terms["rate"])[0]
    kind, _ = _rate_kind(model, evaluation)
    if kind == "Monte Carlo KL":
        rate = max(rate, 0.0)
    out = {k: None for k in keys}
    out.update(aggregate_posterior_split(model, _concat(evaluation.posteriors), samples, rate=rate,
                                         rates=evaluation.terms["rate"]))
    why = (f"{first['mi_split']!r} ({first['mi_n']} points) saturated: {first.get('mi_saturation')}"
           if first.get("mi_saturated") else f"asked for (--mi-split {split})")
    out.update({"mi_split": split, "mi_n": len(x), "mi_rate": rate,
                "mi_first": {"split": first["mi_split"], "n": first["mi_n"], "lower": first["mutual_information"],
                             "upper": first.get("mutual_information_upper"), "saturated": first.get("mi_saturated")},
                "mi_estimator": f"on split {split!r}, N={len(x)} points, with that split's rate {rate:.4f} ("
                                f"{why}): " + out["mi_estimator"]})
    return out


def default_seed(model: LatentModel) -> int:
    """A seed of the model's own (a hash of its name): Monte Carlo errors of different models are independent."""
    import zlib

    return zlib.crc32(str(model.name).encode()) % (2 ** 31)


def _mean_se(values: Tensor) -> tuple[float, float]:
    """The mean of per-sample values and its standard error over the samples."""
    v = values.double().flatten()
    n = v.numel()
    return float(v.mean()), (float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan"))


def _item_means(values: Tensor, counts: Tensor | None) -> tuple[list, list]:
    """Per item k of ``values`` ``[N, K]``: the mean over the rows where ``counts[:, k] > 0`` (every row when
    ``counts`` is None) and its standard error; None where no row (mean) or fewer than two (SE) evaluated it."""
    v = values.double()
    w = torch.ones_like(v) if counts is None else (counts > 0).double()
    m = w.sum(0)
    mean = (v * w).sum(0) / m.clamp(min=1)
    var = ((v - mean).pow(2) * w).sum(0) / (m - 1).clamp(min=1)
    se = (var / m.clamp(min=1)).sqrt()
    return ([float(a) if k > 0 else None for a, k in zip(mean, m)],
            [float(a) if k > 1 else None for a, k in zip(se, m)])


def _declared(model: LatentModel, report: dict[str, Any], evaluation: Evaluation) -> None:
    """The extra results the model's components declare (zoo.contracts.Series / Term) and whose values the ELBO
    terms carried, recorded in ``report["declared_results"]``; a declaration whose values have the wrong shape
    is a ContractError naming the component and the result."""
    from zoo.errors import ContractError

    records = []
    for kind in ("encoder", "decoder", "prior"):
        part = getattr(model, kind)
        for result in c.results_of(part):
            value = evaluation.terms.get(result.name)
            if value is None:
                continue
            want = 2 if isinstance(result, c.Series) else 1
            if value.dim() != want:
                who = getattr(model, "sources", {}).get(kind, type(part).__name__)
                raise ContractError(f"the {kind} {who} of {model.name!r} declares "
                                    f"{type(result).__name__} {result.name!r}, whose extras must be "
                                    f"{'[B, K]' if want == 2 else '[B]'}; got shape {list(value.shape)} for N images")
            records.append(c.result_record(result))
    if records:
        report["declared_results"] = records


def _fit_count(n: int, fit_points: int | None) -> int:
    """How many of the n images fit the likelihood's parameters (the rest are evaluated)."""
    if fit_points is None:
        return n // 4 if n >= 2 else 0
    if fit_points < 0 or (fit_points and fit_points >= n):
        from zoo.errors import InputError

        raise InputError(f"fit_points (--fit-points) must be 0 (no fitting) or in 1..{n - 1} (leaving images to evaluate) "
                         f"for {n} images, got {fit_points}")
    return fit_points


def _per_channel(model: LatentModel, report: dict[str, Any], kl: Tensor | None, variance: Tensor | None) -> None:
    """For a latent with a channel axis [C, H, W, ...]: KL and active units summed per channel."""
    shape = tuple(model.latent_shape)
    if len(shape) < 2:
        return
    if kl is not None:
        report["kl_per_channel"] = kl.double().sum(0).reshape(shape[0], -1).sum(1).div(kl.shape[0]).tolist()
    if variance is not None and variance.numel() == math.prod(shape):
        per = variance.reshape(shape[0], -1)
        report["active_units_per_channel"] = (per > ACTIVE_THRESHOLD).sum(1).tolist()
        report["posterior_mean_variance_per_channel"] = per.mean(1).tolist()
        report["active_channels"] = int((per.mean(1) > ACTIVE_THRESHOLD).sum())


def _bound_terms(model: LatentModel, evaluation: DatasetELBO) -> dict[str, Any]:
    n = evaluation.n
    report: dict[str, Any] = {"n": n}
    terms = evaluation.terms
    for key, value in terms.items():
        if key.endswith("_count") and key[:-6] in terms:
            continue  # where each item of a series was evaluated (zoo.contracts.Series): used below
        if value.dim() == 1:  # a per-image term: its mean and the standard error over the N images
            report[key], report[f"{key}_se"] = _mean_se(value)
        elif value.dim() == 2:  # a series [N, K]: each item's mean and SE over the images it was evaluated on
            report[key], report[f"{key}_se"] = _item_means(value, terms.get(f"{key}_count"))
        else:
            report[key] = (value.double().sum(0) / n).tolist()
    estimator = c.rate_estimator(model.prior)
    if estimator:
        report["rate_estimator"] = estimator
    kl = evaluation.kl_per_dim
    report["kl_per_dim"] = (kl.double().sum(0).flatten() / n).tolist() if kl is not None else None
    first = evaluation.posteriors[0] if evaluation.posteriors else None
    if first is not None and c.is_fixed(first):  # a fixed noising process (DDPM): nothing is learned
        report["active_units"] = None
        report["active_units_note"] = "not applicable: the encoder is a fixed noising process"
        return report
    means = torch.cat([q.mean.flatten(1) for q in evaluation.posteriors]) if first is not None else None
    variance = None
    if means is not None and means.dtype.is_floating_point:
        variance = means.var(0, unbiased=False)
        report["active_units"] = int((variance > ACTIVE_THRESHOLD).sum())
        report["latent_dims"] = int(variance.numel())
        report["posterior_mean_variance"] = variance.tolist()
        report["active_threshold"] = ACTIVE_THRESHOLD
    _per_channel(model, report, kl, variance)
    return report


def disentanglement(posteriors: list, factors: Any) -> dict[str, Any]:
    """MIG of the posterior means against known factors (zoo.disentanglement.mig); nothing for a fixed
    noising process or a latent whose mean is not a real vector."""
    from zoo.disentanglement import ESTIMATOR, mig

    if not posteriors or c.is_fixed(posteriors[0]) or not posteriors[0].mean.dtype.is_floating_point:
        return {}
    means = torch.cat([q.mean.flatten(1) for q in posteriors]).double().cpu().numpy()
    if means.shape[1] < 2:
        return {}
    out = mig(means, factors.values, factors.names)
    out["mig_estimator"] = ESTIMATOR
    return out


def codebook_usage(posteriors: list) -> dict[str, Any]:
    """Codes used at least once and the perplexity exp(-sum_k f_k log f_k) of the code frequencies f
    over every position of every image (van den Oord et al. 2017's codebook perplexity)."""
    if not posteriors or not c.has(posteriors[0], c.Codebook):
        return {}
    k = int(posteriors[0].num_codes)
    counts = sum(torch.bincount(q.codes().flatten().cpu(), minlength=k) for q in posteriors).double()
    freq = counts / counts.sum()
    entropy = float(-(freq * freq.clamp(min=1e-300).log()).sum())
    return {"codebook_size": k, "codebook_usage": int((counts > 0).sum()), "codebook_perplexity": math.exp(entropy)}


def _add_notes(report: dict[str, Any], posterior, prior) -> None:
    """The prior's and the posterior's declared notes (zoo.contracts.notes_of) into the report's
    estimator texts (the posterior's note wins where both give one)."""
    notes = {**c.notes_of(prior), **c.notes_of(posterior)}
    if "mi" in notes:
        unavailable = report.get("mutual_information") is None
        report["mi_estimator"] = notes["mi"] if unavailable else f"{report['mi_estimator']}; {notes['mi']}"
    if "nll" in notes and report.get("nll_estimator") and "point mass" not in report["nll_estimator"]:
        report["nll_estimator"] = f"{report['nll_estimator']}; {notes['nll']}"
    for key in ("kl_per_dim", "active_units"):
        if key in notes and not report.get(f"{key}_note"):
            report[f"{key}_note"] = notes[key]


def _concat(posteriors: list):
    if not posteriors or not c.has(posteriors[0], c.AggregatePosterior):
        return None
    return type(posteriors[0]).cat(posteriors)


def saturation(lower: float, upper: float, n: int) -> str | None:
    """Why an I_q(x;z) lower bound over N points is only a bound (None: the bracket identifies I_q).

    The rule (one for every I_q in latent-zoo's reports): the InfoNCE lower bound is within
    ``SATURATION_MARGIN`` nats of its ceiling log N, or the bracket [lower, upper] is wider than
    ``BRACKET_TOLERANCE`` nats and ``BRACKET_RELATIVE`` of the lower bound.  ``upper`` is the bracket's
    upper end as reported (the leave-one-out bound, or the rate where that is smaller)."""
    log_n = math.log(n)
    if lower > log_n - SATURATION_MARGIN:
        return (f"the lower bound {lower:.3f} is within {SATURATION_MARGIN:g} nat of its ceiling log N = {log_n:.3f} "
                f"(N={n})")
    if upper - lower > max(BRACKET_TOLERANCE, BRACKET_RELATIVE * lower):
        return (f"the bracket [{lower:.3f}, {upper:.3f}] is wider than {BRACKET_TOLERANCE:g} nats and "
                f"{BRACKET_RELATIVE:.0%} of its lower bound")
    return None


def _clip(value: float, hi: float) -> float:
    """The clipping rule of every reported information and KL: into [0, hi] (hi = the rate)."""
    return min(max(value, 0.0), hi)


def aggregate_posterior_split(model: LatentModel, q, samples: int = 10, *, rate: float | None = None,
                              rates: Tensor | None = None) -> dict[str, Any]:
    """I_q(x;z) and KL(q(z)||p(z)) with the exact aggregate posterior of the N points in ``q``.

    Exact for a discrete posterior the model enumerates (sums over its K values).  Otherwise the
    *paired* estimators of Poole et al. (2019), with the same z_ns ~ q(z|x_n) in both terms:

        lower (InfoNCE)        1/NS sum_ns [log q(z_ns|x_n) - log 1/N sum_m q(z_ns|x_m)]        <= I_q, <= log N
        upper (leave-one-out)  1/NS sum_ns [log q(z_ns|x_n) - log 1/(N-1) sum_{m!=n} q(z_ns|x_m)]  >= I_q

    ``rate`` is the reported rate (its mean) and ``rates`` optionally its per-point values ``[N]`` (for the
    marginal KL's standard error).  Rules, each stated in the estimator texts:

    * ``mutual_information`` is the lower bound clipped to [0, rate]; the bracket's upper end is the smaller of
      the leave-one-out bound and the rate, and never below the reported lower end (no inverted bracket);
    * ``marginal_kl`` = rate - I_q in [0, rate], ``marginal_kl_lower`` = rate - upper <= ``marginal_kl``;
    * :func:`saturation` marks I_q as a lower bound (``mi_saturated``); then ``marginal_kl`` and the total
      correlation are upper bounds (``*_kind``), not values; an identified value needs N well above e^I_q."""
    if q is None or not c.has(q, c.AggregatePosterior):
        return {"mutual_information": None, "marginal_kl": None, "total_correlation": None,
                "mi_estimator": ("not available for this encoder: its posterior does not give the aggregate "
                                 "posterior q(z) the estimate needs (zoo.contracts.AggregatePosterior)"),
                "tc_estimator": ("not available for this encoder: its posterior does not give q(z) per latent "
                                 "dimension (zoo.contracts.PerDimAggregatePosterior)")}
    n = q.mean.shape[0]
    if n < 2:
        return {"mutual_information": None, "marginal_kl": None,
                "mi_estimator": "not available: the aggregate posterior needs at least 2 points"}
    if model.enumerates(q) and c.has(model.prior, c.DiscreteSupport):
        return _exact_discrete_split(model, q, rate)
    z = q.rsample(samples)                                     # [S, N, ...]
    split = {} if c.has(q, c.PerDimAggregatePosterior) else None
    lower_terms, upper_terms = _paired_terms(q, z, n, split=split)
    lower, lower_se = _mean_se(lower_terms.mean(0))
    upper, upper_se = _mean_se(upper_terms.mean(0))
    log_n = math.log(n)
    hi = rate if rate is not None and rate >= 0 else math.inf
    mi = _clip(lower, hi)
    estimator = (f"paired InfoNCE lower bound with the exact aggregate posterior over N={n} points, {samples} "
                 f"z-samples per point (Poole et al. 2019; log q(z|x_n) and log q(z) from the same samples), "
                 f"I_q <= log N = {log_n:.2f}; bracket up to the leave-one-out upper bound; standard errors over "
                 f"the N points")
    if mi != lower:
        estimator += f"; clipped to [0, rate] (the estimate was {lower:.4f} +- {lower_se:.4f})"
    if upper > hi:  # I_q <= rate always: the rate is then the tighter upper end of the bracket
        estimator += f"; the leave-one-out bound ({upper:.2f}) is above the rate, so the bracket ends at the rate"
        upper, upper_se = hi, 0.0
    if upper < mi:  # Monte Carlo noise near collapse: both ends estimate about the same number
        estimator += f"; the leave-one-out bound ({upper:.4f}) fell below the lower end, so the bracket is [I, I]"
        upper = mi
    why = saturation(mi, upper, n)
    if why:
        estimator += (f"; SATURATED ({why}): I_q >= {mi:.2f} is a lower bound, not a value; evaluate more points "
                      f"(--max-points, --mi-split) to identify it")
    out: dict[str, Any] = {
        "mutual_information": mi, "mutual_information_se": lower_se, "mutual_information_upper": upper,
        "mutual_information_upper_se": upper_se, "mutual_information_kind": "lower bound" if why else "value",
        "mi_saturated": bool(why), "mi_saturation": why, "mi_log_n": log_n, "mi_estimator": estimator}
    if split is not None:
        out.update(_tc_split(model, q, z, split, lower_terms, rate=rate, saturated=bool(why)))
        out["index_code_mi"], out["index_code_mi_se"] = mi, lower_se      # the same estimate as I_q
    else:
        out.update({"total_correlation": None, "tc_estimator": "not available for this encoder: its posterior does "
                    "not give q(z) per latent dimension (zoo.contracts.PerDimAggregatePosterior)"})
    if rate is not None:
        out["marginal_kl"] = _clip(rate - mi, max(rate, 0.0))
        if rates is not None and len(rates) == n:
            out["marginal_kl_se"] = _mean_se(rates.double().cpu() - lower_terms.mean(0))[1]
        out["marginal_kl_lower"] = min(max(rate - upper, 0.0), out["marginal_kl"])
        bound = not c.is_exact(model.prior)
        out["marginal_kl_kind"] = "upper bound" if why or bound else "value"
        out["marginal_kl_estimator"] = (
            "rate - I_q(x;z) (ELBO surgery, Hoffman & Johnson 2016), in [0, rate]; bracketed below by rate - upper end"
            + ("; an UPPER BOUND: I_q is saturated (a lower bound)" if why else "")
            + ("; an upper bound: the rate is the prior's bound (prior.exact = False)" if bound else ""))
        if bound:
            out["mi_estimator"] += ("; the rate is the prior's bound (prior.exact = False), so the marginal KL "
                                    "= rate - I_q is an upper bound")
    return out


def paired_bounds(q, samples: int = 10, *, z: Tensor | None = None, split: dict[str, Tensor] | None = None
                  ) -> tuple[float, float, float, float]:
    """(lower, lower SE, upper, upper SE): the paired InfoNCE and leave-one-out bounds on I_q(x;z) with the
    exact aggregate posterior of the N points in ``q`` (an AggregatePosterior), ``samples`` z ~ q(z|x_n) per
    point (or the given ``z``, [S, N, ...]), standard errors over the N points; ``split`` as in
    :func:`_paired_terms`.  The one estimator of every I_q in latent-zoo (diagnose's split, the diffusion
    forward process's I(x_0; x_t) curve in zoo.forward_information)."""
    n = q.mean.shape[0]
    z = q.rsample(samples) if z is None else z                 # [S, N, ...]
    lower_terms, upper_terms = _paired_terms(q, z, n, split=split)
    lower, lower_se = _mean_se(lower_terms.mean(0))           # per point, averaged over its S samples
    upper, upper_se = _mean_se(upper_terms.mean(0))
    return lower, lower_se, upper, upper_se


def _paired_terms(q, z: Tensor, n: int, chunk: int = 1024, split: dict[str, Tensor] | None = None
                  ) -> tuple[Tensor, Tensor]:
    """[S, N] terms log q(z_ns|x_n) - log q(z_ns) and the same with x_n left out of the mixture.

    log q(z_ns|x_n) is the diagonal of the same cross_log_prob matrix, so both terms are computed
    alike (a collapsed posterior reads exactly 0); rows in chunks keep memory at chunk x N.  With
    ``split`` (a dict, for a zoo.contracts.PerDimAggregatePosterior) the matrix is computed per latent
    dimension and ``split`` receives ``[S, N]`` log q(z_ns|x_n), log q(z_ns) and sum_d log q(z_ns,d) over the
    same N points (:func:`zoo.decomposition.mixture_log_density`, weights 1/N)."""
    from zoo.decomposition import mixture_log_density

    lower = torch.empty(z.shape[0], n, dtype=torch.float64)
    upper = torch.empty(z.shape[0], n, dtype=torch.float64)
    if split is not None:
        for key in ("own", "log_qz", "log_qz_marginals"):
            split[key] = torch.empty_like(lower)
        chunk = max(1, min(chunk, 2 ** 21 // (n * max(1, z[0, 0].numel()))))
    log_w = torch.full((n,), -math.log(n), dtype=torch.float64)
    for s in range(z.shape[0]):
        for start in range(0, n, chunk):
            rows = torch.arange(start, min(start + chunk, n))
            if split is None:
                cross = q.cross_log_prob(z[s, start:start + chunk]).double().cpu()   # [rows, N(x)]
            else:
                per_dim = q.cross_log_prob_per_dim(z[s, start:start + chunk]).double().cpu()  # [rows, N, D]
                split["log_qz"][s, rows], split["log_qz_marginals"][s, rows] = mixture_log_density(per_dim, log_w)
                cross = per_dim.sum(2)
            own = cross[torch.arange(len(rows)), rows]
            if split is not None:
                split["own"][s, rows] = own
            lower[s, rows] = own - (torch.logsumexp(cross, 1) - math.log(n))
            cross[torch.arange(len(rows)), rows] = -math.inf                    # leave x_n out
            upper[s, rows] = own - (torch.logsumexp(cross, 1) - math.log(n - 1))
    return lower, upper


def _tc_split(model: LatentModel, q, z: Tensor, split: dict[str, Tensor], mi_terms: Tensor, *,
              rate: float | None, saturated: bool) -> dict[str, Any]:
    """Index-code MI, total correlation and dimension-wise KL (Chen et al. 2018, eq. 2; zoo.decomposition)
    with the exact aggregate posterior of the N points and its per-dimension marginals, all three from the
    same z_ns as I_q and paired at them (:func:`zoo.decomposition.paired_tc_terms`): the index-code MI *is*
    the reported I_q; TC = sum_d I(x;z_d) - I_q; dimension-wise KL = rate - sum_d I(x;z_d) with the rate per
    point in closed form where the prior gives it (else at the same samples).  The three sum to that rate
    before the clipping rule (each into [0, rate])."""
    from zoo.decomposition import paired_tc_terms

    s, n = split["own"].shape
    factorised = c.has(model.prior, c.PerDimKL) and model.prior.kl_per_dim(q) is not None
    if factorised:
        rate_n = model.prior.kl_per_dim(q).double().cpu().flatten(1).sum(1)           # [N], closed form
        how = "the rate per point in closed form (the sum of its per-dimension KLs)"
    elif c.has(q, c.ClosedFormEntropy) and c.has(model.prior, c.ClosedFormCrossEntropy):
        rate_n = (model.prior.cross_entropy(q) - q.entropy()).double().cpu()
        how = "the rate per point in closed form"
    else:
        rate_n = (split["own"] - model.prior.log_prob(z).double().cpu()).mean(0)       # same z: paired
        how = f"the rate per point at the same {s} samples (log q(z|x) - log p(z))"
    mi_raw = float(mi_terms.mean(0).mean())
    tc_terms_, dw_terms = paired_tc_terms(mi_terms, split["own"], split["log_qz_marginals"], rate_n.unsqueeze(0))
    hi = rate if rate is not None and rate >= 0 else math.inf
    out: dict[str, Any] = {}
    raw = {"index_code_mi": mi_raw}
    for key, values in (("total_correlation", tc_terms_), ("dimension_wise_kl", dw_terms)):
        raw[key], out[f"{key}_se"] = _mean_se(values.mean(0))
        out[key] = _clip(raw[key], hi)
    clipped = [f"{k} {raw[k]:.4f}" for k in raw if k != "index_code_mi" and out[k] != raw[k]]
    out["rate_split_sum"] = sum(raw.values())
    text = (f"full-set estimator, paired: log q(z) and each log q(z_d) as mixtures over all N={n} points at the "
            f"{s} z-samples per point of I_q; index-code MI = I_q (the same estimate); TC = sum_d I(x;z_d) - I_q; "
            f"dimension-wise KL = rate - sum_d I(x;z_d), with {how}; before clipping the three sum to "
            f"{out['rate_split_sum']:.4f} = that rate; each is clipped to [0, rate]")
    if clipped:
        text += f" (clipped: {', '.join(clipped)})"
    if saturated:
        text += ("; I_q is SATURATED, so TC = sum_d I(x;z_d) - I_q takes its bias: TC is an UPPER BOUND "
                 "(as far as the one-dimensional terms are identified)")
    out["total_correlation_kind"] = "upper bound" if saturated else "value"
    if not factorised:
        out["dimension_wise_kl"] = out["dimension_wise_kl_se"] = None
        text += ("; the prior does not factorise over dimensions (no per-dimension KL), so the third term "
                 "KL(q(z)||p(z)) - TC is not a KL and is not reported")
    out["tc_estimator"] = text
    return out


def _exact_discrete_split(model: LatentModel, q, rate: float | None) -> dict[str, Any]:
    """I_q and the marginal KL of an enumerable discrete posterior, as exact sums over its K values."""
    values, log_q = q.enumerate()                              # [K, ...], [N, K]
    log_q = log_q.double()
    n = log_q.shape[0]
    log_agg = torch.logsumexp(log_q, 0) - math.log(n)          # log q(z = k), [K]
    log_p = model.prior.log_prob(values).double()              # [K]
    mi, mi_se = _mean_se((log_q.exp() * (log_q - log_agg)).sum(1))   # KL(q(z|x_n) || q(z)) per point
    marginal = float((log_agg.exp() * (log_agg - log_p)).sum())
    why = saturation(mi, mi, n)
    text = (f"exact: sums over the {log_q.shape[1]} values of the discrete latent and the N={n} "
            f"points (I_q <= log N = {math.log(n):.2f}; rate = I_q + marginal KL exactly)")
    if why:
        text += f"; SATURATED ({why}): the N-point aggregate's I_q is a lower bound on the population's"
    return {"mutual_information": mi, "mutual_information_se": mi_se, "mutual_information_upper": mi,
            "mutual_information_kind": "lower bound" if why else "value", "mi_saturated": bool(why),
            "mi_saturation": why, "mi_log_n": math.log(n), "marginal_kl": marginal, "marginal_kl_lower": marginal,
            "marginal_kl_kind": "upper bound" if why else "value",
            "marginal_kl_estimator": "exact: sums over the support of the aggregate of the N points",
            "mi_estimator": text}


def _iwae(model: LatentModel, data: Tensor, k: int, batch_size: int) -> dict[str, Any]:
    if k <= 0:
        return {"nll": None, "iwae_k": 0}
    chunk = max(1, min(batch_size, 20000 // k))
    from zoo.progress import bar

    values = torch.cat([model.log_likelihood(data[start:start + chunk], k).double().cpu()
                        for start in bar(range(0, len(data), chunk), desc=f"IWAE k={k}", unit="batch")])
    mean, se = _mean_se(-values)
    return {"nll": mean, "nll_se": se, "iwae_k": k, "nll_kind": f"IWAE, k={k}",
            "nll_estimator": f"importance-weighted bound (Burda et al. 2015), k={k}: an upper bound on the NLL"}


def format_report(report: dict[str, Any]) -> str:
    """A human-readable table of a diagnose() report."""
    def f(v, spec=".3f"):
        return "n/a" if v is None else format(v, spec)

    lines = [f"model {report['model']} on {report['data']}"
             f"{' [' + report['split'] + ']' if report.get('split') else ''}: N={report['n']}, "
             f"likelihood {report['likelihood']}"]
    params = report.get("likelihood_params")
    if params:
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items()
                          if k != "fitted")
        lines.append(f"  likelihood parameters: {shown}; fitted: {params.get('fitted')}")
        fit = report.get("likelihood_fit")
        if fit:
            lines.append(f"  (fitted on {report['n_fit']} images left out of N; their distortion "
                         f"{fit['distortion_before']:.1f} -> {fit['distortion_after']:.1f} nats per image)")
    def pm(key: str) -> str | None:
        se = report.get(f"{key}_se")
        return f"+- {se:.3f}" if isinstance(se, float) and math.isfinite(se) else None

    rate_label = "rate  KL(q(z|x)||p(z))" if report.get("rate_kind") != "upper bound" else "rate  (upper bound on the KL)"
    nll_label = {"exact": "NLL (exact)", "negative ELBO": "NLL <= -ELBO (bound)"}.get(
        report.get("nll_kind"), f"NLL (IWAE, k={report.get('iwae_k')})")
    mi_note = None
    if report.get("mutual_information") is not None and report.get("mutual_information_upper") is not None:
        mi_note = f"<= {report['mutual_information_upper']:.3f}" + (" SATURATED" if report.get("mi_saturated") else "")
    elsewhere = report.get("mi_split") not in (None, report.get("split"))
    where = f" [{report['mi_split']}, N={report['mi_n']}]" if elsewhere else ""
    mi_label = ("  I_q(x;z) >= (lower bound)" if report.get("mi_saturated") else "  = I_q(x;z)") + where
    kl_bound = report.get("marginal_kl_kind") == "upper bound"
    kl_note = None
    if report.get("marginal_kl") is not None:
        kl_note = " ".join(v for v in (pm("marginal_kl"), f"(>= {report['marginal_kl_lower']:.3f}: rate - I_q's upper "
                                       f"end)" if report.get("marginal_kl_lower") is not None else None,
                                       "UPPER BOUND" if kl_bound else None) if v) or None
    rows = [("ELBO", report["elbo"], report.get("elbo_bpd"), pm("elbo")),
            ("distortion  -E_q log p(x|z)", report["distortion"], report.get("distortion_bpd"), pm("distortion")),
            (rate_label, report["rate"], report.get("rate_bpd"), pm("rate")),
            (mi_label, report.get("mutual_information"), None,
             " ".join(v for v in (pm("mutual_information"), mi_note) if v) or None),
            (("  KL(q(z)||p(z)) <=" if kl_bound else "  + KL(q(z)||p(z))") + where, report.get("marginal_kl"), None,
             kl_note),
            (nll_label, report.get("nll"), report.get("nll_bpd"), pm("nll"))]
    lines.append(f"  {'term':32s} {'nats':>12s} {'bits/dim':>10s}")
    for label, nats, bpd, note in rows:
        lines.append(f"  {label:32s} {f(nats):>12s} {f(bpd, '.4f') if bpd is not None else '':>10s}"
                     f"{'  ' + note if note else ''}".rstrip())
    if elsewhere:
        lines.append(f"  the I_q terms use split {report['mi_split']!r} (N={report['mi_n']}, its rate "
                     f"{report['mi_rate']:.3f}); every other number split {report.get('split')!r} (N={report['n']})")
    if report.get("total_correlation") is not None:
        tc = ("total correlation <= " if report.get("total_correlation_kind") == "upper bound" else "total correlation ")
        dw = (f" + dimension-wise KL {report['dimension_wise_kl']:.3f} +- {report['dimension_wise_kl_se']:.3f}"
              if report.get("dimension_wise_kl") is not None else " + a term that is not a KL (prior not factorised)")
        lines.append(f"  rate{where} = index-code MI (= I_q) {report['index_code_mi']:.3f} + {tc}"
                     f"{report['total_correlation']:.3f} +- {report['total_correlation_se']:.3f}{dw} (nats)")
    if report.get("active_units") is not None:
        lines.append(f"  active units (Cov_x E_q[z_d] > {report['active_threshold']}): "
                     f"{report['active_units']} / {report['latent_dims']}")
    if report.get("mig") is not None:
        per = ", ".join(f"{k} {v:.2f} (z{report['mig_dims'][k][0]})" for k, v in report["mig_per_factor"].items())
        lines.append(f"  MIG (mutual information gap, Chen et al. 2018): {report['mig']:.3f}; per factor: {per}")
    if report.get("codebook_size"):
        lines.append(f"  codebook: {report['codebook_usage']} / {report['codebook_size']} codes used, perplexity "
                     f"{report['codebook_perplexity']:.2f}")
    if report.get("kl_per_channel") is not None:
        lines.append("  KL per latent channel (nats): [" + ", ".join(f"{v:.2f}" for v in report["kl_per_channel"]) + "]")
    if report.get("active_channels") is not None:
        lines.append(f"  active channels (mean over positions of Cov_x E_q[z] > {report['active_threshold']}): "
                     f"{report['active_channels']} / {len(report['active_units_per_channel'])}; active units per "
                     f"channel {report['active_units_per_channel']}")
    if report.get("kl_per_dim"):
        kl = ", ".join(f"{v:.2f}" for v in report["kl_per_dim"][:64])
        lines.append(f"  KL per latent dim (nats): [{kl}{', ...' if len(report['kl_per_dim']) > 64 else ''}]")
    elif report.get("kl_per_dim_note"):
        lines.append(f"  KL per latent dim: {report['kl_per_dim_note']}")
    for result in c.declared_results(report):
        lines.append(f"  {format_result(result, report)}")
    li = report.get("learned_information")
    if li:
        lines.append(f"  learned information I(x; z_snr) (I-MMSE on the model's denoiser, nats): "
                     + ", ".join(f"log-snr {li['log_snr'][j]:.1f}: {li['information'][j]:.2f} +- {li['information_se'][j]:.2f}"
                                 for j in sorted({round(i * (len(li['log_snr']) - 1) / 4) for i in range(5)})))
        if li.get("nll") is not None:
            lines.append(f"    -log p(x) from the same curve (Kong et al. 2023, an estimate): {li['nll']:.2f} "
                         f"+- {li['nll_se']:.2f} nats")
    if report.get("rate_estimator"):
        lines.append(f"  rate estimator: {report['rate_estimator']}")
    if report.get("active_units_note"):
        lines.append(f"  active units: {report['active_units_note']}")
    lines.append(f"  MI estimator: {report.get('mi_estimator')}")
    if report.get("tc_estimator"):
        lines.append(f"  TC estimator: {report['tc_estimator']}")
    if report.get("mig_estimator"):
        lines.append(f"  MIG estimator: {report['mig_estimator']}")
    if report.get("nll_estimator"):
        lines.append(f"  NLL estimator: {report['nll_estimator']}")
    from zoo.verdict import verdict

    lines.append(verdict(report))
    return "\n".join(lines)


SHORT_SERIES = 16  # a series of at most this many items, all evaluated, is printed in full


def format_result(result: c.Series | c.Term, report: dict[str, Any], picks: int = 8) -> str:
    """One line for a declared result (zoo.contracts.Series / Term) of a diagnose report: a term with its SE,
    a short series in full (with its sum beside the reported term it adds up to), a long or sub-sampled one
    at ``picks`` evaluated items spread over its length."""
    value = report.get(result.name)
    if isinstance(result, c.Term):
        se = report.get(f"{result.name}_se")
        pm = f" +- {se:.2g}" if isinstance(se, float) and math.isfinite(se) else ""
        return f"{result.label}: {value:.3g}{pm} {result.unit}"
    name = "" if result.name in result.label else f" [{result.name}]"
    note = f"; {result.note}" if result.note else ""
    points = [(result.start + i, v) for i, v in enumerate(value) if v is not None]
    if len(points) == len(value) and len(value) <= SHORT_SERIES:
        text = (f"{result.label}{name} ({result.unit}; {result.index} {result.start}..{result.start + len(value) - 1}"
                f"{note}): [{', '.join(f'{v:.4g}' for v in value)}]")
        total = report.get(result.total) if result.total else None
        if isinstance(total, float):
            parts = sum(report[r.name] for r in c.declared_results(report)
                        if isinstance(r, c.Term) and r.total == result.total)
            text += f"; sum {sum(value) + parts:.4g} (the {result.total}: {total:.4g})"
        return text
    shown = dict(points[round(i * (len(points) - 1) / (picks - 1))] for i in range(min(picks, len(points)))) \
        if len(points) > 1 else dict(points)
    return (f"{result.label}{name} ({result.unit}; {len(points)} of {len(value)} {result.items} evaluated{note}): "
            + ", ".join(f"{result.index}={i}: {v:.3g}" for i, v in shown.items()))
