"""``zoo fit-prior``: fit a density to a trained run's aggregate posterior and write it as a new run.

    zoo fit-prior runs/vae --prior gmm --components 10 --out runs/vae-gmm

1. load the run; its latent must be a flat vector with a diagonal-Gaussian posterior q(z|x);
2. encode the training split: posterior means (``codes="mean"``, Ghosh et al. 2020) or ``draws``
   samples z ~ q(z|x_n) per image (``codes="sample"``, the default: samples of the aggregate posterior
   q(z) = 1/N sum_n q(z|x_n), the prior that maximises the ELBO with encoder and decoder fixed);
3. the registered prior fitter (hook ``register_prior_fitters``, zoo.contracts.PriorFitter) fits a
   registered prior to those codes;
4. the new run is the original encoder and decoder plus the fitted prior, rebuilt from its card (whose
   ``prior`` section names the prior and its arguments, and ``fitted_from`` the run, codes and fit);
5. ``diagnose`` re-measures ELBO, the rate split and the IWAE NLL on the training split with the new prior
   and, with the same seed, with the old one (``results.before``); the folder is written atomically.
"""
from __future__ import annotations

import dataclasses
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from zoo import contracts as c
from zoo.distributions import DiagGaussian
from zoo.errors import PluginError, UnsupportedModelError, UsageError
from zoo.model import LatentModel

CODES = ("sample", "mean")
COMPARED = ("elbo", "elbo_se", "distortion", "rate", "rate_se", "rate_kind", "mutual_information",
            "mutual_information_se", "mutual_information_kind", "marginal_kl", "marginal_kl_se", "marginal_kl_kind",
            "mi_split", "nll", "nll_se", "nll_kind", "iwae_k")


def fitter(name: str) -> Any:
    """The registered prior fitter ``name`` (an unknown name is a UsageError listing the registered ones)."""
    from zoo.registry import get_registry

    try:
        return get_registry().get("prior-fitter", name).resolve()
    except PluginError as e:
        raise UsageError(f"--prior: {e}") from None


def check_flat_gaussian(model: LatentModel, x: torch.Tensor) -> None:
    """Refuse a model whose latent is not a flat vector with a diagonal-Gaussian posterior, naming what it is."""
    if len(model.latent_shape) != 1:
        raise UnsupportedModelError(f"zoo fit-prior: model {model.name!r} has a latent of shape "
                                    f"{list(model.latent_shape)}; fit-prior needs a flat Gaussian vector [D]")
    with torch.no_grad():
        q = model.encode(x[:2])
    if not isinstance(q, DiagGaussian) or c.has(model.prior, c.StructuredInference):
        raise UnsupportedModelError(f"zoo fit-prior: model {model.name!r}: the encoder "
                                    f"{model.sources.get('encoder', type(model.encoder).__name__)} gives a "
                                    f"{type(q).__name__} posterior; fit-prior needs a diagonal-Gaussian latent vector")


@torch.no_grad()
def latent_codes(model: LatentModel, x: torch.Tensor, *, codes: str = "sample", draws: int = 1, seed: int = 0,
                 batch_size: int = 500) -> torch.Tensor:
    """Codes of images ``x``: posterior means ``[N, D]`` or ``draws`` samples per image ``[draws * N, D]``."""
    if codes not in CODES:
        raise UsageError(f"--codes must be one of {', '.join(CODES)}, got {codes!r}")
    g = torch.Generator(device=model.device).manual_seed(seed)
    out = []
    for i in range(0, len(x), batch_size):
        q = model.encode(x[i:i + batch_size])
        out.append(q.mean if codes == "mean" else q.rsample(draws, generator=g).flatten(0, 1))
    return torch.cat(out).flatten(1).float().cpu()


def fit_prior(run: str | Path, *, prior: str, out: str | Path, codes: str = "sample", draws: int = 10,
              seed: int = 0, iwae_k: int = 100, max_points: int = 10000, overwrite: bool = False,
              trust_modules: bool = False, command: str | None = None, **options: Any) -> LatentModel:
    """Fit prior ``prior`` (a registered prior fitter: gmm, maf, vae) to run ``run``'s codes and write run ``out``.

    ``options`` go to the fitter (e.g. ``components=10``).  Returns the new model; its card's results hold
    the re-measured numbers and ``before`` (the same numbers with the run's own prior)."""
    from zoo.data import card_source_options, load_tensors
    from zoo.diagnostics import diagnose
    from zoo.loading import load
    from zoo.store.run_lock import FolderGuard

    out = Path(out)
    fit = fitter(prior)
    unknown = sorted(set(options) - set(fit.options))
    if unknown:
        raise UsageError(f"--prior {prior}: unknown option(s) {', '.join('--' + u.replace('_', '-') for u in unknown)}"
                         f"; it accepts {', '.join('--' + o.replace('_', '-') for o in fit.options) or 'none'}")
    if Path(run).resolve() == out.resolve():
        raise UsageError(f"--out {out} is the run being fitted; write the new run into another folder")
    guard = FolderGuard(out, kind="run", overwrite=overwrite, replace_own=False)
    if out.exists():
        with guard:  # refused now, before the fit: a user's files, a run without --overwrite, a live run
            pass
    model = load(run, trust_modules=trust_modules)
    card = model.card
    spec = card.spec.data.source
    split = card.spec.data.split
    x = load_tensors(spec, split, **card_source_options(spec, card.spec.data, None))
    check_flat_gaussian(model, x)
    z = latent_codes(model, x, codes=codes, draws=draws, seed=seed)
    start = time.perf_counter()
    fitted: c.FittedPrior = fit(z, latent_shape=model.latent_shape, seed=seed, **options)
    seconds = time.perf_counter() - start
    new_card = fitted_card(card, fitted, run=run, codes=codes, draws=draws, n_codes=len(z), seed=seed,
                           seconds=seconds, options=options)
    new = assemble_fitted(model, new_card, fitted, trust_modules=trust_modules)
    measure = {"split": split, "iwae_k": iwae_k, "max_points": max_points, "seed": seed}
    before = diagnose(model, spec, **measure)
    report = diagnose(new, spec, **measure)
    command = command or shlex.join(["zoo", "fit-prior", str(run), "--prior", prior, "--out", str(out),
                                     f"--codes={codes}", f"--draws={draws}", f"--seed={seed}", f"--k={iwae_k}",
                                     f"--max-points={max_points}",
                                     *[f"--{k.replace('_', '-')}={v}" for k, v in options.items()]])
    results = measured_results(report, before, new_card, spec, command, seed, trained=card.spec.results)
    new.card = new_card.with_results(results)
    write_run(new, guard)
    return new.eval()


def fitted_card(card, fitted: c.FittedPrior, *, run, codes: str, draws: int, n_codes: int, seed: int,
                seconds: float, options: dict[str, Any]):
    """The new run's card: the fitted prior (registered name and arguments) with its provenance."""
    old_prior = dict(card.zoo["prior"])
    provenance = {"run": str(run), "model": card.name, "prior": old_prior, "codes": codes,
                  "draws": draws if codes == "sample" else 1, "n_codes": n_codes, "split": "train", "seed": seed,
                  "method": fitted.method, "options": dict(options), "fit_seconds": round(seconds, 2),
                  "objective_first": round(fitted.history[0], 4), "objective_last": round(fitted.history[-1], 4)}
    zoo = {k: v for k, v in card.zoo.items() if k not in ("weights", "results", "sampler")}
    zoo["prior"] = {"name": fitted.name, **fitted.args, "fitted_from": provenance}
    return dataclasses.replace(card, name=f"{card.name}-{fitted.name}", zoo=zoo)


def assemble_fitted(model: LatentModel, card, fitted: c.FittedPrior, *, trust_modules: bool) -> LatentModel:
    """Build the card's model and load the run's encoder and decoder and the fitted prior into it (strict)."""
    from zoo.assemble import build_model
    from zoo.store.weights import load_weights

    new = build_model(card, trust_modules=trust_modules)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("prior.")}
    state.update({f"prior.{k}": v for k, v in fitted.module.state_dict().items()})
    load_weights(new, state, f"the run's encoder and decoder with the fitted {fitted.name!r} prior")
    new.card = card
    return new.to(model.device).eval()


def measured_results(report: dict[str, Any], before: dict[str, Any], card, spec: str, command: str,
                     seed: int, *, trained) -> dict[str, Any]:
    """The card's results, written by the training loop's results writer from ``report`` (the encoder and decoder's
    training steps and time are the run's: ``trained``, its card's typed results), plus ``before``: the same numbers
    with the run's own prior."""
    from zoo.training.config import TrainConfig
    from zoo.training.loop import results_from_report

    results = results_from_report(report, card, TrainConfig.from_card(card), spec,
                                  steps=int(trained and trained.steps or 0),
                                  seconds=float(trained and trained.train_seconds or 0.0), command=command)
    results.update({"fit_seed": seed,
                    "before": {k: _rounded(before.get(k)) for k in COMPARED if before.get(k) is not None}})
    return results


def _rounded(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def write_run(model: LatentModel, guard) -> None:
    """Stage the run folder beside the guarded ``out`` and move it into place, so ``out`` is never half written
    (zoo.store.run_lock.FolderGuard: the lock, the user's files, --overwrite)."""
    from zoo.store.run_folder import save_model

    with guard:
        stage = guard.stage()
        save_model(model, stage, model.card)
        guard.commit(stage, model.card.name)
