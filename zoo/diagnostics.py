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
from zoo.evaluation import Evaluation, evaluate
from zoo.model import LatentModel

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2015: unit d is active when Cov_x(E_q[z_d]) > 0.01
SATURATION = 0.95        # an I_q lower bound above this fraction of log N only says I_q >= it (saturated)


@torch.no_grad()
def diagnose(model: LatentModel, data: Tensor | str, *, split: str = "test", batch_size: int = 500,
             iwae_k: int = 100, mi_samples: int = 10, max_points: int = 10000, seed: int | None = None,
             image_key: str | None = None, data_config: str | None = None,
             fit_points: int | None = None, factors: Any = None) -> dict[str, Any]:
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
    with tensor ``data``) also get the mutual information gap of the posterior means (:mod:`zoo.disentanglement`)."""
    from zoo.errors import InputError

    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise InputError(f"max_points (--max-points) must be a positive integer, got {max_points!r}")
    if isinstance(iwae_k, bool) or not isinstance(iwae_k, int) or iwae_k < 0:
        raise InputError(f"iwae_k (--k) must be an integer >= 1 (or 0 to skip the IWAE estimate), got {iwae_k!r}")
    source = data if isinstance(data, str) else "tensor"
    if isinstance(data, str):
        from zoo.data import card_source_options, load_tensors

        options = card_source_options(data, model.config.get("data") or {}, image_key)
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
        evaluation = evaluate(model, data, batch_size=batch_size, keep_posteriors=True)
        report = _bound_terms(model, evaluation)
        if factors is not None:
            report.update(disentanglement(evaluation.posteriors, factors.take(slice(n_fit, None))))
        report.update(codebook_usage(evaluation.posteriors))
        posterior = _concat(evaluation.posteriors)
        report.update(aggregate_posterior_split(model, posterior, mi_samples, rate=report["rate"]))
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
        else:
            report.update(_iwae(model, data, iwae_k, batch_size))
        _add_notes(report, evaluation.posteriors[0] if evaluation.posteriors else None, model.prior)
        if c.has(model.prior, c.Denoiser):  # what a diffusion model learned: I-MMSE on its denoiser
            from zoo.denoiser_information import model_information

            report["learned_information"] = model_information(model, data, posteriors=evaluation.posteriors, seed=seed)
    report.update({"model": model.name, "data": source, "split": split if source != "tensor" else None,
                   "likelihood": likelihood.name, "discrete_likelihood": likelihood.discrete, "seed": seed,
                   "rate_kind": "upper bound" if not c.is_exact(model.prior) else "exact KL"})
    if fittable:
        report.update({"likelihood_params": likelihood.describe(), "likelihood_fit": fit, "n_fit": n_fit})
    for key in ("elbo", "distortion", "rate", "nll"):
        if report.get(key) is not None:
            value = -report[key] if key == "elbo" else report[key]
            report[f"{key}_bpd"] = float(model.bits_per_dim(value))
    return report


def default_seed(model: LatentModel) -> int:
    """A seed of the model's own (a hash of its name): Monte Carlo errors of different models are independent."""
    import zlib

    return zlib.crc32(str(model.name).encode()) % (2 ** 31)


def _mean_se(values: Tensor) -> tuple[float, float]:
    """The mean of per-sample values and its standard error over the samples."""
    v = values.double().flatten()
    n = v.numel()
    return float(v.mean()), (float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan"))


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


def _bound_terms(model: LatentModel, evaluation: Evaluation) -> dict[str, Any]:
    n = evaluation.n
    report: dict[str, Any] = {"n": n}
    for key, value in evaluation.terms.items():
        if value.dim() == 1:  # a per-image term: its mean and the standard error over the N images
            report[key], report[f"{key}_se"] = _mean_se(value)
            continue
        mean = value.double().sum(0) / n
        report[key] = float(mean) if mean.dim() == 0 else mean.tolist()
    for key in [k for k in report if k.endswith("_count") and k[:-6] in report]:
        # per-index extras computed on some rows only (e.g. DDPM's L_t at sub-sampled timesteps):
        # the mean over the rows where each index was computed, None where it never was
        counts = report.pop(key)
        report[key[:-6]] = [v / c_ if c_ > 0 else None for v, c_ in zip(report[key[:-6]], counts)]
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
    if "nll" in notes and report.get("nll_estimator"):
        report["nll_estimator"] = f"{report['nll_estimator']}; {notes['nll']}"
    for key in ("kl_per_dim", "active_units"):
        if key in notes and not report.get(f"{key}_note"):
            report[f"{key}_note"] = notes[key]


def _concat(posteriors: list):
    if not posteriors or not c.has(posteriors[0], c.AggregatePosterior):
        return None
    return type(posteriors[0]).cat(posteriors)


def aggregate_posterior_split(model: LatentModel, q, samples: int = 10, *, rate: float | None = None
                              ) -> dict[str, Any]:
    """I_q(x;z) and KL(q(z)||p(z)) with the exact aggregate posterior of the N points in ``q``.

    Exact for a discrete posterior the model enumerates (sums over its K values).  Otherwise the
    *paired* estimators of Poole et al. (2019), with the same z_ns ~ q(z|x_n) in both terms:

        lower (InfoNCE)        1/NS sum_ns [log q(z_ns|x_n) - log 1/N sum_m q(z_ns|x_m)]        <= I_q, <= log N
        upper (leave-one-out)  1/NS sum_ns [log q(z_ns|x_n) - log 1/(N-1) sum_{m!=n} q(z_ns|x_m)]  >= I_q

    ``mutual_information`` is the lower bound (each point's term has expectation KL(q(z|x_n) || q(z))
    >= 0), clipped to [0, rate] where Monte Carlo noise puts it outside; ``marginal_kl`` = rate - I_q,
    never negative.  Near log N the lower bound is *saturated*: it then only says I_q >= log N, and an
    identified value needs N well above e^rate (more points: ``--max-points``, or the training split)."""
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
    lower, lower_se, upper, upper_se = paired_bounds(q, z=z, split=split)
    log_n = math.log(n)
    hi = rate if rate is not None and rate >= 0 else math.inf
    mi = min(max(lower, 0.0), hi)
    saturated = lower > SATURATION * log_n
    estimator = (f"paired InfoNCE lower bound with the exact aggregate posterior over N={n} points, {samples} "
                 f"z-samples per point (Poole et al. 2019; log q(z|x_n) and log q(z) from the same samples), "
                 f"I_q <= log N = {log_n:.2f}; bracket up to the leave-one-out upper bound; standard errors over "
                 f"the N points")
    if mi != lower:
        estimator += f"; clipped to [0, rate] (the estimate was {lower:.4f})"
    if saturated:
        estimator += (f"; SATURATED: within 5% of log N, so it only says I_q >= {lower:.2f}: evaluate more points "
                      f"(--max-points, or --split train) for an identified value")
    if upper > hi:  # I_q <= rate always: the rate is then the tighter upper end of the bracket
        estimator += f"; the leave-one-out bound ({upper:.2f}) is above the rate, so the bracket ends at the rate"
        upper, upper_se = hi, 0.0
    tc = _tc_split(model, q, z, split) if split is not None else {
        "total_correlation": None, "tc_estimator": "not available for this encoder: its posterior does not give q(z) "
                                                   "per latent dimension (zoo.contracts.PerDimAggregatePosterior)"}
    out = {**tc, "mutual_information": mi, "mutual_information_se": lower_se, "mutual_information_upper": upper,
           "mutual_information_upper_se": upper_se, "mi_saturated": saturated, "mi_log_n": log_n,
           "mi_estimator": estimator}
    if rate is not None:
        out["marginal_kl"] = rate - mi
        out["marginal_kl_lower"] = max(rate - upper, 0.0)
        if not c.is_exact(model.prior):
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
    dimension and ``split`` receives ``[S, N]`` log q(z_ns) and sum_d log q(z_ns,d) over the same N points
    (:func:`zoo.decomposition.mixture_log_density`, weights 1/N)."""
    from zoo.decomposition import mixture_log_density

    lower = torch.empty(z.shape[0], n, dtype=torch.float64)
    upper = torch.empty(z.shape[0], n, dtype=torch.float64)
    if split is not None:
        split["log_qz"], split["log_qz_marginals"] = torch.empty_like(lower), torch.empty_like(lower)
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
            lower[s, rows] = own - (torch.logsumexp(cross, 1) - math.log(n))
            cross[torch.arange(len(rows)), rows] = -math.inf                    # leave x_n out
            upper[s, rows] = own - (torch.logsumexp(cross, 1) - math.log(n - 1))
    return lower, upper


def _tc_split(model: LatentModel, q, z: Tensor, split: dict[str, Tensor]) -> dict[str, Any]:
    """Index-code MI, total correlation and dimension-wise KL (Chen et al. 2018, eq. 2; zoo.decomposition)
    with the exact aggregate posterior of the N points and its per-dimension marginals, from the same
    z_ns as I_q.  log q(z|x) and log p(z) enter in closed form where the rate is (H[q(z|x)], the prior's
    cross-entropy), so the three sum to the reported rate exactly; else at the samples."""
    from zoo.decomposition import tc_terms

    s, n = split["log_qz"].shape
    closed = c.has(q, c.ClosedFormEntropy) and c.has(model.prior, c.ClosedFormCrossEntropy)
    if closed:
        own = (-q.entropy()).double().cpu().expand(s, n)
        log_p = (-model.prior.cross_entropy(q)).double().cpu().expand(s, n)
    else:
        own = q.log_prob(z).double().cpu()                                   # [S, N]
        log_p = model.prior.log_prob(z).double().cpu()
    terms = tc_terms(own, split["log_qz"], split["log_qz_marginals"], log_p)
    out: dict[str, Any] = {}
    for key, values in zip(("index_code_mi", "total_correlation", "dimension_wise_kl"), terms):
        out[key], out[f"{key}_se"] = _mean_se(values.mean(0))
    factorised = c.has(model.prior, c.PerDimKL)
    out["tc_estimator"] = (
        f"full-set estimator: log q(z) and each log q(z_d) as mixtures over all N={n} points, {s} z-samples per "
        f"point (the same as I_q's); log q(z|x) and log p(z) "
        + ("in closed form, so MI + TC + dimension-wise KL = rate exactly" if closed else
           "at the samples, so the three sum to a Monte Carlo rate")
        + ("" if factorised else "; the prior has no per-dimension KL, so the third term is "
           "E_q(z)[sum_d log q(z_d) - log p(z)], not a sum of KLs"))
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
    return {"mutual_information": mi, "mutual_information_se": mi_se, "mutual_information_upper": mi,
            "mi_saturated": mi > SATURATION * math.log(n), "mi_log_n": math.log(n), "marginal_kl": marginal,
            "marginal_kl_lower": marginal,
            "mi_estimator": f"exact: sums over the {log_q.shape[1]} values of the discrete latent and the N={n} "
                            f"points (I_q <= log N = {math.log(n):.2f}; rate = I_q + marginal KL exactly)"}


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
    rows = [("ELBO", report["elbo"], report.get("elbo_bpd"), pm("elbo")),
            ("distortion  -E_q log p(x|z)", report["distortion"], report.get("distortion_bpd"), pm("distortion")),
            (rate_label, report["rate"], report.get("rate_bpd"), pm("rate")),
            ("  = I_q(x;z) (lower bound)" if mi_note else "  = I_q(x;z)", report.get("mutual_information"), None,
             " ".join(v for v in (pm("mutual_information"), mi_note) if v) or None),
            ("  + KL(q(z)||p(z))", report.get("marginal_kl"), None, None),
            (nll_label, report.get("nll"), report.get("nll_bpd"), pm("nll"))]
    lines.append(f"  {'term':32s} {'nats':>12s} {'bits/dim':>10s}")
    for label, nats, bpd, note in rows:
        lines.append(f"  {label:32s} {f(nats):>12s} {f(bpd, '.4f') if bpd is not None else '':>10s}"
                     f"{'  ' + note if note else ''}".rstrip())
    if report.get("total_correlation") is not None:
        lines.append(f"  rate = index-code MI {report['index_code_mi']:.3f} + total correlation "
                     f"{report['total_correlation']:.3f} +- {report['total_correlation_se']:.3f} + dimension-wise KL "
                     f"{report['dimension_wise_kl']:.3f} (nats)")
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
    for key, value in report.items():
        if key.startswith("kl_layer") or key == "kl_per_layer":
            lines.append(f"  {key}: {value}")
    if isinstance(report.get("L_t"), list):
        curve = [(t, v) for t, v in enumerate(report["L_t"]) if v is not None]
        if curve:
            picks = [curve[round(i * (len(curve) - 1) / 7)] for i in range(min(8, len(curve)))]
            lines.append(f"  per-timestep terms L_t (nats; {len(curve)} of {len(report['L_t'])} steps evaluated): "
                         + ", ".join(f"t={t + 1}: {v:.3g}" for t, v in dict(picks).items()))
        if isinstance(report.get("L_T"), float):
            lines.append(f"  prior term L_T = KL(q(x_T|x_0)||N(0,I)): {report['L_T']:.3g} nats")
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
