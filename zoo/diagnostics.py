"""The seed's measurements for any model and data set: ``diagnose(model, data) -> dict``.

All values are means over the data, in nats unless the key ends in ``_bpd`` (bits per data
dimension).  The ELBO-surgery split of the rate (Hoffman & Johnson 2016) uses the *exact*
aggregate posterior of the evaluated set, q(z) = 1/N sum_n q(z|x_n):

    E_x KL(q(z|x) || p(z))  =  I_q(x; z)  +  KL(q(z) || p(z))
    I_q(x; z)     = H[q(z)] - E_x H[q(z|x)]
    KL(q(z)||p(z)) = -H[q(z)] - E_q(z)[log p(z)]

H[q(z)] is a Monte Carlo average over z ~ q(z|x_n): of -log q(z), or, where H[q(z|x)] is in closed
form, of the pointwise information log q(z|x_n) - log q(z) added to it (the same expectation, without
the noise of -log q(z|x) itself, which grows with the latent dimension; every term is <= log N).  Every
other term is in closed form where the posterior and prior allow it, so the identity holds exactly and
a collapsed posterior (q(z|x) = p(z) for all x) reads I = 0, not log N.
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


@torch.no_grad()
def diagnose(model: LatentModel, data: Tensor | str, *, split: str = "test", batch_size: int = 500,
             iwae_k: int = 100, mi_samples: int = 10, max_points: int = 10000, seed: int = 0,
             fit_points: int | None = None) -> dict[str, Any]:
    """ELBO, distortion, rate, I_q(x;z), marginal KL, active units, KL per dimension, IWAE NLL.

    A likelihood with parameters fitted to data (zoo.contracts.FittableLikelihood, e.g. the noise
    scale stated for a deterministic decoder) is first fitted on the first ``fit_points`` images,
    which are then left out of every other number (default None: a quarter of them; 0: keep the
    parameters as they are)."""
    source = data if isinstance(data, str) else "tensor"
    if isinstance(data, str):
        from zoo.data import card_source_options, load_tensors

        data = load_tensors(data, split, **card_source_options(data, model.config.get("data") or {}))
    model.eval()
    data = data[:max_points]
    likelihood = model.decoder.likelihood
    fittable = c.has(likelihood, c.FittableLikelihood)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        n_fit = _fit_count(len(data), fit_points) if fittable else 0
        fit = likelihood.fit(model, data[:n_fit]) if n_fit else None
        data = data[n_fit:]
        evaluation = evaluate(model, data, batch_size=batch_size, keep_posteriors=True)
        report = _bound_terms(model, evaluation)
        posterior = _concat(evaluation.posteriors)
        report.update(aggregate_posterior_split(model, posterior, mi_samples))
        if not c.is_exact(model.prior) and iwae_k > 0:
            # log p(z) is itself a stochastic bound (e.g. a diffusion prior): importance weights built
            # from it are not unbiased, so the IWAE value would not be a bound; report the ELBO's
            report.update({"nll": -report["elbo"], "iwae_k": 0,
                           "nll_estimator": "the negative ELBO (the model's variational bound); no IWAE: "
                                            "the prior's log p(z) is a stochastic bound (prior.exact = False)"})
        else:
            report.update(_iwae(model, data, iwae_k, batch_size))
        if evaluation.exact:
            report["nll_estimator"] = "exact: log p(x) summed over the discrete latent's support"
    report.update({"model": model.name, "data": source, "split": split if source != "tensor" else None,
                   "likelihood": likelihood.name, "discrete_likelihood": likelihood.discrete})
    if fittable:
        report.update({"likelihood_params": likelihood.describe(), "likelihood_fit": fit, "n_fit": n_fit})
    for key in ("elbo", "distortion", "rate", "nll"):
        if report.get(key) is not None:
            value = -report[key] if key == "elbo" else report[key]
            report[f"{key}_bpd"] = float(model.bits_per_dim(value))
    return report


def _fit_count(n: int, fit_points: int | None) -> int:
    """How many of the n images fit the likelihood's parameters (the rest are evaluated)."""
    if fit_points is None:
        return n // 4 if n >= 2 else 0
    if fit_points < 0 or (fit_points and fit_points >= n):
        raise ValueError(f"fit_points must be 0 (no fitting) or in 1..{n - 1} (leaving images to evaluate) "
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


def _concat(posteriors: list):
    if not posteriors or not c.has(posteriors[0], c.AggregatePosterior):
        return None
    return type(posteriors[0]).cat(posteriors)


def aggregate_posterior_split(model: LatentModel, q, samples: int = 10) -> dict[str, Any]:
    """I_q(x;z) and KL(q(z)||p(z)) with the exact aggregate posterior of the N points in ``q``."""
    if q is None or not c.has(q, c.AggregatePosterior):
        return {"mutual_information": None, "marginal_kl": None,
                "mi_estimator": "not available: the posterior has no cross_log_prob/cat"}
    n = q.mean.shape[0]
    z = q.rsample(samples)                                     # [S, N, ...]
    flat = z.reshape(samples * n, *z.shape[2:])
    log_q_agg = torch.logsumexp(q.cross_log_prob(flat), dim=1) - math.log(n)   # log q(z), [S*N]
    log_q_own = q.log_prob(z).reshape(-1)                                      # log q(z|x_n) of its own x_n
    closed_entropy = c.has(q, c.ClosedFormEntropy)
    if closed_entropy:
        # H[q(z)] = H[q(z|x)] + E[log q(z|x) - log q(z)]: the closed-form entropy plus the MC average of the
        # pointwise information (each term <= log N).  Same expectation as -E log q(z), without the MC noise
        # of -log q(z|x) itself (std sqrt(d/2) nats per sample: several nats for a 4096-dim latent)
        h_cond = float(q.entropy().mean())
        h_agg = h_cond + float((log_q_own - log_q_agg).mean())
    else:
        h_cond = float(-log_q_own.mean())
        h_agg = float(-log_q_agg.mean())                                       # H[q(z)]
    exact_prior = c.is_exact(model.prior)
    if c.has(model.prior, c.ClosedFormCrossEntropy) and closed_entropy:
        ce = float(model.prior.cross_entropy(q).mean())        # -E_q(z)[log p(z)], closed form
    elif exact_prior:
        ce = float(-model.prior.log_prob(z).mean())
    else:  # a bound-valued log p(z) (e.g. a diffusion prior) is costly: one z per point
        ce = float(-model.prior.log_prob(z[0]).mean())
    estimator = (f"exact aggregate posterior over N={n} points, {samples} z-samples per point for H[q(z)]"
                 f"{' (as H[q(z|x)] + the mean of log q(z|x) - log q(z))' if closed_entropy else ''}; "
                 f"other terms closed form where available; I_q <= log N = {math.log(n):.2f}")
    if not closed_entropy:
        estimator += "; H[q(z|x)] by the same samples (the identity then holds up to MC noise)"
    if not exact_prior:
        estimator += "; marginal KL uses the prior's bound on log p(z) (prior.exact = False): an upper bound"
    return {"mutual_information": h_agg - h_cond, "marginal_kl": ce - h_agg, "mi_estimator": estimator}


def _iwae(model: LatentModel, data: Tensor, k: int, batch_size: int) -> dict[str, Any]:
    if k <= 0:
        return {"nll": None, "iwae_k": 0}
    chunk = max(1, min(batch_size, 20000 // k))
    total = 0.0
    for start in range(0, len(data), chunk):
        total += float(model.log_likelihood(data[start:start + chunk], k).sum())
    return {"nll": -total / len(data), "iwae_k": k,
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
    rows = [("ELBO", report["elbo"], report.get("elbo_bpd")),
            ("distortion  -E_q log p(x|z)", report["distortion"], report.get("distortion_bpd")),
            ("rate  KL(q(z|x)||p(z))", report["rate"], report.get("rate_bpd")),
            ("  = I_q(x;z)", report.get("mutual_information"), None),
            ("  + KL(q(z)||p(z))", report.get("marginal_kl"), None),
            (f"NLL (IWAE, k={report.get('iwae_k')})", report.get("nll"), report.get("nll_bpd"))]
    lines.append(f"  {'term':32s} {'nats':>12s} {'bits/dim':>10s}")
    for label, nats, bpd in rows:
        lines.append(f"  {label:32s} {f(nats):>12s} {f(bpd, '.4f') if bpd is not None else '':>10s}")
    if report.get("active_units") is not None:
        lines.append(f"  active units (Cov_x E_q[z_d] > {report['active_threshold']}): "
                     f"{report['active_units']} / {report['latent_dims']}")
    if report.get("kl_per_channel") is not None:
        lines.append("  KL per latent channel (nats): [" + ", ".join(f"{v:.2f}" for v in report["kl_per_channel"]) + "]")
    if report.get("active_channels") is not None:
        lines.append(f"  active channels (mean over positions of Cov_x E_q[z] > {report['active_threshold']}): "
                     f"{report['active_channels']} / {len(report['active_units_per_channel'])}; active units per "
                     f"channel {report['active_units_per_channel']}")
    if report.get("kl_per_dim"):
        kl = ", ".join(f"{v:.2f}" for v in report["kl_per_dim"][:64])
        lines.append(f"  KL per latent dim (nats): [{kl}{', ...' if len(report['kl_per_dim']) > 64 else ''}]")
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
    if report.get("rate_estimator"):
        lines.append(f"  rate estimator: {report['rate_estimator']}")
    if report.get("active_units_note"):
        lines.append(f"  active units: {report['active_units_note']}")
    lines.append(f"  MI estimator: {report.get('mi_estimator')}")
    if report.get("nll_estimator"):
        lines.append(f"  NLL estimator: {report['nll_estimator']}")
    return "\n".join(lines)
