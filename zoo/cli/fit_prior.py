"""``zoo fit-prior RUN --prior NAME --out RUN2``: a post-hoc prior fitted to a run's codes (see zoo.posthoc).

The fitter's own options are given as ``--OPTION VALUE`` (e.g. ``--components 10`` for gmm) and typed
by the fitter's declared ``options``; ``zoo plugins`` lists the registered prior fitters."""
from __future__ import annotations

import json

from zoo.cli.commands import count_int, positive_int
from zoo.errors import UsageError


def cmd_fit_prior(args) -> None:
    from zoo.posthoc import CODES, fit_prior, fitter

    fit = fitter(args.prior)
    options = {}
    for key, text in args.sampler_options.items():
        spec = fit.options.get(key)
        if spec is None:
            raise UsageError(f"--prior {args.prior}: unknown option --{key.replace('_', '-')}; it accepts "
                             + ", ".join("--" + o.replace("_", "-") for o in fit.options))
        try:
            options[key] = spec.type(text)
        except ValueError:
            raise UsageError(f"--{key.replace('_', '-')}: expected {spec.type.__name__}, got {text!r}") from None
    if args.codes not in CODES:
        raise UsageError(f"--codes must be one of {', '.join(CODES)}")
    try:
        model = fit_prior(args.run, prior=args.prior, out=args.out, codes=args.codes, draws=args.draws,
                          seed=args.seed, iwae_k=args.k, max_points=args.max_points, overwrite=args.overwrite,
                          trust_modules=args.trust_modules, **options)
    except ValueError as e:  # a fitter's refusal of an option value (e.g. --components 0)
        if isinstance(e, UsageError) or type(e) is not ValueError:
            raise
        raise UsageError(f"--prior {args.prior}: {e}") from None
    r = model.card.zoo["results"]
    if args.json:
        print(json.dumps({"out": str(args.out), "prior": model.card.zoo["prior"], "results": r}, indent=2))
        return
    b = r["before"]
    print(f"wrote {args.out} ({model.name}: prior {model.card.spec.prior.name} fitted to {args.codes} codes)")
    for key in ("elbo", "rate", "marginal_kl", "nll"):
        if key in r and key in b:
            print(f"  {key:12s} {_labelled(b, key)} -> {_labelled(r, key)}  (train split, nats)")


def _labelled(r: dict, key: str) -> str:
    """A number of a fit-prior report with its standard error and how it was computed (e.g. a Monte Carlo KL)."""
    se = r.get(f"{key}_se")
    kind = r.get({"rate": "rate_kind", "marginal_kl": "marginal_kl_kind", "nll": "nll_kind"}.get(key, ""))
    return (f"{r[key]:10.3f}" + (f" +- {se:.3f}" if isinstance(se, float) else "")
            + (f" ({kind})" if kind and kind != "value" else ""))


def add_parser(sub) -> None:
    p = sub.add_parser("fit-prior", help="fit a density (gmm, maf, vae) to a run's aggregate posterior; new run",
                       description="Fit a prior to a trained run's latent codes on the training split and write a new "
                                   "run (the run's encoder and decoder plus the fitted prior) with ELBO and IWAE NLL "
                                   "re-measured. Options of the fitter are given as --OPTION VALUE, e.g. "
                                   "--components 10 for gmm.")
    p.add_argument("run", help="run folder (or model name / Hub repo) to fit a prior to")
    p.add_argument("--prior", required=True, help="a registered prior fitter: gmm, maf, vae (`zoo plugins`)")
    p.add_argument("--out", required=True, help="the new run folder (new, empty, or a run with --overwrite)")
    p.add_argument("--codes", default="sample", help="'sample' (z ~ q(z|x), the aggregate posterior; default) "
                                                     "or 'mean' (posterior means, as Ghosh et al. 2020)")
    p.add_argument("--draws", type=positive_int, default=10, help="samples per training image with --codes sample")
    p.add_argument("--seed", type=int, default=0, help="seed of the codes, the fit and the measurement")
    p.add_argument("--k", type=count_int, default=100, help="IWAE samples of the re-measured NLL (0: skip)")
    p.add_argument("--max-points", type=positive_int, default=10000, help="measure on at most this many images")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--trust-modules", action="store_true", help="allow a run whose card names its own Python "
                                                                "classes (bring your own module) to import them")
    p.add_argument("--json", action="store_true", help="print the fitted prior and results as JSON")
    p.set_defaults(func=cmd_fit_prior, sampler_options={}, accepts_options=True)
